using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Starts the manager and, for the servables registered with <c>AddStoragePathServable</c>, the file-system source that feeds it.</summary>
/// <remarks>Stopping stops polling; the container disposes the manager, which unloads everything. Not thread-safe beyond what the host guarantees.</remarks>
internal sealed class ServablesHostedService(
    ServablesRuntime runtime,
    IOptions<ServableStorageOptions> storageOptions,
    IServiceProvider services,
    ILoggerFactory? loggerFactory = null) : IHostedService, IAsyncDisposable
{
    private FileSystemStoragePathSource? _source;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        ServableStorageOptions storage = storageOptions.Value;
        if (storage.Registrations.Count == 0)
        {
            return Task.CompletedTask;
        }

        var sourceOptions = new FileSystemStoragePathSourceOptions
        {
            PollPeriod = storage.PollPeriod,
            UnloadWhenNoVersions = storage.UnloadWhenNoVersions,
            TimeProvider = services.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System,
        };
        var factories = new Dictionary<string, Func<IServiceProvider, ServableId, string, Loader>>(StringComparer.Ordinal);
        foreach (StoragePathRegistration registration in storage.Registrations)
        {
            sourceOptions.Servables.Add(registration.Servable);
            factories[registration.Servable.Name] = registration.CreateLoader;
        }

        _source = new FileSystemStoragePathSource(sourceOptions, loggerFactory?.CreateLogger<FileSystemStoragePathSource>());
        SourceAdapter<string, Loader> adapter = SourceAdapter.Create<string, Loader>((id, path) => factories[id.Name](services, id, path));
        AspiredVersions.ConnectSourceToTarget(adapter, runtime.Manager);
        AspiredVersions.ConnectSourceToTarget(_source, adapter);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_source is not null)
        {
            await _source.DisposeAsync().ConfigureAwait(false);
        }
    }

    public ValueTask DisposeAsync() => _source?.DisposeAsync() ?? ValueTask.CompletedTask;
}
