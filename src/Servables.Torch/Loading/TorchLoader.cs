using System.Collections;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Servables.Torch;

/// <summary>Loads one version of a Torch model (TorchScript, or a TorchSharp module with its weights), places it on its device, warms it up and serves it as a <see cref="TorchServable"/>.</summary>
/// <remarks>
/// <para>
/// The constructor only records where the model is. <see cref="Loader.LoadAsync"/> checks that a native
/// libtorch is there (naming the packages to add when not), chooses the device, then reads the file as
/// <see cref="TorchServableOptions.ModelKind"/> says: a TorchScript archive with <c>torch.jit.load</c>
/// straight onto the device; or weights (TorchSharp's format, a PyTorch <c>state_dict</c>, safetensors)
/// into the module that <see cref="TorchServableOptions.ModuleFactory"/> builds, after checking that every
/// parameter and buffer is there with the module's shape. It converts the module to
/// <see cref="TorchServableOptions.DType"/> when set, switches it to eval mode and runs every warm-up
/// request; the version becomes available only after that (and, with <see cref="TorchServableOptions.Batching"/>, starts
/// its batch queue). A file that is missing, corrupt or truncated,
/// weights that do not fit the module, a CUDA device that is asked for but not usable, and a warm-up request
/// the module refuses all fail the load with the reason; nothing is left behind.
/// </para>
/// <para>
/// Devices: <see cref="TorchDevice.Cuda"/> fails the load when the libtorch in the process has no usable
/// CUDA device (the CPU package, or no device), naming TorchSharp's CUDA package;
/// <see cref="TorchDevice.Auto"/> then runs on the CPU and logs that it did.
/// </para>
/// <para>
/// <see cref="EstimateResources"/>: <see cref="TorchServableOptions.ResourceEstimate"/> when set, else the
/// file size times <see cref="TorchServableOptions.ResourceEstimateFactor"/>, as host memory on the CPU and as
/// memory of the CUDA device on CUDA (both for Auto until the load has chosen).
/// </para>
/// <para>
/// Unload disposes the servable (and so the module and its parameters), which the manager does only
/// after the version's last handle is released; with batching, what the version's queue holds runs first. A TorchScript module's tensors are emptied first:
/// TorchSharp 0.107.0 / libtorch 2.10 keep a <c>torch.jit.load</c>ed module allocated after its disposal. Not thread-safe beyond the <see cref="Loader"/> contract
/// (one manager drives it).
/// </para>
/// </remarks>
public sealed class TorchLoader : Loader<TorchServable>
{
    private readonly TorchServableOptions _options;
    private readonly ILogger _logger;
    private readonly TorchMetrics _metrics;
    private readonly BatchScheduler<TorchBatchTask>? _sharedScheduler;
    private ResourceAllocation? _estimate;

    /// <summary>Creates a loader for the model file <paramref name="modelPath"/>; does no work until loaded.</summary>
    /// <param name="id">The servable version this loader loads; named in logs and errors.</param>
    /// <param name="modelPath">The model file, such as <c>/models/mlp/3/model.pt</c>.</param>
    /// <param name="options">The model kind, device, warm-up and estimate; null for the defaults (TorchScript on the CPU). Copied. <see cref="TorchServableOptions.ModelFileName"/> is not used here: the path names the file.</param>
    /// <param name="loggerFactory">Where to log; null for nowhere.</param>
    /// <param name="meterFactory">Creates the "Servables.Torch" meter; null to use a process-wide one.</param>
    /// <exception cref="ArgumentException">The path is empty or the options are invalid (the message lists every problem).</exception>
    public TorchLoader(ServableId id, string modelPath, TorchServableOptions? options = null, ILoggerFactory? loggerFactory = null, IMeterFactory? meterFactory = null)
        : this(id, modelPath, options, loggerFactory, TorchMetrics.For(meterFactory))
    {
    }

    internal TorchLoader(ServableId id, string modelPath, TorchServableOptions? options, ILoggerFactory? loggerFactory, TorchMetrics metrics, BatchScheduler<TorchBatchTask>? sharedScheduler = null)
    {
        _sharedScheduler = sharedScheduler;
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        Id = id;
        ModelPath = Path.GetFullPath(modelPath);
        _options = (options ?? new TorchServableOptions()).ValidatedCopy(nameof(options));
        _logger = (ILogger?)loggerFactory?.CreateLogger<TorchLoader>() ?? NullLogger.Instance;
        _metrics = metrics;
    }

    /// <summary>The servable version this loader loads.</summary>
    public ServableId Id { get; }

    /// <summary>The model file, as a full path.</summary>
    public string ModelPath { get; }

    /// <summary>Says whether CUDA device <c>index</c> is usable, and why not; replaceable by tests.</summary>
    internal Func<int, (bool Usable, string Reason)> CudaProbe { get; init; } = ProbeCuda;

    /// <inheritdoc />
    /// <remarks>Computed once, before the load; after the load it narrows to the device the load chose. It never grows.</remarks>
    public override ResourceAllocation EstimateResources()
    {
        _estimate ??= EstimateBeforeLoad();
        TorchServable? loaded = Value;
        if (loaded is null || _options.ResourceEstimate is not null)
        {
            return _estimate;
        }

        ResourceAllocation chosen = loaded.Device == TorchDevice.Cuda
            ? ResourceAllocation.GpuMemory(long.MaxValue, _options.CudaDeviceIndex)
            : ResourceAllocation.Ram(long.MaxValue);
        return _estimate.Min(chosen);
    }

    /// <inheritdoc />
    protected override Task<TorchServable> CreateAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _estimate ??= EstimateBeforeLoad();
        TorchRuntime.EnsureNativeLoaded();
        torch.Device device = ChooseDevice();
        TorchServable servable = CreateServable(device, cancellationToken);
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
        return _options.Device switch
        {
            TorchDevice.Cuda => ResourceAllocation.GpuMemory(bytes, _options.CudaDeviceIndex),
            TorchDevice.Auto => ResourceAllocation.Ram(bytes).Add(ResourceAllocation.GpuMemory(bytes, _options.CudaDeviceIndex)),
            _ => ResourceAllocation.Ram(bytes),
        };
    }

    private static (bool Usable, string Reason) ProbeCuda(int index)
    {
        if (!torch.cuda.is_available())
        {
            return (false, $"the libtorch in this process has no usable CUDA device (a CPU-only package, or no device or driver); reference {TorchRuntime.CudaPackages} for CUDA");
        }

        int count = torch.cuda.device_count();
        return index < count ? (true, string.Empty) : (false, $"CUDA device {index} does not exist (this process sees {count})");
    }

    private torch.Device ChooseDevice()
    {
        if (_options.Device == TorchDevice.Cpu)
        {
            return torch.CPU;
        }

        (bool usable, string reason) = CudaProbe(_options.CudaDeviceIndex);
        if (usable)
        {
            return torch.device(DeviceType.CUDA, _options.CudaDeviceIndex);
        }

        if (_options.Device == TorchDevice.Cuda)
        {
            throw new InvalidOperationException(
                $"Servable {Id} asks for device Cuda:{_options.CudaDeviceIndex}, but {reason}. Or set TorchServableOptions.Device to Auto (CUDA when usable, else CPU) or Cpu.");
        }

        Log.CudaFallbackToCpu(_logger, Id, reason);
        return torch.CPU;
    }

    /// <summary>Reads the module onto <paramref name="device"/>; the caller owns the result.</summary>
    private TorchServable CreateServable(torch.Device device, CancellationToken cancellationToken)
    {
        string deviceName = device.ToString();
        Log.ModuleLoading(_logger, Id, _options.ModelKind, ModelPath, deviceName);
        using Activity? activity = TorchMetrics.ActivitySource.StartActivity("torch.module.load");
        activity?.SetTag("servable", Id.Name);
        activity?.SetTag("version", Id.Version);
        activity?.SetTag("device", deviceName);
        long started = Stopwatch.GetTimestamp();
        nn.Module module;
        try
        {
            if (!File.Exists(ModelPath))
            {
                throw new FileNotFoundException($"The model file does not exist{DescribeMissingFile()}.", ModelPath);
            }

            module = ReadModule(device);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
        {
            Log.ModuleLoadFailed(_logger, Id, ModelPath, ex);
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            string reason = ex is System.Runtime.InteropServices.ExternalException ? TorchErrors.FirstLine(ex) : ex.Message;
            throw new InvalidOperationException($"Could not load {Id} ({_options.ModelKind}) from {ModelPath}: {reason}", ex);
        }

        TorchServable servable;
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            servable = new TorchServable(Id, ModelPath, _options.ModelKind, module, device, _metrics, _logger)
            {
                DeclaredInputs = [.. _options.Inputs],
                DeclaredOutputs = [.. _options.Outputs],
            };
        }
        catch
        {
            module.Dispose();
            throw;
        }

        double elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _metrics.LoadDuration.Record(elapsed, new("servable", Id.Name), new("device", servable.Device.ToString()));
        Log.ModuleLoaded(_logger, Id, _options.ModelKind, deviceName, elapsed * 1000);
        return servable;
    }

    /// <summary>Builds the module with its weights, on the device, in the dtype, in eval mode; disposes it on failure.</summary>
    private nn.Module ReadModule(torch.Device device)
    {
        nn.Module module;
        if (_options.ModelKind == TorchModelKind.TorchScript)
        {
            module = torch.jit.load(ModelPath, device.type, device.type == DeviceType.CUDA ? device.index : -1);
        }
        else
        {
            nn.Module<Tensor, Tensor> built;
            try
            {
                built = _options.ModuleFactory!(Id)
                    ?? throw new InvalidOperationException("TorchServableOptions.ModuleFactory returned null; it must return a new module.");
            }
            catch (Exception ex) when (ex is not InvalidOperationException)
            {
                throw new InvalidOperationException($"TorchServableOptions.ModuleFactory threw: {ex.Message}", ex);
            }

            module = built;
            try
            {
                LoadWeights(built);
                built.to(device);
            }
            catch
            {
                module.Dispose();
                throw;
            }
        }

        try
        {
            if (_options.DType is { } dtype)
            {
                module.to(dtype);
            }

            module.eval();
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>Loads the weights file into <paramref name="module"/> (on the CPU), after checking names and shapes where the format allows.</summary>
    private void LoadWeights(nn.Module module)
    {
        switch (_options.ModelKind)
        {
            case TorchModelKind.TorchSharpWeights:
                try
                {
                    module.load(ModelPath, strict: true);
                }
                catch (ArgumentException ex)
                {
                    throw new InvalidDataException($"the weights do not fit the module built by ModuleFactory ({ex.Message.TrimEnd('.')}).", ex);
                }

                break;
            case TorchModelKind.PyTorchStateDict:
                LoadStateDict(module, ReadPyTorchStateDict());
                break;
            case TorchModelKind.Safetensors:
                LoadStateDict(module, Safetensors.LoadStateDict(ModelPath));
                break;
            default:
                throw new InvalidOperationException($"{_options.ModelKind} is not a weights format.");
        }
    }

    private Dictionary<string, Tensor> ReadPyTorchStateDict()
    {
        Hashtable table = PyTorchUnpickler.UnpickleStateDict(ModelPath);
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in table)
        {
            if (entry.Key is not string name || entry.Value is not Tensor tensor)
            {
                foreach (Tensor t in dict.Values)
                {
                    t.Dispose();
                }

                throw new InvalidDataException($"the file is a pickle but not a state_dict of tensors (it holds {entry.Key} = {entry.Value?.GetType().Name ?? "null"}); save it with torch.save(model.state_dict(), path).");
            }

            dict[name] = tensor;
        }

        return dict;
    }

    /// <summary>Copies <paramref name="weights"/> into <paramref name="module"/> when every name and shape matches; disposes the loaded tensors.</summary>
    private static void LoadStateDict(nn.Module module, Dictionary<string, Tensor> weights)
    {
        try
        {
            Dictionary<string, Tensor> expected = module.state_dict();
            var problems = new List<string>();
            foreach ((string name, Tensor target) in expected)
            {
                if (!weights.TryGetValue(name, out Tensor? source))
                {
                    problems.Add($"'{name}' is missing");
                }
                else if (!source.shape.SequenceEqual(target.shape))
                {
                    problems.Add($"'{name}' has shape [{string.Join(", ", source.shape)}] in the file and [{string.Join(", ", target.shape)}] in the module");
                }
            }

            problems.AddRange(weights.Keys.Where(k => !expected.ContainsKey(k)).Order(StringComparer.Ordinal).Select(k => $"'{k}' is not in the module"));
            if (problems.Count > 0)
            {
                throw new InvalidDataException($"the weights do not fit the module built by ModuleFactory: {string.Join("; ", problems.Take(10))}{(problems.Count > 10 ? $"; and {problems.Count - 10} more" : string.Empty)}.");
            }

            module.load_state_dict(weights, strict: true);
        }
        finally
        {
            foreach (Tensor t in weights.Values)
            {
                t.Dispose();
            }
        }
    }

    /// <summary>Runs every warm-up request; the first that fails fails the load.</summary>
    private void Warmup(TorchServable servable, CancellationToken cancellationToken)
    {
        if (_options.WarmupRequests.Count == 0)
        {
            return;
        }

        using Activity? activity = TorchMetrics.ActivitySource.StartActivity("torch.warmup");
        activity?.SetTag("servable", Id.Name);
        long started = Stopwatch.GetTimestamp();
        int runs = 0;
        for (int r = 0; r < _options.WarmupRequests.Count; r++)
        {
            IReadOnlyList<TorchWarmupTensor> request = _options.WarmupRequests[r];
            for (int i = 0; i < _options.WarmupIterations; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    using DisposeScope scope = torch.NewDisposeScope();
                    Tensor[] inputs = [.. request.Select(t => t.CreateTensor())];
                    servable.Forward(inputs);
                }
                catch (Exception ex) when (ex is not OperationCanceledException and not OutOfMemoryException)
                {
                    Log.WarmupFailed(_logger, Id, ex);
                    activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                    throw new InvalidOperationException(
                        $"Warm-up request {r} ({string.Join(", ", request)}) of {Id} failed, so the version does not become available: {ex.Message}", ex);
                }

                runs++;
            }
        }

        double elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        _metrics.WarmupDuration.Record(elapsed, new KeyValuePair<string, object?>("servable", Id.Name));
        Log.WarmupCompleted(_logger, Id, runs, elapsed * 1000);
    }

    /// <summary>When the model file is missing, says what the version folder holds instead.</summary>
    private string DescribeMissingFile()
    {
        string? folder = Path.GetDirectoryName(ModelPath);
        if (folder is null || !Directory.Exists(folder))
        {
            return $" (the folder {folder} does not exist)";
        }

        string[] entries = [.. Directory.EnumerateFileSystemEntries(folder).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).Take(20)];
        return $" ({folder} holds {(entries.Length == 0 ? "nothing" : string.Join(", ", entries))}; set TorchServableOptions.ModelFileName if the model has another name)";
    }
}
