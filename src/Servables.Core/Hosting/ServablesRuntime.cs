using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Creates the manager and its monitor together, so that the monitor sees every state change from the first.</summary>
/// <remarks>A DI singleton; disposing it disposes both. Thread-safe.</remarks>
internal sealed class ServablesRuntime : IAsyncDisposable, IDisposable
{
    public ServablesRuntime(
        IOptions<AspiredVersionsManagerOptions> managerOptions,
        IOptions<ServableStateMonitorOptions> monitorOptions,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        TimeProvider? timeProvider = null)
    {
        AspiredVersionsManagerOptions manager = managerOptions.Value;
        ServableStateMonitorOptions monitor = monitorOptions.Value;
        if (timeProvider is not null)
        {
            // A TimeProvider registered in the container wins over the default system clock.
            if (ReferenceEquals(manager.TimeProvider, TimeProvider.System))
            {
                manager.TimeProvider = timeProvider;
            }

            if (ReferenceEquals(monitor.TimeProvider, TimeProvider.System))
            {
                monitor.TimeProvider = timeProvider;
            }
        }

        Manager = new AspiredVersionsManager(manager, loggerFactory?.CreateLogger<AspiredVersionsManager>(), meterFactory);
        Monitor = new ServableStateMonitor(Manager, monitor);
    }

    public AspiredVersionsManager Manager { get; }

    public ServableStateMonitor Monitor { get; }

    /// <summary>For a container disposed synchronously (<c>ServiceProvider.Dispose</c>): the same as <see cref="DisposeAsync"/>, blocking until it is done.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public async ValueTask DisposeAsync()
    {
        await Manager.DisposeAsync().ConfigureAwait(false);
        Monitor.Dispose();
    }
}
