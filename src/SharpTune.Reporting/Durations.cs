using static System.FormattableString;

namespace SharpTune.Reporting;

public static class Durations
{
    /// <summary>45s, 1m20s, 2h05m; "?" while unknown.</summary>
    public static string Format(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0)
            return "?";
        long total = (long)Math.Round(seconds);
        if (total < 60)
            return Invariant($"{total}s");
        if (total < 3600)
            return Invariant($"{total / 60}m{total % 60:00}s");
        return Invariant($"{total / 3600}h{total % 3600 / 60:00}m");
    }
}
