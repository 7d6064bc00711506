namespace Servables;

/// <summary>Resolves a path with every symbolic link on the way followed (like POSIX <c>realpath</c>), portably.</summary>
/// <remarks>Stateless and thread-safe; reads the file system.</remarks>
internal static class RealPath
{
    private const int MaxLinks = 40;

    private static readonly char[] Separators = [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar];

    /// <summary>The real path of <paramref name="path"/>; null when a link loop or too many links are met.</summary>
    /// <remarks>Components that do not exist are kept as they are.</remarks>
    public static string? Resolve(string path)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        var pending = new Queue<string>(full[current.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries));
        int links = 0;
        while (pending.TryDequeue(out string? part))
        {
            string next = Path.Combine(current, part);
            string? target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++links > MaxLinks)
            {
                return null;
            }

            // Restart from the link's target (relative targets are relative to the link's folder), then the rest.
            string resolved = Path.GetFullPath(Path.IsPathRooted(target) ? target : Path.Combine(current, target));
            string root = Path.GetPathRoot(resolved)!;
            pending = new Queue<string>(resolved[root.Length..].Split(Separators, StringSplitOptions.RemoveEmptyEntries).Concat(pending));
            current = root;
        }

        return current;
    }
}
