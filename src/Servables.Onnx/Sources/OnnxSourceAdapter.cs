using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Servables.Onnx;

/// <summary>
/// Turns version folders (<c>&lt;base&gt;/&lt;version&gt;</c>, as a <see cref="FileSystemStoragePathSource"/>
/// sends them) into <see cref="OnnxLoader"/>s for <c>&lt;folder&gt;/&lt;ModelFileName&gt;</c>.
/// </summary>
/// <remarks>
/// Connect it between the source and the manager with <see cref="AspiredVersions.ConnectSourceToTarget{T}"/>;
/// <c>AddOnnxServable</c> does that for a host. Converting only creates the loader (cheap); a missing
/// or bad model fails that version's load, reported by the manager. Thread-safe.
/// </remarks>
public sealed class OnnxSourceAdapter : SourceAdapter<string, Loader>
{
    private readonly OnnxServableOptions _options;
    private readonly ILoggerFactory? _loggerFactory;
    private readonly OnnxMetrics _metrics;

    /// <summary>Creates an adapter whose loaders use <paramref name="options"/>.</summary>
    /// <param name="options">The options of every loader; null for the defaults. Copied.</param>
    /// <param name="loggerFactory">Where loaders log; null for nowhere.</param>
    /// <param name="meterFactory">Creates the "Servables.Onnx" meter; null to use a process-wide one.</param>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    public OnnxSourceAdapter(OnnxServableOptions? options = null, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
        : this(options, loggerFactory, OnnxMetrics.For(meterFactory))
    {
    }

    internal OnnxSourceAdapter(OnnxServableOptions? options, ILoggerFactory? loggerFactory, OnnxMetrics metrics)
    {
        _options = (options ?? new OnnxServableOptions()).ValidatedCopy(nameof(options));
        _loggerFactory = loggerFactory;
        _metrics = metrics;
    }

    /// <summary>Creates the loader of version <paramref name="id"/> from its folder <paramref name="versionPath"/>.</summary>
    protected override Loader Convert(ServableId id, string versionPath) => CreateLoader(id, versionPath, _options, _loggerFactory, _metrics);

    /// <summary>The loader for the model file inside <paramref name="versionPath"/>.</summary>
    internal static OnnxLoader CreateLoader(ServableId id, string versionPath, OnnxServableOptions options, ILoggerFactory? loggerFactory, OnnxMetrics metrics, BatchScheduler<OnnxBatchTask>? sharedScheduler = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(versionPath);
        return new OnnxLoader(id, Path.Combine(versionPath, options.ModelFileName), options, loggerFactory, metrics, sharedScheduler);
    }
}
