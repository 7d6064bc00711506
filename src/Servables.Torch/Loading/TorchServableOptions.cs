using static TorchSharp.torch;

namespace Servables.Torch;

/// <summary>How a <see cref="TorchLoader"/> finds, builds, places, warms up and accounts for a module.</summary>
/// <remarks>
/// <para>
/// There is no thread-count option here on purpose: libtorch's intra-op and inter-op thread pools
/// belong to the process, not to a module. Set them once, at start-up, with <see cref="TorchRuntime.SetThreads"/>.
/// </para>
/// <para>
/// Loaders and adapters copy these values (and the warm-up list and batching options) when they are created; later
/// changes affect only loaders created afterwards. Not thread-safe while being changed.
/// </para>
/// </remarks>
public sealed class TorchServableOptions
{
    /// <summary>What the version folder holds.</summary>
    /// <value>Defaults to <see cref="TorchModelKind.TorchScript"/>.</value>
    public TorchModelKind ModelKind { get; set; } = TorchModelKind.TorchScript;

    /// <summary>The model's file name inside each version folder.</summary>
    /// <value>A plain file name (no folder), or null for the default of <see cref="ModelKind"/>: <c>model.pt</c>, <c>model.dat</c>, <c>model.pth</c> or <c>model.safetensors</c>. Defaults to null.</value>
    public string? ModelFileName { get; set; }

    /// <summary>
    /// Builds the module that the weights of a version are loaded into, for every kind but
    /// <see cref="TorchModelKind.TorchScript"/>: called once per load with the version being loaded, it
    /// returns a new module with the parameter names and shapes the weight file has. The loader owns and
    /// disposes the module. Must be thread-safe: loads of several versions may run at once.
    /// </summary>
    /// <value>Required for <see cref="TorchModelKind.TorchSharpWeights"/>, <see cref="TorchModelKind.PyTorchStateDict"/> and <see cref="TorchModelKind.Safetensors"/>; must be null for <see cref="TorchModelKind.TorchScript"/>. Defaults to null.</value>
    public Func<ServableId, nn.Module<Tensor, Tensor>>? ModuleFactory { get; set; }

    /// <summary>Where the module runs.</summary>
    /// <value>Defaults to <see cref="TorchDevice.Cpu"/>.</value>
    public TorchDevice Device { get; set; } = TorchDevice.Cpu;

    /// <summary>The CUDA device for <see cref="TorchDevice.Cuda"/> and <see cref="TorchDevice.Auto"/>.</summary>
    /// <value>0 to 255. Defaults to 0.</value>
    public int CudaDeviceIndex { get; set; }

    /// <summary>
    /// The floating-point element type the module's parameters are converted to after loading; inputs of
    /// another floating-point type are refused with a <see cref="TorchInputException"/>.
    /// </summary>
    /// <value><see cref="ScalarType.Float32"/>, <see cref="ScalarType.Float64"/>, <see cref="ScalarType.Float16"/> or <see cref="ScalarType.BFloat16"/>, or null to keep the type the file holds. Defaults to null.</value>
    public ScalarType? DType { get; set; }

    /// <summary>
    /// Requests run after the module is loaded and before the version becomes available; each is the
    /// list of <c>forward</c>'s inputs. A request that fails (for example, a shape the module refuses)
    /// fails the load. Empty for no warm-up.
    /// </summary>
    /// <value>Defaults to empty.</value>
    public IList<IReadOnlyList<TorchWarmupTensor>> WarmupRequests { get; } = [];

    /// <summary>The module's inputs as metadata endpoints describe them (KServe V2): TorchScript and TorchSharp modules do not record their input shapes, so the app declares them here.</summary>
    /// <remarks>Only described, never checked against the module. Use -1 for a dimension that varies, such as the batch.</remarks>
    /// <value>Defaults to empty.</value>
    public IList<TensorMetadata> Inputs { get; } = [];

    /// <summary>The module's outputs as metadata endpoints describe them; see <see cref="Inputs"/>.</summary>
    /// <value>Defaults to empty.</value>
    public IList<TensorMetadata> Outputs { get; } = [];

    /// <summary>How many times each warm-up request runs.</summary>
    /// <value>1 to 10000. Defaults to 1.</value>
    public int WarmupIterations { get; set; } = 1;

    /// <summary>
    /// The resources a loaded version is assumed to need at most, as a multiple of the model file's
    /// size: host memory on the CPU, memory of <see cref="CudaDeviceIndex"/> on CUDA. Ignored when
    /// <see cref="ResourceEstimate"/> is set.
    /// </summary>
    /// <value>Greater than 0, at most 1000. Defaults to 2.</value>
    public double ResourceEstimateFactor { get; set; } = 2.0;

    /// <summary>A fixed resource estimate that replaces the one computed from the file size.</summary>
    /// <value>Defaults to null: file size × <see cref="ResourceEstimateFactor"/>.</value>
    public ResourceAllocation? ResourceEstimate { get; set; }

    /// <summary>
    /// Batches <see cref="TorchServable.ForwardAsync(Tensor, bool, CancellationToken)"/> calls from many threads into one
    /// forward of the module; null runs each call on its own (on the caller's thread).
    /// </summary>
    /// <value>Defaults to null. See <see cref="TorchBatchingOptions"/>.</value>
    public TorchBatchingOptions? Batching { get; set; }

    /// <summary>The file name the loader reads: <see cref="ModelFileName"/>, or the default of <see cref="ModelKind"/>.</summary>
    public string EffectiveModelFileName => ModelFileName ?? DefaultFileName(ModelKind);

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (!Enum.IsDefined(ModelKind))
        {
            errors.Add($"{nameof(ModelKind)} must be TorchScript, TorchSharpWeights, PyTorchStateDict or Safetensors; it is {(int)ModelKind}.");
        }
        else if (ModelKind == TorchModelKind.TorchScript && ModuleFactory is not null)
        {
            errors.Add($"{nameof(ModuleFactory)} must be null for TorchScript: the archive holds the module's code.");
        }
        else if (ModelKind != TorchModelKind.TorchScript && ModuleFactory is null)
        {
            errors.Add($"{nameof(ModuleFactory)} is required for {ModelKind}: it builds the module the weights are loaded into.");
        }

        if (ModelFileName is not null && (string.IsNullOrWhiteSpace(ModelFileName) || ModelFileName != Path.GetFileName(ModelFileName) || ModelFileName is "." or ".."))
        {
            errors.Add($"{nameof(ModelFileName)} must be a plain file name such as model.pt, or null for the default; it is '{ModelFileName}'.");
        }

        if (!Enum.IsDefined(Device))
        {
            errors.Add($"{nameof(Device)} must be Cpu, Cuda or Auto; it is {(int)Device}.");
        }

        if (CudaDeviceIndex is < 0 or > 255)
        {
            errors.Add($"{nameof(CudaDeviceIndex)} must be between 0 and 255; it is {CudaDeviceIndex}.");
        }

        if (DType is { } dtype && dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16))
        {
            errors.Add($"{nameof(DType)} must be Float32, Float64, Float16, BFloat16 or null; it is {dtype}.");
        }

        if (WarmupIterations is < 1 or > 10000)
        {
            errors.Add($"{nameof(WarmupIterations)} must be between 1 and 10000; it is {WarmupIterations}.");
        }

        if (Inputs.Contains(null!) || Outputs.Contains(null!))
        {
            errors.Add($"{nameof(Inputs)} and {nameof(Outputs)} must hold no null.");
        }

        for (int i = 0; i < WarmupRequests.Count; i++)
        {
            IReadOnlyList<TorchWarmupTensor>? request = WarmupRequests[i];
            if (request is null || request.Count == 0 || request.Any(t => t is null))
            {
                errors.Add($"{nameof(WarmupRequests)}[{i}] must hold at least one tensor and no null.");
            }
        }

        if (double.IsNaN(ResourceEstimateFactor) || ResourceEstimateFactor <= 0 || ResourceEstimateFactor > 1000)
        {
            errors.Add($"{nameof(ResourceEstimateFactor)} must be greater than 0 and at most 1000; it is {ResourceEstimateFactor}.");
        }

        if (Batching is not null)
        {
            errors.AddRange(Batching.Validate());
        }

        return errors;
    }

    /// <summary>Throws when the options are invalid; returns a copy otherwise.</summary>
    internal TorchServableOptions ValidatedCopy(string paramName)
    {
        IReadOnlyList<string> errors = Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid TorchServableOptions: " + string.Join(" ", errors), paramName);
        }

        var copy = new TorchServableOptions
        {
            ModelKind = ModelKind,
            ModelFileName = ModelFileName,
            ModuleFactory = ModuleFactory,
            Device = Device,
            CudaDeviceIndex = CudaDeviceIndex,
            DType = DType,
            WarmupIterations = WarmupIterations,
            ResourceEstimateFactor = ResourceEstimateFactor,
            ResourceEstimate = ResourceEstimate,
            Batching = Batching?.Copy(),
        };
        foreach (IReadOnlyList<TorchWarmupTensor> request in WarmupRequests)
        {
            copy.WarmupRequests.Add([.. request]);
        }

        foreach (TensorMetadata input in Inputs)
        {
            copy.Inputs.Add(input);
        }

        foreach (TensorMetadata output in Outputs)
        {
            copy.Outputs.Add(output);
        }

        return copy;
    }

    private static string DefaultFileName(TorchModelKind kind) => kind switch
    {
        TorchModelKind.TorchSharpWeights => "model.dat",
        TorchModelKind.PyTorchStateDict => "model.pth",
        TorchModelKind.Safetensors => "model.safetensors",
        _ => "model.pt",
    };
}
