using Microsoft.Extensions.Logging;
using Servables.Testing;

namespace Servables.Core.Tests.Sources;

public sealed class FileSystemStoragePathSourceTests : IAsyncLifetime
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _root = new();
    private readonly List<FileSystemStoragePathSource> _sources = [];
    private readonly string _base;

    public FileSystemStoragePathSourceTests() => _base = _root.CreateFolder("m");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (FileSystemStoragePathSource source in _sources)
        {
            await source.DisposeAsync();
        }

        _root.Dispose();
    }

    [Fact]
    public async Task SetAspiredVersionsTarget_NumericFolders_AspiresHighestByDefault()
    {
        CreateVersions(1, 2, 3);
        await using FileSystemStoragePathSource source = CreateSource(new StoragePathServable("m", _base));
        var target = new RecordingAspiredVersionsTarget<string>();

        source.SetAspiredVersionsTarget(target);

        (string name, IReadOnlyList<ServableData<string>> versions) = Assert.Single(target.Calls);
        Assert.Equal("m", name);
        ServableData<string> only = Assert.Single(versions);
        Assert.Equal(new ServableId("m", 3), only.Id);
        Assert.True(only.HasValue);
        Assert.Equal(Path.Combine(_base, "3"), only.Value);
    }

    [Fact]
    public void SetAspiredVersionsTarget_LatestTwo_AspiresTwoHighestAscending()
    {
        CreateVersions(1, 2, 3);
        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.Latest(2) });

        Assert.Equal([2L, 3L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_AllPolicy_AspiresEveryVersionWithItsPath()
    {
        CreateVersions(1, 2, 10);
        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        IReadOnlyList<ServableData<string>> versions = Assert.Single(target.CallsFor("m"));
        Assert.Equal([1L, 2L, 10L], versions.Select(v => v.Id.Version));
        Assert.Equal([Path.Combine(_base, "1"), Path.Combine(_base, "2"), Path.Combine(_base, "10")], versions.Select(v => v.Value));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SpecificPolicy_AspiresOnlyThoseVersions()
    {
        CreateVersions(1, 2, 3);
        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.Specific(3, 1) });

        Assert.Equal([1L, 3L], target.LastVersions("m"));
    }

    [Fact]
    public async Task PollAsync_SpecificVersionMissing_AspiresTheOthersAndAddsItWhenItAppears()
    {
        CreateVersions(1, 2);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) =
            Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.Specific(2, 7) });
        Assert.Equal([2L], target.LastVersions("m"));

        CreateVersions(7);
        await source.PollAsync();

        Assert.Equal(2, target.CallsFor("m").Count);
        Assert.Equal([2L, 7L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_NonNumericEntries_AreIgnoredAndOthersAspired()
    {
        CreateVersions(2, 4);
        foreach (string name in new[] { "tmp", "1a", "-1", "+2", " 3", "3 ", "٣", "5.0" })
        {
            _root.CreateFolder(Path.Combine("m", name));
        }

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([2L, 4L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_FileNamedByDigits_IsIgnored()
    {
        CreateVersions(2);
        _root.CreateFile(Path.Combine("m", "9"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Assert.Equal([2L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_VersionTooLargeForLong_IsIgnored()
    {
        CreateVersions(2);
        _root.CreateFolder(Path.Combine("m", "9223372036854775808")); // long.MaxValue + 1
        _root.CreateFolder(Path.Combine("m", "99999999999999999999999"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Assert.Equal([2L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_LongMaxValueFolder_IsAVersion()
    {
        CreateVersions(2);
        _root.CreateFolder(Path.Combine("m", "9223372036854775807"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Assert.Equal([long.MaxValue], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SymlinkPointingOutsideBasePath_IsIgnored()
    {
        CreateVersions(1);
        string outside = _root.CreateFolder(Path.Combine("elsewhere", "5"));
        Directory.CreateSymbolicLink(Path.Combine(_base, "5"), outside);
        Directory.CreateSymbolicLink(Path.Combine(_base, "6"), Path.Combine("..", "elsewhere", "5"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([1L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SymlinkEscapingThroughAnotherLink_IsIgnored()
    {
        CreateVersions(1);
        _root.CreateFolder(Path.Combine("elsewhere", "5"));
        Directory.CreateSymbolicLink(Path.Combine(_base, "out"), Path.Combine(_root.Path, "elsewhere"));
        Directory.CreateSymbolicLink(Path.Combine(_base, "5"), Path.Combine("out", "5")); // lexically inside, really outside

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([1L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_LinkLoop_IsIgnored()
    {
        CreateVersions(1);
        Directory.CreateSymbolicLink(Path.Combine(_base, "7"), "8");
        Directory.CreateSymbolicLink(Path.Combine(_base, "8"), "7");

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([1L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SymlinkPointingInsideBasePath_IsAccepted()
    {
        CreateVersions(1);
        string hidden = _root.CreateFolder(Path.Combine("m", "staging"));
        Directory.CreateSymbolicLink(Path.Combine(_base, "2"), hidden);
        Directory.CreateSymbolicLink(Path.Combine(_base, "3"), "1");

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        IReadOnlyList<ServableData<string>> versions = Assert.Single(target.CallsFor("m"));
        Assert.Equal([1L, 2L, 3L], versions.Select(v => v.Id.Version));
        Assert.Equal(Path.Combine(_base, "2"), versions[1].Value);
        Assert.Equal(Path.Combine(_base, "3"), versions[2].Value);
    }

    [Fact]
    public void SetAspiredVersionsTarget_SymlinkToBasePathItself_IsIgnored()
    {
        CreateVersions(1);
        Directory.CreateSymbolicLink(Path.Combine(_base, "2"), ".");
        Directory.CreateSymbolicLink(Path.Combine(_base, "3"), _base);

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([1L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_BasePathIsSymlink_LinksInsideItAreAccepted()
    {
        string real = _root.CreateFolder("real-m");
        Directory.CreateDirectory(Path.Combine(real, "1"));
        string linkedBase = Path.Combine(_root.Path, "current-m");
        Directory.CreateSymbolicLink(linkedBase, real);
        Directory.CreateSymbolicLink(Path.Combine(real, "2"), "1");
        Directory.CreateSymbolicLink(Path.Combine(real, "3"), Path.Combine(linkedBase, "1"));
        Directory.CreateSymbolicLink(Path.Combine(real, "4"), Path.Combine(real, "1"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", linkedBase) { VersionPolicy = ServableVersionPolicy.All });

        Assert.Equal([1L, 2L, 3L, 4L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_BrokenSymlink_IsIgnored()
    {
        CreateVersions(1);
        Directory.CreateSymbolicLink(Path.Combine(_base, "2"), Path.Combine(_base, "missing"));

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Assert.Equal([1L], target.LastVersions("m"));
    }

    [Theory]
    [InlineData("1", "001")]
    [InlineData("001", "1")]
    public void SetAspiredVersionsTarget_DuplicateVersionFolders_CanonicalNameWins(string first, string second)
    {
        foreach (string name in new[] { first, second })
        {
            _root.CreateFolder(Path.Combine("m", name));
        }

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        ServableData<string> only = Assert.Single(Assert.Single(target.CallsFor("m")));
        Assert.Equal(1, only.Id.Version);
        Assert.Equal(Path.Combine(_base, "1"), only.Value);
    }

    [Theory]
    [InlineData("01", "001")]
    [InlineData("001", "01")]
    public void SetAspiredVersionsTarget_DuplicateVersionFoldersWithoutCanonical_ShorterNameWins(string first, string second)
    {
        foreach (string name in new[] { first, second })
        {
            _root.CreateFolder(Path.Combine("m", name));
        }

        (_, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        ServableData<string> only = Assert.Single(Assert.Single(target.CallsFor("m")));
        Assert.Equal(1, only.Id.Version);
        Assert.Equal(Path.Combine(_base, "01"), only.Value);
    }

    [Fact]
    public async Task PollAsync_MissingBasePath_SendsNothingUntilItAppears()
    {
        string missing = Path.Combine(_root.Path, "not-yet");
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", missing));
        await source.PollAsync();
        Assert.Empty(target.Calls);

        Directory.CreateDirectory(Path.Combine(missing, "4"));
        await source.PollAsync();

        Assert.Equal([4L], target.LastVersions("m"));
    }

    [Fact]
    public async Task PollAsync_EmptyBasePath_SendsNothing()
    {
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));
        await source.PollAsync();

        Assert.Empty(target.Calls);
    }

    [Fact]
    public async Task PollAsync_BasePathDeletedAfterVersionsSent_KeepsServingVersions()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Directory.Delete(_base, recursive: true);
        await source.PollAsync();

        Assert.Equal([1L], Assert.Single(target.CallsFor("m")).Select(v => v.Id.Version));
    }

    [Fact]
    public async Task PollAsync_VersionFoldersEmptiedAfterVersionsSent_KeepsServingVersions()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        Directory.Delete(Path.Combine(_base, "1"));
        await source.PollAsync();

        Assert.Single(target.CallsFor("m"));
    }

    [Fact]
    public async Task PollAsync_UnloadWhenNoVersionsAndFoldersEmptied_SendsEmptySetOnce()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) =
            Connect(o => o.UnloadWhenNoVersions = true, new StoragePathServable("m", _base));
        Assert.Equal([1L], target.LastVersions("m"));

        Directory.Delete(Path.Combine(_base, "1"));
        await source.PollAsync();
        await source.PollAsync();

        Assert.Equal(2, target.CallsFor("m").Count);
        Assert.Empty(target.CallsFor("m")[1]);
    }

    [Fact]
    public async Task PollAsync_UnloadWhenNoVersionsAndBasePathDeleted_SendsEmptySet()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) =
            Connect(o => o.UnloadWhenNoVersions = true, new StoragePathServable("m", _base));

        Directory.Delete(_base, recursive: true);
        await source.PollAsync();

        Assert.Equal(2, target.CallsFor("m").Count);
        Assert.Empty(target.CallsFor("m")[1]);
    }

    [Fact]
    public async Task PollAsync_NothingChanged_SendsSetOnlyOnce()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        await source.PollAsync();
        await source.PollAsync();

        Assert.Single(target.Calls);
    }

    [Fact]
    public async Task PollAsync_NewFolder_SendsNewSetIncludingIt()
    {
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) =
            Connect(new StoragePathServable("m", _base) { VersionPolicy = ServableVersionPolicy.All });

        CreateVersions(2);
        await source.PollAsync();

        Assert.Equal(2, target.Calls.Count);
        Assert.Equal([1L, 2L], target.LastVersions("m"));
    }

    [Fact]
    public async Task PollAsync_NewFolderBelowLatest_SendsNothing()
    {
        CreateVersions(5);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(new StoragePathServable("m", _base));

        CreateVersions(3);
        await source.PollAsync();

        Assert.Single(target.Calls);
    }

    [Fact]
    public async Task PollAsync_OneServableFails_OthersArePolled()
    {
        string throwing = _root.Path + "\0bad"; // Path.GetFullPath throws on an embedded NUL.
        Assert.ThrowsAny<ArgumentException>(() => Path.GetFullPath(throwing));
        string file = _root.CreateFile("a-file");
        CreateVersions(1);
        (FileSystemStoragePathSource source, RecordingAspiredVersionsTarget<string> target) = Connect(
            new StoragePathServable("throws", throwing),
            new StoragePathServable("file", file),
            new StoragePathServable("m", _base));
        Assert.Equal([1L], target.LastVersions("m"));

        CreateVersions(2);
        await source.PollAsync();

        Assert.Equal(["m", "m"], target.Calls.Select(c => c.Name));
        Assert.Equal([2L], target.LastVersions("m"));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SeveralServables_EachGetsItsOwnSet()
    {
        CreateVersions(1, 2);
        string other = _root.CreateFolder(Path.Combine("other", "7"));
        (_, RecordingAspiredVersionsTarget<string> target) = Connect(
            new StoragePathServable("m", _base),
            new StoragePathServable("other", Path.GetDirectoryName(other)!));

        Assert.Equal([2L], target.LastVersions("m"));
        Assert.Equal([7L], target.LastVersions("other"));
        Assert.All(target.CallsFor("other").Single(), v => Assert.Equal("other", v.Id.Name));
    }

    [Fact]
    public void SetAspiredVersionsTarget_Twice_Throws()
    {
        (FileSystemStoragePathSource source, _) = Connect(new StoragePathServable("m", _base));

        Assert.Throws<InvalidOperationException>(() => source.SetAspiredVersionsTarget(new RecordingAspiredVersionsTarget<string>()));
    }

    [Fact]
    public void ConnectSourceToTarget_SourceAlreadyConnected_Throws()
    {
        (FileSystemStoragePathSource source, _) = Connect(new StoragePathServable("m", _base));

        Assert.Throws<InvalidOperationException>(() => AspiredVersions.ConnectSourceToTarget(source, new RecordingAspiredVersionsTarget<string>()));
    }

    [Fact]
    public async Task PollAsync_BeforeTargetConnected_Throws()
    {
        await using FileSystemStoragePathSource source = CreateSource(new StoragePathServable("m", _base));

        await Assert.ThrowsAsync<InvalidOperationException>(() => source.PollAsync());
    }

    [Fact]
    public void Constructor_DuplicateServableNames_ThrowsNamingTheServable()
    {
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = Timeout.InfiniteTimeSpan };
        options.Servables.Add(new StoragePathServable("m", _base));
        options.Servables.Add(new StoragePathServable("m", _root.Path));

        ArgumentException error = Assert.Throws<ArgumentException>(() => new FileSystemStoragePathSource(options));

        Assert.Contains("'m'", error.Message, StringComparison.Ordinal);
        Assert.Contains("unique", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(-5)]
    [InlineData(2 * 24 * 60 * 60 * 1000)]
    public void Constructor_PollPeriodOutOfRange_ThrowsNamingPollPeriod(long milliseconds)
    {
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = TimeSpan.FromMilliseconds(milliseconds) };
        options.Servables.Add(new StoragePathServable("m", _base));

        ArgumentException error = Assert.Throws<ArgumentException>(() => new FileSystemStoragePathSource(options));

        Assert.Contains(nameof(FileSystemStoragePathSourceOptions.PollPeriod), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_ServableWithoutBasePath_Throws()
    {
        var options = new FileSystemStoragePathSourceOptions();
        options.Servables.Add(new StoragePathServable("m", string.Empty));

        ArgumentException error = Assert.Throws<ArgumentException>(() => new FileSystemStoragePathSource(options));

        Assert.Contains("base path", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PollPeriod_TimerFires_NewVersionReachesTarget()
    {
        CreateVersions(1);
        var time = new ObservedTimeProvider();
        (_, RecordingAspiredVersionsTarget<string> target) = Connect(
            o =>
            {
                o.PollPeriod = TimeSpan.FromSeconds(1);
                o.TimeProvider = time;
            },
            new StoragePathServable("m", _base));
        Assert.Equal([1L], target.LastVersions("m"));
        await time.WaitForTimersAsync(1, WaitLimit);

        CreateVersions(2);
        time.Advance(TimeSpan.FromSeconds(1));
        await target.WaitForCallsAsync(2, WaitLimit);

        Assert.Equal([2L], target.LastVersions("m"));
    }

    [Fact]
    public async Task DisposeAsync_PeriodicPolling_StopsPolling()
    {
        CreateVersions(1);
        var time = new ObservedTimeProvider();
        FileSystemStoragePathSource source = CreateSource(
            o =>
            {
                o.PollPeriod = TimeSpan.FromSeconds(1);
                o.TimeProvider = time;
            },
            new StoragePathServable("m", _base));
        var target = new RecordingAspiredVersionsTarget<string>();
        source.SetAspiredVersionsTarget(target);
        await time.WaitForTimersAsync(1, WaitLimit);

        await source.DisposeAsync().AsTask().WaitAsync(WaitLimit);
        CreateVersions(2);
        time.Advance(TimeSpan.FromSeconds(5));

        Assert.Single(target.Calls);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => source.PollAsync());
    }

    private void CreateVersions(params long[] versions)
    {
        foreach (long v in versions)
        {
            Directory.CreateDirectory(Path.Combine(_base, v.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
    }

    [Fact]
    public async Task PollAsync_ThousandsOfStagingFoldersComeAndGo_RemembersOnlyWhatIsThereNow_AndWarnsOncePerAppearance()
    {
        CreateVersions(1);
        var logs = new CapturingLoggerProvider();
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = Timeout.InfiniteTimeSpan, Servables = { new StoragePathServable("m", _base) } };
        await using var source = new FileSystemStoragePathSource(options, logs.CreateLogger<FileSystemStoragePathSource>());
        AspiredVersions.ConnectSourceToTarget(source, new RecordingAspiredVersionsTarget<string>());
        Directory.CreateDirectory(Path.Combine(_base, "tmp-keep"));

        for (int round = 0; round < 3; round++)
        {
            string[] staging = [.. Enumerable.Range(0, 1000).Select(i => Path.Combine(_base, $"tmp-{round}-{i}"))];
            foreach (string folder in staging)
            {
                Directory.CreateDirectory(folder);
            }

            await source.PollAsync();
            await source.PollAsync(); // still there: no second warning
            Assert.Equal(1001, source.RememberedProblems("m"));
            foreach (string folder in staging)
            {
                Directory.Delete(folder);
            }
        }

        await source.PollAsync();
        Assert.Equal(1, source.RememberedProblems("m")); // only tmp-keep
        int Warnings(string entry) => logs.Entries.Count(e => e.EventId.Id == 122 && e.Message.Contains($"Ignoring {entry} ", StringComparison.Ordinal));
        Assert.Equal(1, Warnings("tmp-keep"));
        Assert.Equal(1, Warnings("tmp-2-999"));

        Directory.CreateDirectory(Path.Combine(_base, "tmp-2-999")); // comes back: warned again
        await source.PollAsync();
        Assert.Equal(2, Warnings("tmp-2-999"));
    }

    private static FileSystemStoragePathSource CreateSource(params StoragePathServable[] servables) => CreateSource(null, servables);

    private static FileSystemStoragePathSource CreateSource(Action<FileSystemStoragePathSourceOptions>? configure, params StoragePathServable[] servables)
    {
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = Timeout.InfiniteTimeSpan };
        foreach (StoragePathServable s in servables)
        {
            options.Servables.Add(s);
        }

        configure?.Invoke(options);
        return new FileSystemStoragePathSource(options);
    }

    private (FileSystemStoragePathSource Source, RecordingAspiredVersionsTarget<string> Target) Connect(params StoragePathServable[] servables) =>
        Connect(null, servables);

    private (FileSystemStoragePathSource Source, RecordingAspiredVersionsTarget<string> Target) Connect(
        Action<FileSystemStoragePathSourceOptions>? configure, params StoragePathServable[] servables)
    {
        FileSystemStoragePathSource source = CreateSource(configure, servables);
        _sources.Add(source);
        var target = new RecordingAspiredVersionsTarget<string>();
        AspiredVersions.ConnectSourceToTarget(source, target);
        return (source, target);
    }
}
