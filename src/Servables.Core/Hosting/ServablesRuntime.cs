using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Creates the manager and its monitor together, so that the monitor sees every state change from the first.</summary>
/// <remarks>A DI singleton; disposing it disposes both. Thread-safe.</remarks>
internal sealed class ServablesRuntime : IAsyncDisposable
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

    public async ValueTask DisposeAsync()
    {
        await Manager.DisposeAsync().ConfigureAwait(false);
        Monitor.Dispose();
    }
}
