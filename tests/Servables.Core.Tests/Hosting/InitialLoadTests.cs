using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Servables.Core.Tests.Sources;
using Servables.Testing;

namespace Servables.Core.Tests.Hosting;

/// <summary>The host's start waits for the first version of every registered servable, as TF Serving does.</summary>
public sealed class InitialLoadTests : IDisposable
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(20);
    private readonly TempDirectory _root = new();
    private readonly string _base;

    public InitialLoadTests()
    {
        _base = _root.CreateFolder("m");
        Directory.CreateDirectory(Path.Combine(_base, "1"));
    }

    public void Dispose() => _root.Dispose();

    [Fact]
    public async Task StartAsync_SlowFirstLoad_ReturnsOnlyOnceTheVersionIsAvailable_SoAHostedServiceAfterItCanUseIt()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loading = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var seenByNext = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using IHost host = BuildHost(services =>
        {
            services.AddServables()
                .AddStoragePathServable("m", _base, (_, id, _) => new SimpleLoader<string>(async ct =>
                {
                    loading.TrySetResult();
                    await release.Task.WaitAsync(ct);
                    return $"model {id}";
                }));
            services.AddHostedService(sp => new UsesModelOnStart(sp.GetRequiredService<IServableManager>(), seenByNext));
        });

        Task starting = host.StartAsync();
        await loading.Task.WaitAsync(WaitLimit);
        Assert.False(starting.IsCompleted); // the version cannot be available before the release
        Assert.False(seenByNext.Task.IsCompleted);
        release.SetResult();
        await starting.WaitAsync(WaitLimit);

        Assert.Equal("model m:1", await seenByNext.Task.WaitAsync(WaitLimit));
        await host.StopAsync().WaitAsync(WaitLimit);
    }

    [Fact]
    public async Task StartAsync_OnlyVersionFails_FailsTheStartWithItsError()
    {
        using IHost host = BuildHost(services => services
            .AddServables(o => o.MaxLoadRetries = 0)
            .AddStoragePathServable("m", _base, (_, _, path) => new SimpleLoader<string>(_ => throw new InvalidDataException($"{path}/model.bin is corrupt"))));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync().WaitAsync(WaitLimit));

        Assert.Contains("no version of servable 'm' could be loaded", ex.Message, StringComparison.Ordinal);
        Assert.Contains("model.bin is corrupt", ex.Message, StringComparison.Ordinal);
        Assert.IsType<ServableLoadException>(ex.InnerException);
    }

    [Fact]
    public async Task StartAsync_NoVersionFolder_TimesOutNamingTheBasePath()
    {
        string empty = _root.CreateFolder("empty");
        using IHost host = BuildHost(services => services
            .AddServables()
            .AddStoragePathServable("e", empty, (_, _, _) => new FakeLoader("e", 1))
            .ConfigureStorage(o => o.InitialLoadTimeout = TimeSpan.FromMilliseconds(200)));

        TimeoutException ex = await Assert.ThrowsAsync<TimeoutException>(() => host.StartAsync().WaitAsync(WaitLimit));

        Assert.Contains("no version of 'e' (no version found under " + empty + ")", ex.Message, StringComparison.Ordinal);
        Assert.Contains("InitialLoadTimeout", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StartAsync_WaitTurnedOff_ReturnsBeforeTheLoadFinishes()
    {
        var release = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using IHost host = BuildHost(services => services
            .AddServables()
            .AddStoragePathServable("m", _base, (_, _, _) => new SimpleLoader<string>(_ => release.Task))
            .ConfigureStorage(o => o.WaitForInitialLoad = false));

        await host.StartAsync().WaitAsync(WaitLimit);

        Assert.False(host.Services.GetRequiredService<IServableManager>().TryGetServableHandle(ServableRequest.Latest("m"), out ServableHandle<string> _));
        release.SetResult("late");
        await host.StopAsync().WaitAsync(WaitLimit);
    }

    [Fact]
    public async Task StopAsync_HostShutdownTimeout_BoundsAnUnloadThatNeverEnds()
    {
        var never = new TaskCompletionSource();
        using IHost host = BuildHost(services =>
        {
            services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
            services.AddServables(o => o.StopTimeout = Timeout.InfiniteTimeSpan)
                .AddStoragePathServable("m", _base, (_, _, _) => new SimpleLoader<string>(_ => Task.FromResult("model"), _ => never.Task));
        });
        await host.StartAsync().WaitAsync(WaitLimit);

        await host.StopAsync().WaitAsync(WaitLimit);
        never.SetResult();
    }

    [Fact]
    public async Task Validation_InitialLoadTimeoutOutOfRange_FailsTheStartNamingIt()
    {
        using IHost host = BuildHost(services => services
            .AddServables()
            .AddStoragePathServable("m", _base, (_, _, _) => new FakeLoader("m", 1))
            .ConfigureStorage(o => o.InitialLoadTimeout = TimeSpan.Zero));

        Microsoft.Extensions.Options.OptionsValidationException ex =
            await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => host.StartAsync().WaitAsync(WaitLimit));

        Assert.Contains("InitialLoadTimeout must be between 1 ms and 1 day", ex.Message, StringComparison.Ordinal);
    }

    private static IHost BuildHost(Action<IServiceCollection> configure)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        configure(builder.Services);
        return builder.Build();
    }

    private sealed class UsesModelOnStart(IServableManager models, TaskCompletionSource<string> seen) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            using ServableHandle<string> model = models.GetServableHandle<string>(ServableRequest.Latest("m"));
            seen.SetResult(model.Value);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
