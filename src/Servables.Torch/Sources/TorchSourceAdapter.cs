using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Servables.Torch;

/// <summary>
/// Turns version folders (<c>&lt;base&gt;/&lt;version&gt;</c>, as a <see cref="FileSystemStoragePathSource"/>
/// sends them) into <see cref="TorchLoader"/>s for <c>&lt;folder&gt;/&lt;model file&gt;</c>.
/// </summary>
/// <remarks>
/// Connect it between the source and the manager with <see cref="AspiredVersions.ConnectSourceToTarget{T}"/>;
/// <c>AddTorchServable</c> does that for a host. Converting only creates the loader (cheap); a missing
/// or bad model fails that version's load, reported by the manager. Thread-safe.
/// </remarks>
public sealed class TorchSourceAdapter : SourceAdapter<string, Loader>
{
    private readonly TorchServableOptions _options;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly TorchMetrics _metrics;

    /// <summary>Creates an adapter whose loaders use <paramref name="options"/>.</summary>
    /// <param name="options">The options of every loader; null for the defaults (TorchScript <c>model.pt</c> on the CPU). Copied.</param>
    /// <param name="loggerFactory">Where loaders log; null for nowhere.</param>
    /// <param name="meterFactory">Creates the "Servables.Torch" meter; null to use a process-wide one.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    public TorchSourceAdapter(TorchServableOptions? options = null, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
        : this(options, loggerFactory, TorchMetrics.For(meterFactory))
    {
    }

    internal TorchSourceAdapter(TorchServableOptions? options, ILoggerFactory? loggerFactory, TorchMetrics metrics)
    {
        _options = (options ?? new TorchServableOptions()).ValidatedCopy(nameof(options));
        _loggerFactory = loggerFactory;
        _metrics = metrics;
    }

    /// <summary>Creates the loader of version <paramref name="id"/> from its folder <paramref name="versionPath"/>.</summary>
    protected override Loader Convert(ServableId id, string versionPath) => CreateLoader(id, versionPath, _options, _loggerFactory, _metrics);

    /// <summary>The loader for the model file inside <paramref name="versionPath"/>.</summary>
    internal static TorchLoader CreateLoader(ServableId id, string versionPath, TorchServableOptions options, ILoggerFactory? loggerFactory, TorchMetrics metrics, BatchScheduler<TorchBatchTask>? sharedScheduler = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(versionPath);
        return new TorchLoader(id, Path.Combine(versionPath, options.EffectiveModelFileName), options, loggerFactory, metrics, sharedScheduler);
    }
}
