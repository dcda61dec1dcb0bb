using SharpTune.Cli;

namespace SharpTune.Tests.Cli;

public class ChatInterruptsTests
{
    [Fact]
    public void CtrlCStopsAReplyAndKeepsTheChat()
    {
        using var interrupts = new ChatInterrupts(TextWriter.Null);
        var reply = interrupts.BeginReply();
        Assert.True(interrupts.Interrupt());      // handled: the process goes on
        Assert.True(reply.IsCancellationRequested);
        Assert.True(interrupts.EndReply());       // the reply was stopped
        var next = interrupts.BeginReply();
        Assert.False(next.IsCancellationRequested);
        Assert.False(interrupts.EndReply());
    }

    [Fact]
    public void AtThePromptTheFirstCtrlCWarnsAndTheSecondQuits()
    {
        var output = new StringWriter();
        using var interrupts = new ChatInterrupts(output);
        Assert.True(interrupts.Interrupt());
        Assert.Contains("Ctrl-C again", output.ToString());
        Assert.False(interrupts.Interrupt());     // quit
        interrupts.Typed();
        Assert.True(interrupts.Interrupt());      // typing in between arms the warning again
    }
}
