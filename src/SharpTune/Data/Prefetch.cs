using System.Threading.Channels;

namespace SharpTune.Data;

/// <summary>Runs an enumeration on a background thread, up to <c>ahead</c> items in front of its reader, so that
/// batches are built while the GPU works on the previous ones. Items come in the source's order; an exception in
/// the source reaches the reader at the item where it happened; disposing the enumerator stops the producer.</summary>
public static class Prefetch
{
    public static IEnumerable<T> Ahead<T>(IEnumerable<T> source, int ahead)
    {
        var channel = Channel.CreateBounded<T>(new BoundedChannelOptions(ahead) { SingleReader = true, SingleWriter = true });
        using var stop = new CancellationTokenSource();
        var producer = Task.Run(async () =>
        {
            try
            {
                foreach (var item in source)
                    await channel.Writer.WriteAsync(item, stop.Token);
                channel.Writer.Complete();
            }
            catch (OperationCanceledException) { channel.Writer.TryComplete(); }
            catch (Exception e) { channel.Writer.TryComplete(e); }
        });
        try
        {
            while (channel.Reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                while (channel.Reader.TryRead(out var item))
                    yield return item;
        }
        finally
        {
            stop.Cancel();
            producer.Wait();   // never faults: the producer catches everything
        }
    }
}
