using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Servables;
using Servables.Onnx;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers ONNX models served from version folders.</summary>
public static class OnnxServablesBuilderExtensions
{
    /// <summary>
    /// Serves the ONNX model <paramref name="name"/> from the numeric version folders under
    /// <paramref name="basePath"/> (<c>&lt;basePath&gt;/&lt;version&gt;/model.onnx</c>), hot-swapping as folders appear.
    /// Handles give an <see cref="OnnxServable"/>: <c>manager.GetServableHandle&lt;OnnxServable&gt;(ServableRequest.Latest(name))</c>.
    /// </summary>
    /// <param name="builder">The builder from <c>AddServables</c>.</param>
    /// <param name="name">The servable's name; unique. Also the name of its <see cref="OnnxServableOptions"/> (named options).</param>
    /// <param name="basePath">The folder that holds the version folders.</param>
    /// <param name="configure">Configures the session options, warm-up and resource estimate; null for the defaults. Validated when the host starts.</param>
    /// <param name="versionPolicy">Which versions to serve; null for the latest one.</param>
    /// <returns>The builder, so that calls chain.</returns>
    /// <remarks>
    /// Put each version into place whole (write it elsewhere, then move the folder in): a folder is
    /// loaded as soon as a poll sees it. A load that fails is retried as the manager's options say
    /// (<c>MaxLoadRetries</c>, <c>ShouldRetryLoad</c>) and then leaves the version in error, while the
    /// version that was serving keeps serving.
    /// </remarks>
    public static IServablesBuilder AddOnnxServable(
        this IServablesBuilder builder,
        string name,
        string basePath,
        Action<OnnxServableOptions>? configure = null,
        ServableVersionPolicy? versionPolicy = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentException.ThrowIfNullOrEmpty(basePath);
        IServiceCollection services = builder.Services;
        OptionsBuilder<OnnxServableOptions> options = services.AddOptions<OnnxServableOptions>(name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxServableOptions>, OnnxServableOptionsValidator>());
        services.TryAddSingleton(sp => OnnxMetrics.For(sp.GetService<System.Diagnostics.Metrics.IMeterFactory>()));
        services.TryAddSingleton<OnnxBatchSchedulers>();
        return builder.AddStoragePathServable(
            name,
            basePath,
            (sp, id, path) =>
            {
                OnnxServableOptions servableOptions = sp.GetRequiredService<IOptionsMonitor<OnnxServableOptions>>().Get(name);
                return OnnxSourceAdapter.CreateLoader(
                    id,
                    path,
                    servableOptions,
                    sp.GetService<ILoggerFactory>(),
                    sp.GetRequiredService<OnnxMetrics>(),
                    servableOptions.Batching is { Scheduler: null } batching ? sp.GetRequiredService<OnnxBatchSchedulers>().For(name, batching.BatchWorkers, sp) : null);
            },
            versionPolicy);
    }
}
