using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Servables.Testing;

namespace Servables.Core.Tests.Manager;

/// <summary>What the manager keeps after versions come and go.</summary>
public sealed class ManagerMemoryTests
{
    [Fact]
    public async Task ThousandVersionsSwapped_NothingALoaderHungOnItsTokenOutlivesTheVersion()
    {
        // A loader that registers on its token and never disposes the registration is common; if the
        // version's token source stayed linked to the manager's, that would keep every version's
        // registrations (and what they capture) alive for the manager's life.
        await using var driver = new ManagerDriver();
        var early = new List<WeakReference>();
        for (int v = 1; v <= 1000; v++)
        {
            Aspire(driver, v, v <= 20 ? early : null);
            await driver.SettleAsync();
        }

        Assert.Equal([new ServableId("m", 1000)], driver.Manager.ListAvailableServableIds());
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(20, early.Count);
        Assert.All(early, w => Assert.False(w.IsAlive, "A payload captured by a token registration of an unloaded version is still reachable."));
    }

    [Fact]
    public async Task Unload_ReleaseNativeMemoryOn_GivesFreedMemoryBackWhereGlibcRuns()
    {
        var logs = new CapturingLoggerProvider();
        await using (var manager = NewManager(logs, release: true))
        {
            await LoadAndUnloadAsync(manager);
        }

        int releases = logs.Entries.Count(e => e.EventId.Id == 129);
        if (NativeMemoryRelease.IsSupported)
        {
            Assert.Equal(1, releases);
            Assert.Contains("m:1", logs.Entries.First(e => e.EventId.Id == 129).Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal(0, releases);
        }
    }

    [Fact]
    public async Task Unload_ReleaseNativeMemoryOff_DoesNotTrim()
    {
        var logs = new CapturingLoggerProvider();
        await using (var manager = NewManager(logs, release: false))
        {
            await LoadAndUnloadAsync(manager);
        }

        Assert.DoesNotContain(logs.Entries, e => e.EventId.Id == 129);
        Assert.Contains(logs.Entries, e => e.EventId.Id == 105); // it did unload
    }

    [Fact]
    public void NativeMemoryRelease_OnGlibcLinux_IsSupportedAndRuns()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/usr/lib/x86_64-linux-gnu/libc.so.6") && !File.Exists("/lib/x86_64-linux-gnu/libc.so.6"))
        {
            Assert.Null(NativeMemoryRelease.Release());
            return;
        }

        Assert.True(NativeMemoryRelease.IsSupported);
        Assert.NotNull(NativeMemoryRelease.Release());
    }

    private static AspiredVersionsManager NewManager(CapturingLoggerProvider logs, bool release) =>
        new(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan, ReleaseNativeMemoryAfterUnload = release }, logs.CreateLogger<AspiredVersionsManager>());

    private static async Task LoadAndUnloadAsync(AspiredVersionsManager manager)
    {
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), new FakeLoader("m", 1))]);
        await manager.ManageStateAsync();
        manager.SetAspiredVersions("m", []);
        await manager.ManageStateAsync();
        Assert.Empty(manager.ListAvailableServableIds());
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Aspire(ManagerDriver driver, long version, List<WeakReference>? track)
    {
        var payload = new byte[1024];
        track?.Add(new WeakReference(payload));
        var loader = new SimpleLoader<FakeServable>(ct =>
        {
            ct.Register(() => GC.KeepAlive(payload)); // never disposed, as careless loaders do
            return Task.FromResult(new FakeServable(new ServableId("m", version)));
        });
        driver.Manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", version), loader)]);
    }
}
