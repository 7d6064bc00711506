using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>Loads one version of an ONNX model: creates an ONNX Runtime session from the model file, warms it up and serves it as an <see cref="OnnxServable"/>.</summary>
/// <remarks>
/// <para>
/// The constructor only records where the model is. <see cref="Loader.LoadAsync"/> creates the
/// <see cref="InferenceSession"/> with <see cref="SessionOptions"/> built from
/// <see cref="OnnxServableOptions"/> (threads, graph optimisation, memory arena, execution provider),
/// then runs every warm-up request; the version becomes available only after that. A model that is
/// missing, corrupt or truncated, a CUDA provider that is asked for but not usable, and a warm-up
/// request the model refuses all fail the load with ONNX Runtime's message; nothing is left behind.
/// </para>
/// <para>
/// Native runtime: this package references ONNX Runtime's managed API only; the app adds
/// <c>Microsoft.ML.OnnxRuntime</c> (CPU) or <c>Microsoft.ML.OnnxRuntime.Gpu</c> (CUDA). With neither, the
/// load fails naming them. Execution providers: <see cref="OnnxExecutionProvider.Cuda"/> fails the load
/// when the ONNX Runtime in the process has no CUDA provider (the CPU package), naming the GPU package to add;
/// <see cref="OnnxExecutionProvider.Auto"/> then runs on CPU and logs that it did.
/// </para>
/// <para>
/// <see cref="EstimateResources"/>: <see cref="OnnxServableOptions.ResourceEstimate"/> when set, else
/// the file size times <see cref="OnnxServableOptions.ResourceEstimateFactor"/>, as host memory on
/// CPU and as memory of the CUDA device on CUDA (both for Auto until the load has chosen).
/// </para>
/// <para>
/// Unload disposes the servable, which the manager does only after the version's last handle is
/// released. Not thread-safe beyond the <see cref="Loader"/> contract (one manager drives it).
/// </para>
/// </remarks>
public sealed class OnnxLoader : Loader<OnnxServable>
{
    /// <summary>The name ONNX Runtime gives its CUDA execution provider.</summary>
    internal const string CudaProviderName = "CUDAExecutionProvider";

    /// <summary>The package that carries the CUDA execution provider.</summary>
    internal const string GpuPackage = "Microsoft.ML.OnnxRuntime.Gpu";

    /// <summary>The package that carries the CPU natives.</summary>
    internal const string CpuPackage = "Microsoft.ML.OnnxRuntime";

    private static readonly Lazy<Exception?> s_nativeLoadFailure = new(ProbeNative, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly OnnxServableOptions _options;
    private readonly ILogger _logger;
    private readonly OnnxMetrics _metrics;
    private readonly BatchScheduler<OnnxBatchTask>? _sharedScheduler;
    private ResourceAllocation? _estimate;

    /// <summary>Creates a loader for the model file <paramref name="modelPath"/>; does no work until loaded.</summary>
    /// <param name="id">The servable version this loader loads; named in logs and errors.</param>
    /// <param name="modelPath">The model file, such as <c>/models/mlp/3/model.onnx</c>.</param>
    /// <param name="options">The session options; null for the defaults. Copied. <see cref="OnnxServableOptions.ModelFileName"/> is not used here: the path names the file.</param>
    /// <param name="loggerFactory">Where to log; null for nowhere.</param>
    /// <param name="meterFactory">Creates the "Servables.Onnx" meter; null to use a process-wide one.</param>
    /// <exception cref="ArgumentException">The path is empty or the options are invalid (the message lists every problem).</exception>
    public OnnxLoader(ServableId id, string modelPath, OnnxServableOptions? options = null, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
        : this(id, modelPath, options, loggerFactory, OnnxMetrics.For(meterFactory))
    {
    }

    internal OnnxLoader(ServableId id, string modelPath, OnnxServableOptions? options, ILoggerFactory? loggerFactory, OnnxMetrics metrics, BatchScheduler<OnnxBatchTask>? sharedScheduler = null)
    {
        _sharedScheduler = sharedScheduler;
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        Id = id;
        ModelPath = Path.GetFullPath(modelPath);
        _options = (options ?? new OnnxServableOptions()).ValidatedCopy(nameof(options));
        _logger = (ILogger?)loggerFactory?.CreateLogger<OnnxLoader>() ?? NullLogger.Instance;
        _metrics = metrics;
    }

    /// <summary>The servable version this loader loads.</summary>
    public ServableId Id { get; }

    /// <summary>The model file, as a full path.</summary>
    public string ModelPath { get; }

    /// <summary>Says why ONNX Runtime's native library cannot be used in this process (null when it can); replaceable by tests.</summary>
    internal Func<Exception?> NativeProbe { get; init; } = DefaultNativeProbe;

    /// <summary>Says why ONNX Runtime's native library cannot be used in this process (null when it can); probed once.</summary>
    internal static Func<Exception?> DefaultNativeProbe { get; } = static () => s_nativeLoadFailure.Value;

    /// <summary>Lists the execution providers the ONNX Runtime in this process has; replaceable by tests.</summary>
    internal Func<IReadOnlyCollection<string>> AvailableProviders { get; init; } = () => OrtEnv.Instance().GetAvailableProviders();

    /// <inheritdoc />
    /// <remarks>Computed once, before the load; after the load it narrows to the provider the load chose. It never grows.</remarks>
    public override ResourceAllocation EstimateResources()
    {
        _estimate ??= EstimateBeforeLoad();
        OnnxServable? loaded = Value;
        if (loaded is null || _options.ResourceEstimate is not null)
        {
            return _estimate;
        }

        ResourceAllocation chosen = loaded.ExecutionProvider == OnnxExecutionProvider.Cuda
            ? ResourceAllocation.GpuMemory(long.MaxValue, _options.CudaDeviceId)
            : ResourceAllocation.Ram(long.MaxValue);
        return _estimate.Min(chosen);
    }

    /// <inheritdoc />
    protected override Task<OnnxServable> CreateAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _estimate ??= EstimateBeforeLoad();
        EnsureNativeLoaded(NativeProbe);
        OnnxServable servable = CreateServable(cancellationToken);
        try
        {
            Warmup(servable, cancellationToken);
            if (_options.Batching is { } batching)
            {
                servable.StartBatching(batching, _sharedScheduler);
            }

            return Task.FromResult(servable);
        }
        catch
        {
            servable.Dispose();
            throw;
        }
    }

    /// <summary>Throws a clear error when the app has no usable ONNX Runtime native library (Servables.Onnx references the managed API only).</summary>
    internal static void EnsureNativeLoaded(Func<Exception?> probe)
    {
        if (probe() is { } failure)
        {
            throw new InvalidOperationException(
                $"ONNX Runtime's native library could not be loaded: {failure.Message.Split('\n')[0].Trim()} "
                + $"Servables.Onnx references only the managed API (Microsoft.ML.OnnxRuntime.Managed): add one native package to the app, {CpuPackage} for the CPU or {GpuPackage} for CUDA (not both: the CPU library would win).",
                failure);
        }
    }

    private static Exception? ProbeNative()
    {
        try
        {
            OnnxEnvironment.EnsureCreated(); // the first native call: it creates the environment with the shared pools
            return null;
        }
        catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
        {
            return ex is TypeInitializationException { InnerException: { } inner } ? inner : ex;
        }
    }

    private ResourceAllocation EstimateBeforeLoad()
    {
        if (_options.ResourceEstimate is { } fixedEstimate)
        {
            return fixedEstimate;
        }

        var file = new FileInfo(ModelPath);
        if (!file.Exists)
        {
            return ResourceAllocation.None; // The load fails and says why; nothing to reserve.
        }

        long bytes = (long)Math.Min(Math.Ceiling(file.Length * _options.ResourceEstimateFactor), long.MaxValue / 4);
        return _options.ExecutionProvider switch
        {
            OnnxExecutionProvider.Cuda => ResourceAllocation.GpuMemory(bytes, _options.CudaDeviceId),
            OnnxExecutionProvider.Auto when HasCudaProvider() => ResourceAllocation.Ram(bytes).Add(ResourceAllocation.GpuMemory(bytes, _options.CudaDeviceId)),
            _ => ResourceAllocation.Ram(bytes),
        };
    }

    private bool HasCudaProvider()
    {
        try
        {
            return AvailableProviders().Contains(CudaProviderName);
        }
#pragma warning disable CA1031 // Treat a runtime that cannot list its providers as one without CUDA.
        catch (Exception)
#pragma warning restore CA1031
        {
            return false;
        }
    }

    /// <summary>Creates the session on the provider the options ask for; the caller owns the result.</summary>
    private OnnxServable CreateServable(CancellationToken cancellationToken)
    {
        OnnxExecutionProvider requested = _options.ExecutionProvider;
        if (requested == OnnxExecutionProvider.Cpu)
        {
            return CreateServable(OnnxExecutionProvider.Cpu, cancellationToken);
        }

        IReadOnlyCollection<string> available = AvailableProviders();
        if (!available.Contains(CudaProviderName))
        {
            string reason = $"the ONNX Runtime in this process has no CUDA execution provider (it has {string.Join(", ", available)}); add the package {GpuPackage} to the app, in place of {CpuPackage}, for CUDA";
            if (requested == OnnxExecutionProvider.Cuda)
            {
                throw new InvalidOperationException(
                    $"Servable {Id} asks for the Cuda execution provider, but {reason}. Or set OnnxServableOptions.ExecutionProvider to Auto (CUDA when usable, else CPU) or Cpu.");
            }

            Log.CudaFallbackToCpu(_logger, Id, reason);
            return CreateServable(OnnxExecutionProvider.Cpu, cancellationToken);
        }

        if (requested == OnnxExecutionProvider.Cuda)
        {
            return CreateServable(OnnxExecutionProvider.Cuda, cancellationToken);
        }

        try
        {
            return CreateServable(OnnxExecutionProvider.Cuda, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            // A model that cannot load at all fails the CPU attempt as well, with its own message.
            Log.CudaFallbackToCpu(_logger, Id, ex.Message);
            return CreateServable(OnnxExecutionProvider.Cpu, cancellationToken);
        }
    }

    private OnnxServable CreateServable(OnnxExecutionProvider provider, CancellationToken cancellationToken)
    {
        Log.SessionCreating(_logger, Id, ModelPath, provider);
        using Activity? activity = OnnxMetrics.ActivitySource.StartActivity("onnx.session.create");
        activity?.SetTag("servable", Id.Name);
        activity?.SetTag("version", Id.Version);
        activity?.SetTag("execution_provider", provider.ToString());
        long started = Stopwatch.GetTimestamp();
        InferenceSession session;
        bool sharedPools;
        using (SessionOptions sessionOptions = CreateSessionOptions(provider, out sharedPools))
        using (cancellationToken.UnsafeRegister(static state => ((SessionOptions)state!).SetLoadCancellationFlag(true), sessionOptions))
        {
            try
            {
                session = new InferenceSession(ModelPath, sessionOptions);
            }
            catch (OnnxRuntimeException ex)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Log.SessionCreateFailed(_logger, Id, ModelPath, ex);
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                throw new InvalidOperationException($"ONNX Runtime could not create a session for {Id} from {ModelPath}: {ex.Message}{DescribeMissingFile()}", ex);
            }
        }

        OnnxServable servable;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            servable = new OnnxServable(Id, ModelPath, session, provider, _metrics, _logger) { SharedThreadPools = sharedPools };
        }
        catch
        {
            session.Dispose();
            throw;
        }

        double elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _metrics.SessionCreateDuration.Record(elapsed, new("servable", Id.Name), new("execution_provider", provider.ToString()));
        Log.SessionCreated(_logger, Id, provider, elapsed * 1000, servable.Signature);
        return servable;
    }

    /// <summary>Builds the session options for <paramref name="provider"/>; the caller disposes them.</summary>
    /// <param name="provider">Where the session runs.</param>
    /// <param name="sharedPools">Whether the session runs on the process's shared thread pools.</param>
    private SessionOptions CreateSessionOptions(OnnxExecutionProvider provider, out bool sharedPools)
    {
        sharedPools = false;
        var sessionOptions = new SessionOptions();
        try
        {
            sessionOptions.LogId = Id.ToString();
            // A batched session is run by its batch workers only: its own pools (ONNX Runtime's default) serve them best.
            if (_options.IntraOpThreads == 0 && _options.InterOpThreads == 0 && _options.Batching is null && OnnxEnvironment.EnsureCreated())
            {
                sharedPools = true;
                sessionOptions.DisablePerSessionThreads(); // the process's shared pools (OnnxEnvironment)
            }
            else
            {
                if (_options.IntraOpThreads == 0 && _options.InterOpThreads == 0 && _options.Batching is null)
                {
                    Log.SharedThreadPoolsUnavailable(_logger, Id);
                }

                sessionOptions.IntraOpNumThreads = _options.IntraOpThreads;
                sessionOptions.InterOpNumThreads = _options.InterOpThreads;
            }

            sessionOptions.ExecutionMode = _options.ExecutionMode;
            sessionOptions.GraphOptimizationLevel = _options.GraphOptimizationLevel;
            sessionOptions.EnableCpuMemArena = _options.EnableMemoryArena;
            if (provider == OnnxExecutionProvider.Cuda)
            {
                try
                {
                    sessionOptions.AppendExecutionProvider_CUDA(_options.CudaDeviceId);
                }
                catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException)
                {
                    throw new InvalidOperationException(
                        $"ONNX Runtime could not start the CUDA execution provider on device {_options.CudaDeviceId} for {Id}: {ex.Message} "
                        + $"Check that the CUDA and cuDNN libraries this ONNX Runtime ({GpuPackage}) needs are installed and that the device exists, or set ExecutionProvider to Auto or Cpu.",
                        ex);
                }
            }

            _options.ConfigureSessionOptions?.Invoke(sessionOptions);
            return sessionOptions;
        }
        catch
        {
            sessionOptions.Dispose();
            throw;
        }
    }

    /// <summary>Runs every warm-up request; the first that fails fails the load.</summary>
    private void Warmup(OnnxServable servable, CancellationToken cancellationToken)
    {
        if (_options.WarmupRequests.Count == 0)
        {
            return;
        }

        using Activity? activity = OnnxMetrics.ActivitySource.StartActivity("onnx.warmup");
        activity?.SetTag("servable", Id.Name);
        activity?.SetTag("version", Id.Version);
        long started = Stopwatch.GetTimestamp();
        int runs = 0;
        for (int r = 0; r < _options.WarmupRequests.Count; r++)
        {
            IReadOnlyDictionary<string, OnnxWarmupTensor> request = _options.WarmupRequests[r];
            var inputs = new Dictionary<string, OrtValue>(request.Count, StringComparer.Ordinal);
            try
            {
                foreach ((string name, OnnxWarmupTensor tensor) in request)
                {
                    inputs.Add(name, tensor.CreateValue());
                }

                for (int i = 0; i < _options.WarmupIterations; i++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    servable.Run(inputs).Dispose();
                    runs++;
                }
            }
            catch (Exception ex) when (ex is OnnxRuntimeException or ArgumentException)
            {
                Log.WarmupFailed(_logger, Id, ex);
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                string given = string.Join(", ", request.Select(kv => $"{kv.Key}: {kv.Value}"));
                throw new InvalidOperationException($"Warm-up request {r} of {Id} ({given}) failed: {ex.Message}", ex);
            }
            finally
            {
                foreach (OrtValue value in inputs.Values)
                {
                    value.Dispose();
                }
            }
        }

        double elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _metrics.WarmupDuration.Record(elapsed, new KeyValuePair<string, object?>("servable", Id.Name));
        Log.WarmupCompleted(_logger, Id, runs, elapsed * 1000);
    }

    /// <summary>When the model file is missing, says what the version folder holds instead.</summary>
    private string DescribeMissingFile()
    {
        if (File.Exists(ModelPath))
        {
            return string.Empty;
        }

        string? folder = Path.GetDirectoryName(ModelPath);
        if (folder is null || !Directory.Exists(folder))
        {
            return $" (the folder {folder} does not exist)";
        }

        string[] entries = [.. Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).Take(20)];
        return $" (the file does not exist; {folder} holds {(entries.Length == 0 ? "nothing" : string.Join(", ", entries))}; set OnnxServableOptions.ModelFileName if the model has another name)";
    }
}
