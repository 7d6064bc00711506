using System.Collections.Concurrent;
using System.Globalization;
using Servables.Testing;

namespace Servables.Core.Tests.Sources;

/// <summary>FileSystemStoragePathSource → SourceAdapter → AspiredVersionsManager, with the manager's state loop turned by hand.</summary>
public sealed class FileSystemSourceEndToEndTests : IAsyncLifetime
{
    private static readonly ServableRequest Latest = ServableRequest.Latest("m");
    private readonly TempDirectory _root = new();
    private readonly ConcurrentDictionary<ServableId, FakeLoader> _loaders = new();
    private readonly ConcurrentDictionary<long, bool> _failingVersions = new();
    private readonly string _base;
    private readonly ManagerDriver _driver = new(o => o.MaxLoadRetries = 0);
    private FileSystemStoragePathSource? _source;

    public FileSystemSourceEndToEndTests() => _base = _root.CreateFolder("m");

    private FileSystemStoragePathSource Source => _source ?? throw new InvalidOperationException("Call ConnectAsync first.");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_source is not null)
        {
            await _source.DisposeAsync();
        }

        await _driver.DisposeAsync();
        _root.Dispose();
    }

    [Fact]
    public async Task Connect_FirstVersionFolder_BecomesAvailable()
    {
        CreateVersion(1);

        await ConnectAsync();

        Assert.Equal(ServableManagerState.Available, _driver.StateOf("m", 1));
        Assert.Equal(1, LatestVersion());
    }

    [Fact]
    public async Task PollAsync_NewVersionFolder_SwapsToItAndUnloadsOld()
    {
        CreateVersion(1);
        await ConnectAsync();
        FakeServable v1 = Assert.IsType<FakeServable>(_loaders[new ServableId("m", 1)].Created);

        CreateVersion(2);
        await Source.PollAsync();
        Assert.Equal(1, LatestVersion());

        // AvailabilityPreserving: the latest request resolves after every turn of the swap.
        for (int turn = 0; turn < 20 && _driver.StateOf("m", 1) != ServableManagerState.End; turn++)
        {
            await _driver.TurnAsync();
            Assert.InRange(LatestVersion(), 1, 2);
        }

        await _driver.SettleAsync();
        Assert.Equal(2, LatestVersion());
        Assert.Equal(ServableManagerState.End, _driver.StateOf("m", 1));
        Assert.False(_driver.State("m", 1)!.IsError);
        Assert.True(v1.IsDisposed);
        Assert.False(_loaders[new ServableId("m", 2)].Created!.IsDisposed);
        Assert.Equal([new ServableId("m", 2)], _driver.Manager.ListAvailableServableIds());
        Assert.Empty(_loaders.Values.SelectMany(l => l.Violations));
    }

    [Fact]
    public async Task PollAsync_BasePathDeleted_ServingVersionKeepsServing()
    {
        CreateVersion(2);
        await ConnectAsync();

        Directory.Delete(_base, recursive: true);
        await Source.PollAsync();
        await _driver.SettleAsync();

        Assert.Equal(2, LatestVersion());
        Assert.Equal(ServableManagerState.Available, _driver.StateOf("m", 2));
        Assert.False(_loaders[new ServableId("m", 2)].Created!.IsDisposed);
    }

    [Fact]
    public async Task PollAsync_NewVersionFailsToLoad_ReportsErrorAndOldVersionKeepsServing()
    {
        CreateVersion(2);
        await ConnectAsync();
        Directory.Delete(_base, recursive: true);
        await Source.PollAsync();
        await _driver.SettleAsync();

        _failingVersions[3] = true;
        CreateVersion(3);
        await Source.PollAsync();
        await _driver.SettleAsync();

        ServableState v3 = Assert.IsType<ServableState>(_driver.State("m", 3));
        Assert.Equal(ServableManagerState.End, v3.State);
        Assert.True(v3.IsError);
        Assert.Equal(1, _loaders[new ServableId("m", 3)].LoadCalls);
        Assert.Equal(2, LatestVersion());
        Assert.Equal(ServableManagerState.Available, _driver.StateOf("m", 2));
        Assert.False(_loaders[new ServableId("m", 2)].Created!.IsDisposed);
    }

    [Fact]
    public async Task PollAsync_LoaderCannotBeCreated_ReportsErrorAndOldVersionKeepsServing()
    {
        CreateVersion(1);
        await ConnectAsync();

        CreateVersion(2);
        File.WriteAllText(Path.Combine(_base, "2", "corrupt"), string.Empty);
        await Source.PollAsync();
        await _driver.SettleAsync();

        ServableState v2 = Assert.IsType<ServableState>(_driver.State("m", 2));
        Assert.Equal(ServableManagerState.End, v2.State);
        Assert.IsType<InvalidDataException>(v2.Error?.InnerException);
        Assert.Equal(1, LatestVersion());
    }

    private void CreateVersion(long version) =>
        Directory.CreateDirectory(Path.Combine(_base, version.ToString(CultureInfo.InvariantCulture)));

    private async Task ConnectAsync()
    {
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = Timeout.InfiniteTimeSpan };
        options.Servables.Add(new StoragePathServable("m", _base));
        _source = new FileSystemStoragePathSource(options);
        SourceAdapter<string, Loader> adapter = SourceAdapter.Create<string, Loader>(CreateLoader);
        AspiredVersions.ConnectSourceToTarget(adapter, _driver.Manager);
        AspiredVersions.ConnectSourceToTarget(_source, adapter);
        await _driver.SettleAsync();
    }

    private FakeLoader CreateLoader(ServableId id, string path)
    {
        if (File.Exists(Path.Combine(path, "corrupt")))
        {
            throw new InvalidDataException($"{path} holds a corrupt model.");
        }

        var loader = new FakeLoader(id);
        if (_failingVersions.ContainsKey(id.Version))
        {
            loader.FailLoads(100);
        }

        _loaders[id] = loader;
        return loader;
    }

    private long LatestVersion()
    {
        using ServableHandle<FakeServable> handle = _driver.Manager.GetServableHandle<FakeServable>(Latest);
        handle.Value.Use(); // Throws if the servable was disposed while it still served.
        Assert.Equal(handle.Id, handle.Value.Id);
        return handle.Id.Version;
    }
}
