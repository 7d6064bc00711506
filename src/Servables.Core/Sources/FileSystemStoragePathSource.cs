using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Servables;

/// <summary>
/// Watches base paths for numeric version folders (<c>/models/resnet/1</c>, <c>/models/resnet/2</c>)
/// and aspires, per servable, the versions its <see cref="ServableVersionPolicy"/> picks, as storage paths.
/// </summary>
/// <remarks>
/// <para>
/// Connecting a target polls once at once, then every <see cref="FileSystemStoragePathSourceOptions.PollPeriod"/>.
/// A servable's aspired set is sent only when it changes. Only folders named by digits count as
/// versions; anything else, links that point outside the base path, and numbers too large for a
/// version are ignored with a warning. When two folders name the same number ("1" and "001"), the
/// one without leading zeros wins, else the shorter, else the ordinally smaller name.
/// </para>
/// <para>
/// A missing or empty base path, or a failed listing, never unloads serving versions, unless
/// <see cref="FileSystemStoragePathSourceOptions.UnloadWhenNoVersions"/> asks for that.
/// </para>
/// <para>All members are thread-safe; polls never overlap.</para>
/// </remarks>
public sealed class FileSystemStoragePathSource : IAspiredVersionsSource<string>, IAsyncDisposable
{
    private readonly StoragePathServable[] _servables;
    private readonly TimeSpan _pollPeriod;
    private readonly bool _unloadWhenNoVersions;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _pollLock = new(1, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Dictionary<string, ServableWatch> _watches = new(StringComparer.Ordinal);
    private IAspiredVersionsTarget<string>? _target;
    private Task? _loop;

    /// <summary>Creates a source; it does nothing until a target is connected.</summary>
    /// <param name="options">What to watch and how often.</param>
    /// <param name="logger">Where the source logs; null for none.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    public FileSystemStoragePathSource(FileSystemStoragePathSourceOptions options, ILogger<FileSystemStoragePathSource>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid FileSystemStoragePathSourceOptions: " + string.Join(" ", errors), nameof(options));
        }

        _servables = [.. options.Servables];
        _pollPeriod = options.PollPeriod;
        _unloadWhenNoVersions = options.UnloadWhenNoVersions;
        _time = options.TimeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        foreach (StoragePathServable s in _servables)
        {
            _watches.Add(s.Name, new ServableWatch());
        }
    }

    /// <summary>Connects the target, polls once, and starts polling periodically (unless the poll period is infinite).</summary>
    /// <exception cref="InvalidOperationException">A target is already connected.</exception>
    public void SetAspiredVersionsTarget(IAspiredVersionsTarget<string> target)
    {
        ArgumentNullException.ThrowIfNull(target);
        ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
        if (Interlocked.CompareExchange(ref _target, target, null) is not null)
        {
            throw new InvalidOperationException("This FileSystemStoragePathSource is already connected to a target; a source feeds one target.");
        }

        // The first poll runs now, so the target has the versions on return. The lock can only be
        // taken by a PollAsync that started after the target was set: it polls for us.
        if (_pollLock.Wait(0, CancellationToken.None))
        {
            try
            {
                PollAll();
            }
            finally
            {
                _pollLock.Release();
            }
        }

        if (_pollPeriod != Timeout.InfiniteTimeSpan)
        {
            _loop = Task.Run(RunLoopAsync);
        }
    }

    /// <summary>Looks at every base path now and sends each servable's aspired versions if they changed.</summary>
    /// <param name="cancellationToken">Stops waiting for a poll already running.</param>
    /// <exception cref="InvalidOperationException">No target is connected yet.</exception>
    public async Task PollAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
        if (Volatile.Read(ref _target) is null)
        {
            throw new InvalidOperationException("Connect a target (SetAspiredVersionsTarget) before polling.");
        }

        await _pollLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            PollAll();
        }
        finally
        {
            _pollLock.Release();
        }
    }

    /// <summary>Stops polling. The versions already aspired stay with the target.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(false);
        }
    }

    private async Task RunLoopAsync()
    {
        CancellationToken stopping = _stopping.Token;
        while (true)
        {
            try
            {
                await Task.Delay(_pollPeriod, _time, stopping).ConfigureAwait(false);
                await _pollLock.WaitAsync(stopping).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                PollAll();
            }
            finally
            {
                _pollLock.Release();
            }
        }
    }

    /// <summary>How many problems (ignored entries, missing versions) the source remembers for a servable, so that it warns once per problem; for tests.</summary>
    internal int RememberedProblems(string servableName) => _watches[servableName].RememberedProblems;

    /// <summary>One poll of every servable. Under the poll lock.</summary>
    private void PollAll()
    {
        foreach (StoragePathServable servable in _servables)
        {
            try
            {
                PollServable(servable, _watches[servable.Name]);
            }
#pragma warning disable CA1031 // One unreadable base path must not stop the others; serving versions are kept.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.PollFailed(_logger, servable.Name, ex);
            }
        }
    }

    private void PollServable(StoragePathServable servable, ServableWatch watch)
    {
        try
        {
            PollServableCore(servable, watch);
        }
        finally
        {
            watch.EndPoll();
        }
    }

    private void PollServableCore(StoragePathServable servable, ServableWatch watch)
    {
        SortedDictionary<long, string>? found = ListVersions(servable, watch);
        IReadOnlyList<long> selected = found is null ? [] : servable.VersionPolicy.Select([.. found.Keys]);
        if (selected.Count == 0)
        {
            if (!_unloadWhenNoVersions)
            {
                if (!watch.EmptyWarned)
                {
                    if (found is null)
                    {
                        Log.BasePathMissing(_logger, servable.Name, servable.BasePath);
                    }
                    else
                    {
                        Log.NoVersionsFound(_logger, servable.Name, servable.BasePath);
                    }

                    watch.EmptyWarned = true;
                }

                return;
            }

            if (watch.LastSent is { Count: > 0 })
            {
                Log.UnloadingForEmptyBasePath(_logger, servable.Name, servable.BasePath);
            }
        }
        else
        {
            watch.EmptyWarned = false;
        }

        if (servable.VersionPolicy.Kind == ServableVersionPolicyKind.Specific && found is not null)
        {
            foreach (long missing in servable.VersionPolicy.Versions.Where(v => !found.ContainsKey(v)))
            {
                if (watch.ShouldWarn($"missing:{missing}"))
                {
                    Log.SpecificVersionMissing(_logger, servable.Name, missing, servable.BasePath);
                }
            }
        }

        var aspired = selected.Select(v => KeyValuePair.Create(v, found![v])).ToList();
        if (watch.LastSent is not null && watch.LastSent.SequenceEqual(aspired))
        {
            return;
        }

        watch.LastSent = aspired;
        Log.AspiringVersions(_logger, servable.Name, aspired.Count == 0 ? "(none)" : string.Join(", ", aspired.Select(kv => kv.Key)));
        _target!.SetAspiredVersions(
            servable.Name,
            aspired.Select(kv => ServableData.Create(new ServableId(servable.Name, kv.Key), kv.Value)).ToList());
    }

    /// <summary>The version folders under the base path, by number; null when the base path does not exist.</summary>
    private SortedDictionary<long, string>? ListVersions(StoragePathServable servable, ServableWatch watch)
    {
        string basePath = Path.GetFullPath(servable.BasePath);
        var baseDir = new DirectoryInfo(basePath);
        if (!baseDir.Exists)
        {
            return null;
        }

        // Links are judged by where they really lead: every link on the way resolved, the base path's own included.
        string? realBase = RealPath.Resolve(baseDir.FullName);
        if (realBase is null)
        {
            return null;
        }

        realBase = realBase.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
        var versions = new SortedDictionary<long, string>();
        var chosenNames = new Dictionary<long, string>();
        foreach (FileSystemInfo entry in baseDir.EnumerateFileSystemInfos())
        {
            string name = entry.Name;
            string? problem = null;
            long version = 0;
            if (name.Length == 0 || !name.All(char.IsAsciiDigit))
            {
                problem = "not a version folder (version folders are named by digits only)";
            }
            else if (!long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out version))
            {
                problem = "the version number is too large";
            }
            else if (entry.LinkTarget is not null)
            {
                string? target = RealPath.Resolve(entry.FullName);
                if (target is null || !Path.Exists(target))
                {
                    problem = "a broken link";
                }
                else if (!IsBelow(target, realBase))
                {
                    problem = $"a link that points outside the base path, or at the base path itself (to {target})";
                }
                else if (!Directory.Exists(target))
                {
                    problem = "a link to a file, not a folder";
                }
            }
            else if (entry is not DirectoryInfo)
            {
                problem = "a file, not a folder";
            }

            if (problem is not null)
            {
                if (watch.ShouldWarn(name))
                {
                    Log.EntryIgnored(_logger, servable.Name, name, problem);
                }

                continue;
            }

            if (chosenNames.TryGetValue(version, out string? other))
            {
                string winner = PreferredName(version, other, name);
                string loser = ReferenceEquals(winner, name) ? other : name;
                if (watch.ShouldWarn($"duplicate:{loser}"))
                {
                    Log.DuplicateVersionFolder(_logger, servable.Name, version, winner, loser);
                }

                if (!ReferenceEquals(winner, name))
                {
                    continue;
                }
            }

            chosenNames[version] = name;
            versions[version] = Path.Combine(basePath, name);
        }

        return versions;
    }

    /// <summary>True when <paramref name="path"/> lies strictly below <paramref name="folder"/> (which ends with a separator).</summary>
    private static bool IsBelow(string path, string folder) =>
        path.Length > folder.Length && path.StartsWith(folder, StringComparison.Ordinal);

    /// <summary>Of two folder names for one version: the canonical one, else the shorter, else the ordinally smaller.</summary>
    private static string PreferredName(long version, string a, string b)
    {
        string canonical = version.ToString(CultureInfo.InvariantCulture);
        if (a == canonical || b == canonical)
        {
            return a == canonical ? a : b;
        }

        if (a.Length != b.Length)
        {
            return a.Length < b.Length ? a : b;
        }

        return string.CompareOrdinal(a, b) <= 0 ? a : b;
    }

    /// <summary>What the source remembers of one servable between polls. Under the poll lock.</summary>
    private sealed class ServableWatch
    {
        public List<KeyValuePair<long, string>>? LastSent { get; set; }

        public bool EmptyWarned { get; set; }

        private HashSet<string> _warnedBefore = new(StringComparer.Ordinal);
        private HashSet<string> _warnedNow = new(StringComparer.Ordinal);

        /// <summary>
        /// True the first time a problem is seen, false while it persists from poll to poll. Only the
        /// problems of the last poll are remembered, so the memory is bounded by what the base path
        /// holds now, however many staging folders come and go (one that comes back is warned about again).
        /// </summary>
        public bool ShouldWarn(string problem) => _warnedNow.Add(problem) && !_warnedBefore.Contains(problem);

        /// <summary>Forgets the problems that the poll that just ended no longer saw.</summary>
        public void EndPoll()
        {
            (_warnedBefore, _warnedNow) = (_warnedNow, _warnedBefore);
            _warnedNow.Clear();
        }

        /// <summary>How many problems are remembered (for tests).</summary>
        public int RememberedProblems => _warnedBefore.Count;
    }
}
