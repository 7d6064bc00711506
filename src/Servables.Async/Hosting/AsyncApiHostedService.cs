using Microsoft.Extensions.Hosting;

namespace Servables.Async;

/// <summary>Starts and stops one async API with the host.</summary>
internal sealed class AsyncApiHostedService(AsyncApi api) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => api.StartAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => api.StopAsync(cancellationToken);
}
