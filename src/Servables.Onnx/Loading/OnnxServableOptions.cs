using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>How an <see cref="OnnxLoader"/> finds, creates, warms up and accounts for an ONNX Runtime session.</summary>
/// <remarks>
/// Loaders and adapters copy these values (and the warm-up list) when they are created; later
/// changes affect only loaders created afterwards. Not thread-safe while being changed.
/// </remarks>
public sealed class OnnxServableOptions
{
    /// <summary>The model's file name inside each version folder.</summary>
    /// <value>A plain file name (no folder). Defaults to <c>model.onnx</c>.</value>
    public string ModelFileName { get; set; } = "model.onnx";

    /// <summary>Where the model runs.</summary>
    /// <value>Defaults to <see cref="OnnxExecutionProvider.Cpu"/>.</value>
    public OnnxExecutionProvider ExecutionProvider { get; set; } = OnnxExecutionProvider.Cpu;

    /// <summary>The CUDA device for <see cref="OnnxExecutionProvider.Cuda"/> and <see cref="OnnxExecutionProvider.Auto"/>.</summary>
    /// <value>0 to 255. Defaults to 0.</value>
    public int CudaDeviceId { get; set; }

    /// <summary>Threads one operator may use, in a pool of the session's own; 0 for the process's shared pools.</summary>
    /// <value>
    /// 0 to 1024. Defaults to 0: with <see cref="InterOpThreads"/> also 0, the session runs on the pools
    /// every session in the process shares (<see cref="OnnxEnvironment"/>), so that concurrent callers and
    /// the two versions of a hot swap do not oversubscribe the cores; with <see cref="Batching"/> on, whose
    /// batch workers are the session's only callers, it gets pools of its own of ONNX Runtime's default size
    /// (one thread per physical core, spinning between runs), which batch far better. Set a count to give the
    /// session its own pools of that size (1 suits many concurrent callers of a small model).
    /// </value>
    public int IntraOpThreads { get; set; }

    /// <summary>Threads that run independent operators in parallel (only with <see cref="ExecutionMode.ORT_PARALLEL"/>), in a pool of the session's own; 0 for the shared pools.</summary>
    /// <value>0 to 1024. Defaults to 0. Setting it gives the session its own pools, as <see cref="IntraOpThreads"/> does.</value>
    public int InterOpThreads { get; set; }

    /// <summary>Whether independent operators run one after another or in parallel.</summary>
    /// <value>Defaults to <see cref="ExecutionMode.ORT_SEQUENTIAL"/>.</value>
    public ExecutionMode ExecutionMode { get; set; } = ExecutionMode.ORT_SEQUENTIAL;

    /// <summary>How much ONNX Runtime rewrites the graph when it creates the session.</summary>
    /// <value>Defaults to <see cref="GraphOptimizationLevel.ORT_ENABLE_ALL"/>.</value>
    public GraphOptimizationLevel GraphOptimizationLevel { get; set; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>Whether the session keeps a CPU memory arena (faster repeated runs; memory is held until the session is disposed).</summary>
    /// <value>Defaults to true.</value>
    public bool EnableMemoryArena { get; set; } = true;

    /// <summary>
    /// Requests run after the session is created and before the version becomes available; each maps
    /// input names to tensors. A request that fails (for example, inputs that do not match the model)
    /// fails the load. Empty for no warm-up.
    /// </summary>
    /// <value>Defaults to empty.</value>
    public IList<IReadOnlyDictionary<string, OnnxWarmupTensor>> WarmupRequests { get; } = [];

    /// <summary>How many times each warm-up request runs.</summary>
    /// <value>1 to 10000. Defaults to 1.</value>
    public int WarmupIterations { get; set; } = 1;

    /// <summary>
    /// The resources a loaded version is assumed to need at most, as a multiple of the model file's
    /// size: host memory on CPU, memory of <see cref="CudaDeviceId"/> on CUDA. Ignored when
    /// <see cref="ResourceEstimate"/> is set.
    /// </summary>
    /// <value>Greater than 0, at most 1000. Defaults to 2.</value>
    public double ResourceEstimateFactor { get; set; } = 2.0;

    /// <summary>A fixed resource estimate that replaces the one computed from the file size.</summary>
    /// <value>Defaults to null: file size × <see cref="ResourceEstimateFactor"/>.</value>
    public ResourceAllocation? ResourceEstimate { get; set; }

    /// <summary>
    /// Adjusts the <see cref="SessionOptions"/> after the settings above were applied (custom
    /// operator libraries, session config entries). It must not dispose them.
    /// </summary>
    /// <value>Defaults to null.</value>
    public Action<SessionOptions>? ConfigureSessionOptions { get; set; }

    /// <summary>Batches <see cref="OnnxServable.RunAsync"/> calls from many threads into one session run; null runs each call on its own.</summary>
    /// <value>Defaults to null. See <see cref="OnnxBatchingOptions"/>.</value>
    public OnnxBatchingOptions? Batching { get; set; }

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(ModelFileName) || ModelFileName != Path.GetFileName(ModelFileName) || ModelFileName is "." or "..")
        {
            errors.Add($"{nameof(ModelFileName)} must be a plain file name such as model.onnx; it is '{ModelFileName}'.");
        }

        if (!Enum.IsDefined(ExecutionProvider))
        {
            errors.Add($"{nameof(ExecutionProvider)} must be Cpu, Cuda or Auto; it is {(int)ExecutionProvider}.");
        }

        if (CudaDeviceId is < 0 or > 255)
        {
            errors.Add($"{nameof(CudaDeviceId)} must be between 0 and 255; it is {CudaDeviceId}.");
        }

        if (IntraOpThreads is < 0 or > 1024)
        {
            errors.Add($"{nameof(IntraOpThreads)} must be between 0 and 1024; it is {IntraOpThreads}.");
        }

        if (InterOpThreads is < 0 or > 1024)
        {
            errors.Add($"{nameof(InterOpThreads)} must be between 0 and 1024; it is {InterOpThreads}.");
        }

        if (!Enum.IsDefined(ExecutionMode))
        {
            errors.Add($"{nameof(ExecutionMode)} is not a defined value; it is {(int)ExecutionMode}.");
        }

        if (!Enum.IsDefined(GraphOptimizationLevel))
        {
            errors.Add($"{nameof(GraphOptimizationLevel)} is not a defined value; it is {(int)GraphOptimizationLevel}.");
        }

        if (WarmupIterations is < 1 or > 10000)
        {
            errors.Add($"{nameof(WarmupIterations)} must be between 1 and 10000; it is {WarmupIterations}.");
        }

        for (int i = 0; i < WarmupRequests.Count; i++)
        {
            IReadOnlyDictionary<string, OnnxWarmupTensor>? request = WarmupRequests[i];
            if (request is null || request.Count == 0 || request.Any(kv => string.IsNullOrEmpty(kv.Key) || kv.Value is null))
            {
                errors.Add($"{nameof(WarmupRequests)}[{i}] must map at least one input name to a tensor, with no empty name or null tensor.");
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
    internal OnnxServableOptions ValidatedCopy(string paramName)
    {
        IReadOnlyList<string> errors = Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid OnnxServableOptions: " + string.Join(" ", errors), paramName);
        }

        var copy = new OnnxServableOptions
        {
            ModelFileName = ModelFileName,
            ExecutionProvider = ExecutionProvider,
            CudaDeviceId = CudaDeviceId,
            IntraOpThreads = IntraOpThreads,
            InterOpThreads = InterOpThreads,
            ExecutionMode = ExecutionMode,
            GraphOptimizationLevel = GraphOptimizationLevel,
            EnableMemoryArena = EnableMemoryArena,
            WarmupIterations = WarmupIterations,
            ResourceEstimateFactor = ResourceEstimateFactor,
            ResourceEstimate = ResourceEstimate,
            ConfigureSessionOptions = ConfigureSessionOptions,
            Batching = Batching?.Copy(),
        };
        foreach (IReadOnlyDictionary<string, OnnxWarmupTensor> request in WarmupRequests)
        {
            copy.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor>(request, StringComparer.Ordinal));
        }

        return copy;
    }
}
