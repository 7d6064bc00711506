using System.Globalization;

namespace Servables.Benchmarks;

/// <summary>The command-line options of the load modes: <c>--name N</c>.</summary>
internal static class LoadOptions
{
    /// <summary>The whole number after <paramref name="name"/>, or <paramref name="fallback"/> when it is not given.</summary>
    public static int Int(string[] args, string name, int fallback)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : fallback;
    }

    /// <summary>The seconds after <c>--seconds</c>, or <paramref name="fallback"/>.</summary>
    public static TimeSpan Seconds(string[] args, int fallback) => TimeSpan.FromSeconds(Int(args, "--seconds", fallback));
}
