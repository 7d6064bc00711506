using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Servables;
using Servables.Torch;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Torch models (TorchScript, or TorchSharp modules with weights) served from version folders.</summary>
public static class TorchServablesBuilderExtensions
{
    /// <summary>
    /// Serves the Torch model <paramref name="name"/> from the numeric version folders under
    /// <paramref name="basePath"/> (<c>&lt;basePath&gt;/&lt;version&gt;/model.pt</c> by default), hot-swapping as folders appear.
    /// Handles give a <see cref="TorchServable"/>: <c>manager.GetServableHandle&lt;TorchServable&gt;(ServableRequest.Latest(name))</c>.
    /// </summary>
    /// <param name="builder">The builder from <c>AddServables</c>.</param>
    /// <param name="name">The servable's name; unique. Also the name of its <see cref="TorchServableOptions"/> (named options).</param>
    /// <param name="basePath">The folder that holds the version folders.</param>
    /// <param name="configure">Configures the model kind, device, warm-up, resource estimate and batching; null for the defaults (TorchScript on the CPU, no batching). Validated when the host starts.</param>
    /// <param name="versionPolicy">Which versions to serve; null for the latest one.</param>
    /// <returns>The builder, so that calls chain.</returns>
    /// <remarks>
    /// Put each version into place whole (write it elsewhere, then move the folder in): a folder is
    /// loaded as soon as a poll sees it. A load that fails is retried as the manager's options say
    /// (<c>MaxLoadRetries</c>, <c>ShouldRetryLoad</c>) and then leaves the version in error, while the
    /// version that was serving keeps serving. With <see cref="TorchServableOptions.Batching"/> on (and no
    /// <see cref="TorchBatchingOptions.Scheduler"/> of the caller's), the servable's versions share one batch
    /// scheduler (made with the first version's <see cref="TorchBatchingOptions.BatchWorkers"/>, stopped with the
    /// host's container), so that an old and a new version interleave during a swap; a version's queue runs
    /// what it holds before the version unloads. libtorch's thread pools are per process: set them once with
    /// <see cref="TorchRuntime.SetThreads"/>.
    /// </remarks>
    public static IServablesBuilder AddTorchServable(
        this IServablesBuilder builder,
        string name,
        string basePath,
        Action<TorchServableOptions>? configure = null,
        ServableVersionPolicy? versionPolicy = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        IServiceCollection services = builder.Services;
        OptionsBuilder<TorchServableOptions> options = services.AddOptions<TorchServableOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<TorchServableOptions>, TorchServableOptionsValidator>());
        services.TryAddSingleton(sp => TorchMetrics.For(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton<TorchBatchSchedulers>();
        return builder.AddStoragePathServable(
            name,
            basePath,
            (sp, id, path) =>
            {
                TorchServableOptions servableOptions = sp.GetRequiredService<IOptionsMonitor<TorchServableOptions>>().Get(name);
                return TorchSourceAdapter.CreateLoader(
                    id,
                    path,
                    servableOptions,
                    sp.GetService<ILoggerFactory>(),
                    sp.GetRequiredService<TorchMetrics>(),
                    servableOptions.Batching is { Scheduler: null } batching ? sp.GetRequiredService<TorchBatchSchedulers>().For(name, batching.BatchWorkers, sp) : null);
            },
            versionPolicy);
    }
}
