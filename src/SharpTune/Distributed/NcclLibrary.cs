using System.Runtime.InteropServices;
using SharpTune.Runtime;

namespace SharpTune.Distributed;

/// <summary>NCCL's 128-byte unique id, passed by value to ncclCommInitRank.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct NcclUniqueId
{
    public const int Size = 128;
    public fixed byte Internal[Size];

    public readonly byte[] ToArray()
    {
        var bytes = new byte[Size];
        for (int i = 0; i < Size; i++) bytes[i] = Internal[i];
        return bytes;
    }

    public static NcclUniqueId From(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size) throw new ArgumentException($"an NCCL unique id has {Size} bytes, got {bytes.Length}");
        var id = new NcclUniqueId();
        for (int i = 0; i < Size; i++) id.Internal[i] = bytes[i];
        return id;
    }
}

/// <summary>
/// The NCCL entry points SharpTune uses, bound once per process from libnccl.so.2 through function pointers. Found
/// where the runtime's PyTorch keeps it (site-packages/nvidia/nccl/lib beside torch/), or named by
/// SHARPTUNE_NCCL_LIB, or the system's library. NCCL reports errors as codes; <see cref="Check"/> turns them into
/// exceptions with NCCL's own text.
/// </summary>
public static unsafe class NcclLibrary
{
    public const string LibraryVariable = "SHARPTUNE_NCCL_LIB";

    // ncclDataType_t and ncclRedOp_t values of nccl.h (stable since NCCL 2.0; bfloat16 since 2.10).
    public const int Int8 = 0, Uint8 = 1, Int32 = 2, Int64 = 4, Float16 = 6, Float32 = 7, Float64 = 8, Bfloat16 = 9;
    public const int OpSum = 0, OpMax = 2, OpAvg = 4;
    /// <summary>ncclInProgress: a non-blocking call is still running.</summary>
    public const int InProgress = 7;

    static readonly Lock Gate = new();
    static Api? _api;

    sealed class Api
    {
        public required string Path;
        public required int Version;
        public required delegate* unmanaged<NcclUniqueId*, int> GetUniqueId;
        public required delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> CommInitRank;
        public required delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> AllReduce;
        public required delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int> Broadcast;
        public required delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int> AllGather;
        public required delegate* unmanaged<IntPtr, int> CommDestroy;
        public required delegate* unmanaged<IntPtr, int> CommAbort;
        public required delegate* unmanaged<IntPtr, int*, int> CommGetAsyncError;
        public required delegate* unmanaged<int, byte*> GetErrorString;
    }

    static Api Bound
    {
        get
        {
            lock (Gate) return _api ??= Bind();
        }
    }

    /// <summary>Where NCCL was loaded from and its version (for logs).</summary>
    public static string Description => $"NCCL {Bound.Version / 10000}.{Bound.Version / 100 % 100}.{Bound.Version % 100} from {Bound.Path}";

    /// <summary>The places looked at, in order: SHARPTUNE_NCCL_LIB, PyTorch's nvidia-nccl wheel, the system loader's libnccl.so.2.</summary>
    public static IEnumerable<string> Candidates(string? torchLibDir, string? named)
    {
        if (!string.IsNullOrWhiteSpace(named)) { yield return named; yield break; }
        if (torchLibDir is not null && Directory.GetParent(Path.GetFullPath(torchLibDir))?.Parent is { } sitePackages)
            yield return Path.Combine(sitePackages.FullName, "nvidia", "nccl", "lib", "libnccl.so.2");
        yield return "libnccl.so.2";
    }

    static Api Bind()
    {
        string? named = Environment.GetEnvironmentVariable(LibraryVariable);
        var tried = new List<string>();
        foreach (string candidate in Candidates(TorchRuntime.LibraryFolder, named))
        {
            bool byPath = candidate.Contains('/');
            if (byPath && !File.Exists(candidate)) { tried.Add($"{candidate} (absent)"); continue; }
            if (!NativeLibrary.TryLoad(candidate, out var handle)) { tried.Add($"{candidate} (does not load)"); continue; }
            try { return Bind(handle, candidate); }
            catch (EntryPointNotFoundException e) { tried.Add($"{candidate} (lacks {e.Message})"); }
        }
        throw new SharpTuneException("NCCL (libnccl.so.2) was not found; multi-GPU training needs it. It comes with CUDA PyTorch "
            + $"(the nvidia-nccl-cu* wheel) or the system package (libnccl2); or set {LibraryVariable} to the file. Tried: {string.Join("; ", tried)}");
    }

    static Api Bind(IntPtr lib, string path)
    {
        IntPtr Get(string name) => NativeLibrary.TryGetExport(lib, name, out var f) ? f : throw new EntryPointNotFoundException(name);
        int version = 0;
        int rc = ((delegate* unmanaged<int*, int>)Get("ncclGetVersion"))(&version);
        if (rc != 0 || version < 21000)
            throw new SharpTuneException($"{path}: NCCL {version} is too old; SharpTune needs NCCL 2.10 or newer (bfloat16 reductions)");
        return new Api
        {
            Path = path,
            Version = version,
            GetUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)Get("ncclGetUniqueId"),
            CommInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)Get("ncclCommInitRank"),
            AllReduce = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Get("ncclAllReduce"),
            Broadcast = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, int, IntPtr, IntPtr, int>)Get("ncclBroadcast"),
            AllGather = (delegate* unmanaged<IntPtr, IntPtr, nuint, int, IntPtr, IntPtr, int>)Get("ncclAllGather"),
            CommDestroy = (delegate* unmanaged<IntPtr, int>)Get("ncclCommDestroy"),
            CommAbort = (delegate* unmanaged<IntPtr, int>)Get("ncclCommAbort"),
            CommGetAsyncError = (delegate* unmanaged<IntPtr, int*, int>)Get("ncclCommGetAsyncError"),
            GetErrorString = (delegate* unmanaged<int, byte*>)Get("ncclGetErrorString"),
        };
    }

    public static void Check(int result, string call)
    {
        if (result != 0)
            throw new SharpTuneException($"{call} failed: NCCL error {result} ({Marshal.PtrToStringUTF8((IntPtr)Bound.GetErrorString(result))})");
    }

    public static NcclUniqueId GetUniqueId()
    {
        var id = new NcclUniqueId();
        Check(Bound.GetUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    public static IntPtr CommInitRank(int worldSize, NcclUniqueId id, int rank)
    {
        IntPtr comm;
        Check(Bound.CommInitRank(&comm, worldSize, id, rank), "ncclCommInitRank");
        return comm;
    }

    public static int AllReduce(IntPtr send, IntPtr recv, long count, int dataType, int op, IntPtr comm, IntPtr stream) =>
        Bound.AllReduce(send, recv, (nuint)count, dataType, op, comm, stream);

    public static int Broadcast(IntPtr send, IntPtr recv, long count, int dataType, int root, IntPtr comm, IntPtr stream) =>
        Bound.Broadcast(send, recv, (nuint)count, dataType, root, comm, stream);

    public static int AllGather(IntPtr send, IntPtr recv, long sendCount, int dataType, IntPtr comm, IntPtr stream) =>
        Bound.AllGather(send, recv, (nuint)sendCount, dataType, comm, stream);

    public static int CommDestroy(IntPtr comm) => Bound.CommDestroy(comm);
    public static int CommAbort(IntPtr comm) => Bound.CommAbort(comm);

    /// <summary>The communicator's asynchronous error (0 when none): a network failure or a peer's abort.</summary>
    public static int AsyncError(IntPtr comm)
    {
        int error = 0;
        Check(Bound.CommGetAsyncError(comm, &error), "ncclCommGetAsyncError");
        return error;
    }

    public static string ErrorString(int result) => Marshal.PtrToStringUTF8((IntPtr)Bound.GetErrorString(result)) ?? $"error {result}";
}
