using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Servables.Async.Tests.Queue;

/// <summary>A started host with async APIs, for tests; disposing stops it.</summary>
public sealed class AsyncHost : IAsyncDisposable
{
    private AsyncHost(IHost host) => Host = host;

    public IHost Host { get; }

    public HandlerProbe Probe => Host.Services.GetRequiredService<HandlerProbe>();

    public IAsyncApiClient Client(string name = AsyncApiOptions.DefaultName) => Host.Services.GetRequiredKeyedService<IAsyncApiClient>(name);

    public static async Task<AsyncHost> StartAsync(Action<IServiceCollection> configure, FakeTimeProvider? time = null, ILoggerProvider? logs = null)
    {
        HostApplicationBuilder builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
        }

        builder.Services.AddSingleton<HandlerProbe>();
        if (time is not null)
        {
            builder.Services.AddSingleton<TimeProvider>(time);
        }

        configure(builder.Services);
        IHost host = builder.Build();
        await host.StartAsync();
        return new AsyncHost(host);
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await Host.StopAsync(timeout.Token);
        if (Host is IAsyncDisposable asyncDisposable)
        {
            await asyncDisposable.DisposeAsync();
        }
        else
        {
            Host.Dispose();
        }
    }
}
