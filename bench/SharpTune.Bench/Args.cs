namespace SharpTune.Bench;

/// <summary>`command --key value --flag` arguments.</summary>
sealed class Args(string[] argv)
{
    public string Command => argv.Length > 0 ? argv[0] : "";

    public string Get(string key, string fallback)
    {
        int i = Array.IndexOf(argv, "--" + key);
        return i >= 0 && i + 1 < argv.Length ? argv[i + 1] : fallback;
    }

    public int Int(string key, int fallback) => int.Parse(Get(key, fallback.ToString()));
    public bool Flag(string key) => argv.Contains("--" + key);

    public static int Usage()
    {
        Console.Error.WriteLine("usage: bench decode|parity|load [--options]; see Program.cs");
        return 2;
    }
}
