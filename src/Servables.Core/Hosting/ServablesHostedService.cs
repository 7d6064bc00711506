using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Starts the manager and, for the servables registered with <c>AddStoragePathServable</c>, the file-system source that feeds it.</summary>
/// <remarks>
/// Starting waits, unless <see cref="ServableStorageOptions.WaitForInitialLoad"/> is off, until every
/// registered servable has a version available (bounded by <see cref="ServableStorageOptions.InitialLoadTimeout"/>
/// and the host's start token). Stopping stops polling, then stops the manager (it unloads
/// everything) within the host's shutdown timeout. Not thread-safe beyond what the host guarantees.
/// </remarks>
internal sealed class ServablesHostedService(
    ServablesRuntime runtime,
    IOptions<ServableStorageOptions> storageOptions,
    IServiceProvider services,
    ILoggerFactory? loggerFactory = null) : IHostedService, IAsyncDisposable, IDisposable
{
    private FileSystemStoragePathSource? _source;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        ServableStorageOptions storage = storageOptions.Value;
        if (storage.Registrations.Count == 0)
        {
            return;
        }

        TimeProvider time = services.GetService(typeof(TimeProvider)) as TimeProvider ?? TimeProvider.System;
        var sourceOptions = new FileSystemStoragePathSourceOptions
        {
            PollPeriod = storage.PollPeriod,
            UnloadWhenNoVersions = storage.UnloadWhenNoVersions,
            TimeProvider = time,
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
        if (!storage.WaitForInitialLoad)
        {
            return;
        }

        ILogger? logger = loggerFactory?.CreateLogger<ServablesHostedService>();
        long started = time.GetTimestamp();
        if (logger is not null)
        {
            Log.WaitingForInitialLoad(logger, string.Join(", ", storage.Registrations.Select(r => r.Servable.Name)), storage.InitialLoadTimeout);
        }

        await InitialLoadWait.WaitAsync(runtime.Monitor, storage.Registrations.Select(r => r.Servable), storage.InitialLoadTimeout, time, cancellationToken).ConfigureAwait(false);
        if (logger is not null)
        {
            Log.InitialLoadComplete(logger, time.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_source is not null)
        {
            await _source.DisposeAsync().ConfigureAwait(false);
        }

        await runtime.Manager.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => _source?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>For a container disposed synchronously (<c>ServiceProvider.Dispose</c>): the same as <see cref="DisposeAsync"/>, blocking until it is done.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
