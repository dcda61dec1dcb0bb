using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SharpTune.Distributed;

/// <summary>
/// The ranks' meeting point and control channel, over TCP: rank 0 listens on MASTER_PORT, every other rank connects
/// (retrying until the timeout) and says who it is; rank 0 checks the ranks and world sizes and sends each one the
/// payload (NCCL's unique id). The connections stay open: they carry a host-side barrier, and a connection that closes
/// without a goodbye means that rank died, which rank 0 passes on to the others (<c>onPeerLost</c> runs on every rank
/// still alive), so that no rank waits forever for a dead one.
/// </summary>
public sealed class Rendezvous : IDisposable
{
    const uint Magic = 0x53545256;   // "STRV"
    const byte Ok = (byte)'O', Refused = (byte)'E', BarrierMessage = (byte)'B', Goodbye = (byte)'D', AbortMessage = (byte)'A';

    readonly int _rank;
    readonly Socket?[] _peers;           // rank 0: one per other rank; others: [0] = rank 0
    readonly int[] _barrierCounts;       // barrier messages received, per connection
    readonly bool[] _saidGoodbye;
    readonly Action<string> _onPeerLost;
    readonly object _gate = new();   // Monitor.Wait/PulseAll need an object lock
    int _barriers;                       // barriers this rank has entered
    int _lost;
    volatile bool _leaving;

    public byte[] Payload { get; }
    public int WorldSize { get; }

    Rendezvous(int rank, int worldSize, Socket?[] peers, byte[] payload, Action<string> onPeerLost)
    {
        _rank = rank; WorldSize = worldSize; _peers = peers; Payload = payload; _onPeerLost = onPeerLost;
        _barrierCounts = new int[peers.Length];
        _saidGoodbye = new bool[peers.Length];
        for (int i = 0; i < peers.Length; i++)
        {
            if (peers[i] is null) continue;
            int index = i;
            new Thread(() => Listen(index)) { IsBackground = true, Name = $"rendezvous-{index}" }.Start();
        }
    }

    /// <summary>Meets the other ranks. Rank 0 makes the payload with <paramref name="makePayload"/>; every rank returns
    /// with it. Fails with a message naming what is missing when the others do not appear within <paramref name="timeout"/>.</summary>
    public static Rendezvous Join(int rank, int worldSize, string masterAddr, int port, Func<byte[]> makePayload, TimeSpan timeout, Action<string> onPeerLost)
    {
        if (worldSize == 1) return new Rendezvous(0, 1, [], makePayload(), onPeerLost);
        var deadline = DateTime.UtcNow + timeout;
        return rank == 0 ? Host(worldSize, port, makePayload, deadline, timeout, onPeerLost) : Connect(rank, worldSize, masterAddr, port, deadline, timeout, onPeerLost);
    }

    static Rendezvous Host(int worldSize, int port, Func<byte[]> makePayload, DateTime deadline, TimeSpan timeout, Action<string> onPeerLost)
    {
        var listener = new TcpListener(IPAddress.Any, port);
        try { listener.Start(); }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new SharpTuneException($"rank 0: port {port} is already in use (another run?); choose another --master-port (MASTER_PORT)");
        }
        var peers = new Socket?[worldSize];
        try
        {
            byte[] payload = makePayload();
            while (peers.Skip(1).Any(p => p is null))
            {
                var left = deadline - DateTime.UtcNow;
                Socket socket;
                try
                {
                    if (left <= TimeSpan.Zero) throw new OperationCanceledException();
                    using var cts = new CancellationTokenSource(left);
                    socket = listener.AcceptSocketAsync(cts.Token).AsTask().GetAwaiter().GetResult();
                }
                catch (OperationCanceledException)
                {
                    var missing = Enumerable.Range(1, worldSize - 1).Where(r => peers[r] is null);
                    throw new SharpTuneException($"rank 0: rank(s) {string.Join(", ", missing)} of {worldSize} did not join within {timeout.TotalSeconds:0} s "
                        + $"(listening on port {port}; did their workers start, with this machine's address as MASTER_ADDR?)");
                }
                socket.NoDelay = true;
                socket.ReceiveTimeout = (int)Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds, 1000, int.MaxValue);
                var hello = new byte[12];
                try { ReadExactly(socket, hello); }
                catch (Exception e) when (e is IOException or SocketException) { socket.Dispose(); continue; }   // a stray connection, not a rank
                uint magic = BinaryPrimitives.ReadUInt32LittleEndian(hello);
                int rank = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(4));
                int theirWorld = BinaryPrimitives.ReadInt32LittleEndian(hello.AsSpan(8));
                string? problem = magic != Magic ? "is not a SharpTune worker"
                    : theirWorld != worldSize ? $"says WORLD_SIZE={theirWorld}, rank 0 has {worldSize}"
                    : rank < 1 || rank >= worldSize ? $"says RANK={rank}, outside 1..{worldSize - 1}"
                    : peers[rank] is not null ? $"says RANK={rank}, which another worker already has" : null;
                if (problem is not null)
                {
                    if (magic != Magic) { socket.Dispose(); continue; }
                    Send(socket, [Refused, .. Message(problem)]);
                    socket.Dispose();
                    throw new SharpTuneException($"rank 0: a worker {problem}; every machine must use the same --nnodes and --gpus, and distinct --node-rank");
                }
                peers[rank] = socket;
            }
            foreach (var socket in peers.Skip(1))
            {
                socket!.ReceiveTimeout = 0;
                Send(socket, [Ok, .. Frame(payload)]);
            }
            return new Rendezvous(0, worldSize, peers, payload, onPeerLost);
        }
        catch
        {
            foreach (var s in peers) s?.Dispose();
            throw;
        }
        finally
        {
            listener.Stop();
        }
    }

    static Rendezvous Connect(int rank, int worldSize, string masterAddr, int port, DateTime deadline, TimeSpan timeout, Action<string> onPeerLost)
    {
        string lastError = "";
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                throw new SharpTuneException($"rank {rank}: could not reach rank 0 at {masterAddr}:{port} within {timeout.TotalSeconds:0} s ({lastError}); "
                    + "is rank 0 running, and do all machines use the same --master-addr and --master-port?");
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                using (var cts = new CancellationTokenSource(left))
                    socket.ConnectAsync(masterAddr, port, cts.Token).AsTask().GetAwaiter().GetResult();
                var hello = new byte[12];
                BinaryPrimitives.WriteUInt32LittleEndian(hello, Magic);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(4), rank);
                BinaryPrimitives.WriteInt32LittleEndian(hello.AsSpan(8), worldSize);
                Send(socket, hello);
                socket.ReceiveTimeout = (int)Math.Clamp((deadline - DateTime.UtcNow).TotalMilliseconds, 1000, int.MaxValue);
                var status = new byte[1];
                ReadExactly(socket, status);
                if (status[0] == Refused) throw new SharpTuneException($"rank {rank}: rank 0 refused this worker: it {ReadMessage(socket)}");
                var payload = ReadFrame(socket);
                socket.ReceiveTimeout = 0;
                return new Rendezvous(rank, worldSize, [socket], payload, onPeerLost);
            }
            catch (Exception e) when (e is SocketException or IOException or OperationCanceledException)
            {
                socket.Dispose();
                lastError = e.Message;
                Thread.Sleep(TimeSpan.FromMilliseconds(Math.Min(250, Math.Max(0, (deadline - DateTime.UtcNow).TotalMilliseconds))));
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
    }

    int PeerRank(int index) => _rank == 0 ? index : 0;

    void Listen(int index)
    {
        var socket = _peers[index]!;
        var one = new byte[1];
        try
        {
            while (true)
            {
                ReadExactly(socket, one);
                switch (one[0])
                {
                    case BarrierMessage:
                        lock (_gate) { _barrierCounts[index]++; Monitor.PulseAll(_gate); }
                        break;
                    case Goodbye:
                        lock (_gate) { _saidGoodbye[index] = true; Monitor.PulseAll(_gate); }
                        return;
                    case AbortMessage:
                        PeerLost(ReadMessage(socket));
                        return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            if (!_leaving) PeerLost($"rank {PeerRank(index)} stopped (its connection to rank {_rank} closed without a goodbye)");
        }
    }

    void PeerLost(string message)
    {
        if (Interlocked.Exchange(ref _lost, 1) != 0) return;
        lock (_gate) Monitor.PulseAll(_gate);
        if (_rank == 0)   // pass it on: the others may be waiting on the dead rank in a collective
            foreach (var s in _peers.Skip(1))
                try { Send(s!, [AbortMessage, .. Message(message)]); } catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
        _onPeerLost(message);
    }

    /// <summary>Returns when every rank has entered its same-numbered barrier; fails after <paramref name="timeout"/> or when a rank is lost.</summary>
    public void Barrier(TimeSpan timeout)
    {
        if (WorldSize == 1) return;
        int generation = Interlocked.Increment(ref _barriers);
        var deadline = DateTime.UtcNow + timeout;
        if (_rank != 0) Send(_peers[0]!, [BarrierMessage]);
        lock (_gate)
        {
            // rank 0 waits for every other rank's message; the others wait for rank 0's release
            while (_barrierCounts.Where((_, i) => _peers[i] is not null).Any(c => c < generation))
            {
                if (_lost != 0) throw new SharpTuneException($"rank {_rank}: a rank was lost during a barrier");
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_gate, left) && DateTime.UtcNow >= deadline)
                    throw new SharpTuneException($"rank {_rank}: the other ranks did not reach barrier {generation} within {timeout.TotalSeconds:0} s");
            }
        }
        if (_rank == 0) foreach (var s in _peers.Skip(1)) Send(s!, [BarrierMessage]);
    }

    /// <summary>Closes the connections with a goodbye, so that the others do not take this rank's exit for a failure.</summary>
    public void Dispose()
    {
        _leaving = true;
        foreach (var s in _peers)
        {
            if (s is null) continue;
            try { Send(s, [Goodbye]); s.Shutdown(SocketShutdown.Send); } catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { }
        }
        // rank 0 waits briefly for the others' goodbyes, so that its exit does not cut them off mid-sentence
        lock (_gate)
        {
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            while (_rank == 0 && _saidGoodbye.Where((_, i) => _peers[i] is not null).Any(g => !g) && _lost == 0 && DateTime.UtcNow < until)
                Monitor.Wait(_gate, TimeSpan.FromMilliseconds(200));
        }
        foreach (var s in _peers) s?.Dispose();
    }

    /// <summary>Drops the connections without a goodbye, as a crashed process would: the other ranks take this one for dead.</summary>
    public void Crash()
    {
        _leaving = true;
        foreach (var s in _peers) s?.Dispose();
    }

    static byte[] Message(string text) => Frame(Encoding.UTF8.GetBytes(text.Length > 2000 ? text[..2000] : text));

    static string ReadMessage(Socket socket) => Encoding.UTF8.GetString(ReadFrame(socket));

    /// <summary>A length-prefixed block (4 bytes little-endian, then the bytes).</summary>
    static byte[] Frame(byte[] bytes)
    {
        var framed = new byte[4 + bytes.Length];
        BinaryPrimitives.WriteInt32LittleEndian(framed, bytes.Length);
        bytes.CopyTo(framed, 4);
        return framed;
    }

    static byte[] ReadFrame(Socket socket)
    {
        var length = new byte[4];
        ReadExactly(socket, length);
        int n = BinaryPrimitives.ReadInt32LittleEndian(length);
        if (n is < 0 or > 1 << 16) throw new IOException($"a control message of {n} bytes is not one of ours");
        var bytes = new byte[n];
        ReadExactly(socket, bytes);
        return bytes;
    }

    static readonly Lock SendGate = new();

    static void Send(Socket socket, byte[] bytes)
    {
        lock (SendGate)
        {
            int sent = 0;
            while (sent < bytes.Length) sent += socket.Send(bytes, sent, bytes.Length - sent, SocketFlags.None);
        }
    }

    static void ReadExactly(Socket socket, byte[] buffer)
    {
        int read = 0;
        while (read < buffer.Length)
        {
            int n = socket.Receive(buffer, read, buffer.Length - read, SocketFlags.None);
            if (n == 0) throw new IOException("connection closed");
            read += n;
        }
    }
}
