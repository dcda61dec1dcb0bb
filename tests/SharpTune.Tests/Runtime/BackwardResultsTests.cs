using SharpTune.Runtime;
using static TorchSharp.torch;

namespace SharpTune.Tests.Runtime;

public class BackwardResultsTests
{
    static bool Disposed(Tensor t) => t.IsInvalid;

    [Fact]
    public void ABackwardReleasesOnlyWhatItsOwnThreadKept()
    {
        _ = TestPaths.Cpu;
        var results = new BackwardResults("test backward failed");
        var mine = ones(3);
        var theirs = ones(3);
        var other = new Thread(() => results.Keep([theirs, null]));
        other.Start();
        other.Join();
        results.Keep([mine]);

        results.ReleaseEarlier();   // this thread's next backward: another thread's results may still be on their way back
        Assert.True(Disposed(mine));
        Assert.False(Disposed(theirs));

        results.ReleaseAll();       // after backward() returned: every thread's
        Assert.True(Disposed(theirs));
    }

    [Fact]
    public void AFailureIsRethrownOnceWithTheFirstCause()
    {
        var results = new BackwardResults("test backward failed");
        results.RethrowFailure();   // nothing failed: no exception
        results.Fail(new ArgumentException("first"));
        results.Fail(new ArgumentException("second"));
        var e = Assert.Throws<InvalidOperationException>(results.RethrowFailure);
        Assert.Equal("test backward failed", e.Message);
        Assert.Equal("first", e.InnerException!.Message);
        results.RethrowFailure();   // reported once
    }
}
