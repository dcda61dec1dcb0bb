using System.Globalization;

namespace SharpTune.Distributed;

/// <summary>
/// Where this process stands in a data-parallel run, in torchrun's terms: RANK of WORLD_SIZE processes in all,
/// LOCAL_RANK of LOCAL_WORLD_SIZE on this machine (the GPU it uses), and MASTER_ADDR:MASTER_PORT, where rank 0
/// listens for the others. Set by <see cref="WorkerLauncher"/> (`sharptune train --gpus N`) or by torchrun.
/// </summary>
public sealed record DistributedEnvironment(int Rank, int WorldSize, int LocalRank, int LocalWorldSize, string MasterAddr, int MasterPort)
{
    public const int DefaultPort = 29500;
    public static readonly string[] Variables = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"];

    public bool IsMaster => Rank == 0;

    /// <summary>This process's environment, or null when it is no worker of a distributed run (no WORLD_SIZE).</summary>
    public static DistributedEnvironment? FromProcess() => FromVariables(Environment.GetEnvironmentVariable);

    /// <summary>Reads torchrun's variables. Null when none is set; a partial or inconsistent set is an error that names
    /// the variable. WORLD_SIZE=1 with nothing else is a single-process run.</summary>
    public static DistributedEnvironment? FromVariables(Func<string, string?> get)
    {
        var present = Variables.Where(v => !string.IsNullOrEmpty(get(v))).ToList();
        if (present.Count == 0) return null;
        if (string.IsNullOrEmpty(get("WORLD_SIZE")))
            throw new SharpTuneException($"{string.Join(", ", present)} set without WORLD_SIZE; a distributed worker needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun sets them)");
        int world = Int(get, "WORLD_SIZE", 1, 1 << 20);
        if (world == 1 && string.IsNullOrEmpty(get("RANK")))
            return new DistributedEnvironment(0, 1, 0, 1, get("MASTER_ADDR") ?? "127.0.0.1", DefaultPort);
        foreach (var required in new[] { "RANK", "MASTER_ADDR", "MASTER_PORT" })
            if (string.IsNullOrEmpty(get(required)))
                throw new SharpTuneException($"WORLD_SIZE={world} is set but {required} is not; a distributed worker needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT");
        int rank = Int(get, "RANK", 0, world - 1);
        int localWorld = string.IsNullOrEmpty(get("LOCAL_WORLD_SIZE")) ? world : Int(get, "LOCAL_WORLD_SIZE", 1, world);
        int localRank = string.IsNullOrEmpty(get("LOCAL_RANK")) ? rank % localWorld : Int(get, "LOCAL_RANK", 0, localWorld - 1);
        if (world % localWorld != 0)
            throw new SharpTuneException($"WORLD_SIZE={world} is not a multiple of LOCAL_WORLD_SIZE={localWorld}: every machine must run the same number of workers");
        return new DistributedEnvironment(rank, world, localRank, localWorld, get("MASTER_ADDR")!.Trim(), Int(get, "MASTER_PORT", 1, 65535));
    }

    static int Int(Func<string, string?> get, string name, int min, int max)
    {
        string value = get(name)!.Trim();
        if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < min || n > max)
            throw new SharpTuneException($"{name}={SharpTuneException.Quote(value)}: expected a whole number from {min} to {max}"
                + (name is "RANK" or "LOCAL_RANK" ? $" ({(name == "RANK" ? "WORLD_SIZE" : "LOCAL_WORLD_SIZE")} is {max + 1})" : ""));
        return n;
    }

    /// <summary>The GPU this worker uses, as an entry of CUDA_VISIBLE_DEVICES: the LOCAL_RANK-th of an existing list,
    /// or LOCAL_RANK itself. Setting it before CUDA starts leaves the process one GPU (cuda:0), which NCCL then uses.</summary>
    public string VisibleDevice(string? visibleDevices)
    {
        if (string.IsNullOrWhiteSpace(visibleDevices)) return LocalRank.ToString(CultureInfo.InvariantCulture);
        var list = visibleDevices.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (LocalRank >= list.Length)
            throw new SharpTuneException($"LOCAL_RANK={LocalRank} but CUDA_VISIBLE_DEVICES={SharpTuneException.Quote(visibleDevices)} lists {list.Length} GPU(s); "
                + "run at most one worker per visible GPU");
        return list[LocalRank];
    }
}

/// <summary>
/// What `sharptune train --gpus N [--nnodes M --node-rank K --master-addr HOST --master-port P]` starts on this
/// machine: N workers with global ranks K·N … K·N + N − 1 of M·N.
/// </summary>
public sealed record LaunchPlan(int GpusPerNode, int Nodes, int NodeRank, string MasterAddr, int MasterPort)
{
    /// <summary>The launcher's own flags (each takes a value), removed from the arguments the workers get.</summary>
    public static readonly string[] Flags = ["--gpus", "--nnodes", "--node-rank", "--master-addr", "--master-port"];

    public int WorldSize => GpusPerNode * Nodes;

    public static LaunchPlan Create(int? gpus, int? nodes, int? nodeRank, string? masterAddr, int? masterPort)
    {
        int n = gpus ?? 1, m = nodes ?? 1, k = nodeRank ?? 0;
        if (n < 1 || n > 1024) throw new SharpTuneException($"--gpus: expected the number of GPUs to use on this machine (1 or more), got {n}");
        if (m < 1) throw new SharpTuneException($"--nnodes: expected the number of machines (1 or more), got {m}");
        if (k < 0 || k >= m) throw new SharpTuneException($"--node-rank: expected 0 to {m - 1} (--nnodes is {m}), got {k}");
        if (m > 1 && string.IsNullOrWhiteSpace(masterAddr))
            throw new SharpTuneException($"--nnodes {m}: give --master-addr, the address of the machine with --node-rank 0, the same on every machine");
        int port = masterPort ?? DistributedEnvironment.DefaultPort;
        if (port is < 1 or > 65535) throw new SharpTuneException($"--master-port: expected 1 to 65535, got {port}");
        return new LaunchPlan(n, m, k, string.IsNullOrWhiteSpace(masterAddr) ? "127.0.0.1" : masterAddr.Trim(), port);
    }

    /// <summary>The environment of each local worker, in local-rank order.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, string>> WorkerEnvironments() => Enumerable.Range(0, GpusPerNode).Select(local =>
        (IReadOnlyDictionary<string, string>)new Dictionary<string, string>
        {
            ["RANK"] = (NodeRank * GpusPerNode + local).ToString(CultureInfo.InvariantCulture),
            ["WORLD_SIZE"] = WorldSize.ToString(CultureInfo.InvariantCulture),
            ["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture),
            ["LOCAL_WORLD_SIZE"] = GpusPerNode.ToString(CultureInfo.InvariantCulture),
            ["MASTER_ADDR"] = MasterAddr,
            ["MASTER_PORT"] = MasterPort.ToString(CultureInfo.InvariantCulture),
        }).ToList();

    /// <summary>The command-line arguments without the launcher's flags (as "--flag value" or "--flag=value").</summary>
    public static List<string> WithoutLauncherFlags(IReadOnlyList<string> args)
    {
        var kept = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (Flags.Contains(a)) { i++; continue; }
            if (Flags.Any(f => a.StartsWith(f + "=", StringComparison.Ordinal))) continue;
            kept.Add(a);
        }
        return kept;
    }
}
