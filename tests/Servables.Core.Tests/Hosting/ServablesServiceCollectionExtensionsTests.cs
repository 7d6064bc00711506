using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Servables.Core.Tests.Sources;
using Servables.Testing;

namespace Servables.Core.Tests.Hosting;

public sealed class ServablesServiceCollectionExtensionsTests : IDisposable
{
    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _root = new();
    private readonly ConcurrentDictionary<ServableId, FakeLoader> _loaders = new();
    private readonly string _base;

    public ServablesServiceCollectionExtensionsTests()
    {
        _base = _root.CreateFolder("m");
        Directory.CreateDirectory(Path.Combine(_base, "1"));
    }

    public void Dispose() => _root.Dispose();

    [Fact]
    public void BareServiceProvider_DisposedSynchronously_StopsTheManagerWithoutThrowing()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddServables().AddStoragePathServable("m", _base, CreateLoader);
        ServiceProvider provider = services.BuildServiceProvider();
        AspiredVersionsManager manager = provider.GetRequiredService<AspiredVersionsManager>();
        Assert.NotEmpty(provider.GetServices<IHostedService>()); // the source's service, created as a host would

        provider.Dispose(); // as `using var provider = services.BuildServiceProvider()` does, in tests and tools

        Assert.Throws<ObjectDisposedException>(() => manager.SetAspiredVersions("m", []));
    }

    [Fact]
    public async Task AddStoragePathServable_HostStarted_ServesLatestAndDisposesItOnShutdown()
    {
        IHost host = BuildHost(services => services.AddServables()
            .AddStoragePathServable("m", _base, CreateLoader)
            .ConfigureStorage(o => o.PollPeriod = TimeSpan.FromMilliseconds(50)));
        FakeServable servable;
        try
        {
            await host.StartAsync().WaitAsync(WaitLimit);
            ServableStateMonitor monitor = host.Services.GetRequiredService<ServableStateMonitor>();

            ServableAvailability availability = await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("m")], WaitLimit);

            Assert.True(availability.IsAvailable, availability.DescribeUnavailable());
            using ServableHandle<FakeServable> handle = host.Services.GetRequiredService<IServableManager>().GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
            Assert.Equal(new ServableId("m", 1), handle.Value.Id);
            servable = handle.Value;
        }
        finally
        {
            await host.StopAsync().WaitAsync(WaitLimit);
            await DisposeAsync(host);
        }

        Assert.True(servable.IsDisposed);
    }

    [Fact]
    public async Task Dispose_HostDisposedSynchronously_DisposesServable()
    {
        IHost host = BuildHost(services => services.AddServables()
            .AddStoragePathServable("m", _base, CreateLoader)
            .ConfigureStorage(o => o.PollPeriod = TimeSpan.FromMilliseconds(50)));
        await host.StartAsync().WaitAsync(WaitLimit);
        ServableStateMonitor monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("m")], WaitLimit)).IsAvailable);
        await host.StopAsync().WaitAsync(WaitLimit);

        host.Dispose(); // What "using IHost host = ...; host.Run();" does.

        Assert.True(_loaders[new ServableId("m", 1)].Created!.IsDisposed);
    }

    [Fact]
    public async Task AddStoragePathServable_NewVersionFolder_HostSwapsToIt()
    {
        IHost host = BuildHost(services => services.AddServables()
            .AddStoragePathServable("m", _base, CreateLoader)
            .ConfigureStorage(o => o.PollPeriod = TimeSpan.FromMilliseconds(50)));
        try
        {
            await host.StartAsync().WaitAsync(WaitLimit);
            ServableStateMonitor monitor = host.Services.GetRequiredService<ServableStateMonitor>();
            Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", 1)], WaitLimit)).IsAvailable);

            Directory.CreateDirectory(Path.Combine(_base, "2"));
            ServableAvailability availability = await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("m", 2)], WaitLimit);
            Assert.True(availability.IsAvailable, availability.DescribeUnavailable());
            await Eventually.WaitUntilAsync(() => _loaders[new ServableId("m", 1)].Created!.IsDisposed);

            using ServableHandle<FakeServable> handle = host.Services.GetRequiredService<IServableManager>().GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
            Assert.Equal(2, handle.Id.Version);
        }
        finally
        {
            await host.StopAsync().WaitAsync(WaitLimit);
            await DisposeAsync(host);
        }
    }

    [Fact]
    public async Task AddServables_CalledTwice_RegistersOneManagerAndAppliesBothConfigurations()
    {
        var services = new ServiceCollection();
        services.AddServables(o => o.LoadWorkerCount = 3);
        services.AddServables(o => o.MaxLoadRetries = 7);

        await using ServiceProvider provider = services.BuildServiceProvider();

        Assert.Single(services, d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(ServablesHostedService));
        Assert.Single(services, d => d.ServiceType == typeof(AspiredVersionsManager));
        Assert.Single(provider.GetServices<IHostedService>().OfType<ServablesHostedService>());
        Assert.Same(provider.GetRequiredService<AspiredVersionsManager>(), provider.GetRequiredService<IServableManager>());
        Assert.Same(provider.GetRequiredService<ServablesRuntime>().Manager, provider.GetRequiredService<AspiredVersionsManager>());
        Assert.Same(provider.GetRequiredService<ServablesRuntime>().Monitor, provider.GetRequiredService<ServableStateMonitor>());
        AspiredVersionsManagerOptions options = provider.GetRequiredService<IOptions<AspiredVersionsManagerOptions>>().Value;
        Assert.Equal(3, options.LoadWorkerCount);
        Assert.Equal(7, options.MaxLoadRetries);
    }

    [Fact]
    public async Task StartAsync_InvalidManagerOptions_ThrowsOptionsValidationNamingTheOption()
    {
        IHost host = BuildHost(services => services.AddServables(o => o.LoadWorkerCount = 0));
        try
        {
            OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().WaitAsync(WaitLimit));

            Assert.Contains(nameof(AspiredVersionsManagerOptions.LoadWorkerCount), error.Message, StringComparison.Ordinal);
        }
        finally
        {
            await DisposeAsync(host);
        }
    }

    [Fact]
    public async Task StartAsync_DuplicateStoragePathServableNames_ThrowsOptionsValidation()
    {
        IHost host = BuildHost(services => services.AddServables()
            .AddStoragePathServable("m", _base, CreateLoader)
            .AddStoragePathServable("m", _root.Path, CreateLoader));
        try
        {
            OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().WaitAsync(WaitLimit));

            Assert.Contains("'m'", error.Message, StringComparison.Ordinal);
            Assert.Empty(_loaders);
        }
        finally
        {
            await DisposeAsync(host);
        }
    }

    [Fact]
    public async Task StartAsync_StoragePollPeriodOutOfRange_ThrowsOptionsValidation()
    {
        IHost host = BuildHost(services => services.AddServables()
            .AddStoragePathServable("m", _base, CreateLoader)
            .ConfigureStorage(o => o.PollPeriod = TimeSpan.FromMilliseconds(1)));
        try
        {
            OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync().WaitAsync(WaitLimit));

            Assert.Contains(nameof(ServableStorageOptions.PollPeriod), error.Message, StringComparison.Ordinal);
        }
        finally
        {
            await DisposeAsync(host);
        }
    }

    [Fact]
    public async Task AddServables_TimeProviderRegistered_ManagerAndMonitorUseIt()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2030, 1, 2, 3, 4, 5, TimeSpan.Zero));
        IHost host = BuildHost(services =>
        {
            services.AddSingleton<TimeProvider>(time);
            services.AddServables().AddStoragePathServable("m", _base, CreateLoader);
        });
        try
        {
            await host.StartAsync().WaitAsync(WaitLimit);
            ServableStateMonitor monitor = host.Services.GetRequiredService<ServableStateMonitor>();

            // The timeout runs on the fake clock, which never moves: bound the wait in real time instead.
            ServableAvailability availability = await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("m")], Timeout.InfiniteTimeSpan).WaitAsync(WaitLimit);

            Assert.True(availability.IsAvailable);
            Assert.Equal(time.GetUtcNow(), monitor.GetState(new ServableId("m", 1))!.Timestamp);
        }
        finally
        {
            await host.StopAsync().WaitAsync(WaitLimit);
            await DisposeAsync(host);
        }
    }

    private static IHost BuildHost(Action<IServiceCollection> configure)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        configure(builder.Services);
        return builder.Build();
    }

    private static async ValueTask DisposeAsync(IHost host)
    {
        if (host is IAsyncDisposable asyncDisposable)
        {
            await asyncDisposable.DisposeAsync().AsTask().WaitAsync(WaitLimit);
        }
        else
        {
            host.Dispose();
        }
    }

    private FakeLoader CreateLoader(IServiceProvider services, ServableId id, string path)
    {
        var loader = new FakeLoader(id);
        _loaders[id] = loader;
        return loader;
    }
}
