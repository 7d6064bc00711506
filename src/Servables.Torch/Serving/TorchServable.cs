using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch;

/// <summary>
/// One loaded version of a TorchSharp or TorchScript module, and <c>Forward</c> over it. The servable
/// a <see cref="ServableHandle{T}"/> of <see cref="TorchLoader"/> gives.
/// </summary>
/// <remarks>
/// <para>
/// <c>Forward</c> runs on the caller's thread with autograd off (<c>torch.no_grad()</c>, which is
/// per thread), and nothing it creates outlives the call but its output: a TorchSharp module runs inside
/// a <see cref="DisposeScope"/> that opens and closes within the call (its intermediates and the inputs'
/// device copies are disposed before it returns); a TorchScript module's intermediates never reach
/// managed code, and the inputs' device copies are disposed explicitly. The output goes to the caller's
/// own dispose scope when one is open.
/// Inputs on another device are copied to the module's device; the output comes back on the CPU
/// unless the caller asks to keep it on the module's device.
/// </para>
/// <para>
/// Inputs that the module cannot run throw <see cref="TorchInputException"/>: a floating-point element
/// type other than the module's parameters' (checked before running), a wrong input count for a
/// TorchSharp module, and any input that libtorch refuses while running (a wrong rank or shape: a
/// TorchScript archive declares no input shapes, so libtorch's message is the one that names the
/// problem). The module is unchanged and keeps serving.
/// </para>
/// <para>
/// Lifetime: the loader creates it and disposes it on unload, which the manager starts only after
/// the version's last handle was released. Disposing it is safe on its own too: <c>Forward</c> calls
/// that started before keep the module alive until the last of them returns (that call disposes
/// it), and later calls throw <see cref="ObjectDisposedException"/>. With batching on, <see cref="DisposeAsync"/>
/// (what the loader's unload calls) first runs what the version's batch queue holds.
/// </para>
/// <para>
/// Batching (<see cref="TorchServableOptions.Batching"/>): <c>ForwardAsync</c> calls from many threads are
/// concatenated along dimension 0, run as one forward on a batch worker, and split back; see
/// <see cref="TorchBatchingOptions"/>.
/// </para>
/// <para>Thread-safe: any number of threads may call <c>Forward</c> and <c>ForwardAsync</c> at once on one servable.</para>
/// </remarks>
public sealed class TorchServable : IServableMetadata, IDisposable, IAsyncDisposable
{
    private const int DisposedFlag = int.MinValue;

    private readonly nn.Module _module;
    private readonly jit.ScriptModule? _script;
    private readonly nn.Module<Tensor, Tensor>? _typed;
    private readonly torch.Device _device;
    private readonly ScalarType? _parameterType;
    private readonly TorchMetrics _metrics;
    private readonly ILogger _logger;
    private readonly KeyValuePair<string, object?> _servableTag;

    // Calls in flight in the low bits; DisposedFlag once disposed. The module is released when both
    // the flag is set and the count is zero, exactly once.
    private int _state;
    private int _released;

    // Set once by the loader when TorchServableOptions.Batching is on.
    private BatchQueue<TorchBatchTask>? _batchQueue;
    private BatchScheduler<TorchBatchTask>? _ownedScheduler;
    private int[] _allowedBatchSizes = [];

    /// <summary>Wraps <paramref name="module"/>, which it then owns and disposes; it must already be on <paramref name="device"/> in eval mode.</summary>
    internal TorchServable(ServableId id, string modelPath, TorchModelKind modelKind, nn.Module module, torch.Device device, TorchMetrics metrics, ILogger logger)
    {
        Id = id;
        ModelPath = modelPath;
        ModelKind = modelKind;
        _module = module;
        _script = module as jit.ScriptModule;
        _typed = module as nn.Module<Tensor, Tensor>;
        if (_script is null && _typed is null)
        {
            throw new ArgumentException($"The module of {id} is a {module.GetType().Name}: it must be a TorchScript module or an nn.Module<Tensor, Tensor>.", nameof(module));
        }

        _device = device;
        Device = device.type == DeviceType.CUDA ? TorchDevice.Cuda : TorchDevice.Cpu;
        DeviceIndex = device.type == DeviceType.CUDA ? Math.Max(0, (int)device.index) : 0;
        _parameterType = FirstFloatingParameterType(module);
        _metrics = metrics;
        _logger = logger;
        _servableTag = new KeyValuePair<string, object?>("servable", id.Name);
        _metrics.Modules.Add(1, new KeyValuePair<string, object?>("device", Device.ToString()));
    }

    /// <summary>The servable version this is.</summary>
    public ServableId Id { get; }

    /// <summary>The file the module was loaded from.</summary>
    public string ModelPath { get; }

    /// <summary>What kind of file that was.</summary>
    public TorchModelKind ModelKind { get; }

    /// <summary>Where the module runs: <see cref="TorchDevice.Cpu"/> or <see cref="TorchDevice.Cuda"/> (never Auto: what Auto chose).</summary>
    public TorchDevice Device { get; }

    /// <summary>The CUDA device index when <see cref="Device"/> is Cuda; 0 on the CPU.</summary>
    public int DeviceIndex { get; }

    /// <summary>The element type of the module's floating-point parameters (what floating-point inputs must have); null when it has none.</summary>
    public ScalarType? ParameterType => _parameterType;

    /// <inheritdoc />
    /// <remarks><c>pytorch_torchscript</c> for a TorchScript archive, <c>pytorch_torchsharp</c> for a TorchSharp module with its weights.</remarks>
    public string Platform => ModelKind == TorchModelKind.TorchScript ? "pytorch_torchscript" : "pytorch_torchsharp";

    /// <inheritdoc />
    /// <remarks>As declared in <see cref="TorchServableOptions.Inputs"/> (a module does not record them).</remarks>
    public IReadOnlyList<TensorMetadata> Inputs => DeclaredInputs;

    /// <inheritdoc />
    /// <remarks>As declared in <see cref="TorchServableOptions.Outputs"/>.</remarks>
    public IReadOnlyList<TensorMetadata> Outputs => DeclaredOutputs;

    internal TensorMetadata[] DeclaredInputs { get; init; } = [];

    internal TensorMetadata[] DeclaredOutputs { get; init; } = [];

    /// <summary>The module itself, for benchmarks and tests that compare against raw TorchSharp on the very same module.</summary>
    internal nn.Module Module => _module;

    /// <summary>True once <see cref="Dispose"/> was called.</summary>
    internal bool IsDisposed => Volatile.Read(ref _state) < 0;

    /// <summary>True once the module itself was disposed (after the last in-flight call).</summary>
    internal bool IsModuleReleased => Volatile.Read(ref _released) != 0;

    /// <summary>How many tensors of a TorchScript module were emptied before its disposal (see <see cref="ReleaseScriptTensors"/>).</summary>
    internal int EmptiedScriptTensors { get; private set; }

    /// <summary>Runs the module's <c>forward</c> on one input.</summary>
    /// <param name="input">The input, on any device (copied to the module's when it differs). The caller keeps ownership.</param>
    /// <param name="outputOnCpu">True (the default) to return the output on the CPU; false to keep it on the module's device.</param>
    /// <returns>The output tensor. The caller disposes it; when the caller has a <see cref="DisposeScope"/> open, it goes into that scope.</returns>
    /// <exception cref="TorchInputException">The module cannot run this input (element type, rank, shape).</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed.</exception>
    public Tensor Forward(Tensor input, bool outputOnCpu = true)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Run([input], outputOnCpu);
    }

    /// <summary>Runs the module's <c>forward</c> on several inputs (TorchScript modules whose <c>forward</c> takes more than one tensor).</summary>
    /// <param name="inputs">The inputs in <c>forward</c>'s order, on any device. The caller keeps ownership.</param>
    /// <param name="outputOnCpu">True (the default) to return the output on the CPU; false to keep it on the module's device.</param>
    /// <returns>The output tensor. The caller disposes it; when the caller has a <see cref="DisposeScope"/> open, it goes into that scope.</returns>
    /// <exception cref="TorchInputException">The module cannot run these inputs (count, element type, rank, shape).</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed.</exception>
    public Tensor Forward(IReadOnlyList<Tensor> inputs, bool outputOnCpu = true)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        Tensor[] copy = [.. inputs];
        for (int i = 0; i < copy.Length; i++)
        {
            ArgumentNullException.ThrowIfNull(copy[i], $"{nameof(inputs)}[{i}]");
        }

        return Run(copy, outputOnCpu);
    }

    /// <summary>Whether <c>ForwardAsync</c> batches calls (<see cref="TorchServableOptions.Batching"/>).</summary>
    public bool IsBatching => _batchQueue is not null;

    /// <summary>The scheduler that runs this version's batches; null without batching. Tests check that versions share it.</summary>
    internal BatchScheduler<TorchBatchTask>? BatchScheduler { get; private set; }

    /// <summary>
    /// Runs the module's <c>forward</c> on one input, batched with other callers' calls when
    /// <see cref="TorchServableOptions.Batching"/> is on (see <see cref="TorchBatchingOptions"/>); otherwise as
    /// <see cref="Forward(Tensor, bool)"/>, on the caller's thread. The result is the module's output for the call's rows.
    /// </summary>
    /// <param name="input">The input, with the call's rows as its first dimension, on any device. The caller keeps ownership and keeps it alive until the task completes.</param>
    /// <param name="outputOnCpu">True (the default) to return the output on the CPU; false to keep it on the module's device.</param>
    /// <param name="cancellationToken">Cancels the call while it waits for its batch; once its batch runs, the call completes.</param>
    /// <returns>
    /// The call's rows of the output, in a tensor of its own (it shares no memory with other calls). The caller disposes it.
    /// A batched output is made on a batch worker and belongs to no <see cref="DisposeScope"/>; without batching it joins the
    /// caller's scope when one is open, as <see cref="Forward(Tensor, bool)"/>'s does.
    /// </returns>
    /// <exception cref="ArgumentException">Batching is on and the input has no rows first (a scalar), or more rows than <see cref="BatchQueueOptions.MaxBatchSize"/>.</exception>
    /// <exception cref="BatchQueueFullException">Batching is on and the queue is full: retry later.</exception>
    /// <exception cref="TorchInputException">The module cannot run this input (element type, rank, shape).</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed, or its batch queue closed for an unload: get a new handle.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled before the call's batch ran.</exception>
    public Task<Tensor> ForwardAsync(Tensor input, bool outputOnCpu = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        return RunAsync([input], outputOnCpu, cancellationToken);
    }

    /// <summary>Runs the module's <c>forward</c> on several inputs, batched as <see cref="ForwardAsync(Tensor, bool, CancellationToken)"/> does (each input concatenated with the same input of other calls).</summary>
    /// <param name="inputs">The inputs in <c>forward</c>'s order, each with the call's rows first, on any device. The caller keeps ownership and keeps them alive until the task completes.</param>
    /// <param name="outputOnCpu">True (the default) to return the output on the CPU; false to keep it on the module's device.</param>
    /// <param name="cancellationToken">Cancels the call while it waits for its batch; once its batch runs, the call completes.</param>
    /// <returns>The call's rows of the output, in a tensor of its own. The caller disposes it (see <see cref="ForwardAsync(Tensor, bool, CancellationToken)"/> on dispose scopes).</returns>
    /// <exception cref="ArgumentException">Batching is on and the inputs do not all have the call's rows first, or have more rows than <see cref="BatchQueueOptions.MaxBatchSize"/>.</exception>
    /// <exception cref="BatchQueueFullException">Batching is on and the queue is full: retry later.</exception>
    /// <exception cref="TorchInputException">The module cannot run these inputs (count, element type, rank, shape).</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed, or its batch queue closed for an unload: get a new handle.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled before the call's batch ran.</exception>
    public Task<Tensor> ForwardAsync(IReadOnlyList<Tensor> inputs, bool outputOnCpu = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        Tensor[] copy = [.. inputs];
        for (int i = 0; i < copy.Length; i++)
        {
            ArgumentNullException.ThrowIfNull(copy[i], $"{nameof(inputs)}[{i}]");
        }

        return RunAsync(copy, outputOnCpu, cancellationToken);
    }

    /// <summary>
    /// Disposes the servable once what its batch queue holds has run (at once without batching):
    /// what the loader's unload calls. Calls queued before it get their results; later ones throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_batchQueue is { } queue)
        {
            await queue.DisposeAsync().ConfigureAwait(false);
            Log.BatchQueueDrained(_logger, Id);
        }

        if (_ownedScheduler is { } scheduler)
        {
            await scheduler.DisposeAsync().ConfigureAwait(false);
        }

        Dispose();
    }

    /// <summary>
    /// Disposes the module, at once when no <c>Forward</c> is in flight, else when the last one returns.
    /// Later <c>Forward</c> calls throw <see cref="ObjectDisposedException"/>. Idempotent.
    /// </summary>
    public void Dispose()
    {
        int prior = Interlocked.Or(ref _state, DisposedFlag);
        if (prior == 0)
        {
            Release();
        }
    }

    /// <summary>Starts batching <c>ForwardAsync</c> calls on <paramref name="options"/>' scheduler, on <paramref name="shared"/>, or on one of its own. Called once, by the loader, before the version is available.</summary>
    internal void StartBatching(TorchBatchingOptions options, BatchScheduler<TorchBatchTask>? shared)
    {
        BatchScheduler<TorchBatchTask> scheduler = options.Scheduler ?? shared
            ?? (_ownedScheduler = new BatchScheduler<TorchBatchTask>(new BatchSchedulerOptions { BatchWorkers = options.BatchWorkers }));
        _allowedBatchSizes = [.. options.Queue.AllowedBatchSizes];
        _batchQueue = scheduler.AddQueue(Id.ToString(), RunBatch, options.Queue);
        BatchScheduler = scheduler;
        Log.BatchingStarted(_logger, Id, options.Queue.MaxBatchSize, options.Queue.BatchTimeout.TotalMilliseconds, string.Join(", ", _allowedBatchSizes), scheduler.BatchWorkers, _ownedScheduler is null);
    }

    /// <summary>Describes it, such as <c>mlp:2 (TorchScript) on Cpu</c>.</summary>
    public override string ToString() => $"{Id} ({ModelKind}) on {Device}{(Device == TorchDevice.Cuda ? ":" + DeviceIndex : string.Empty)}";

    /// <summary>Describes inputs for messages, such as <c>(Float32[2, 4] on cpu)</c>.</summary>
    internal static string Describe(IReadOnlyList<Tensor> inputs) =>
        "(" + string.Join(", ", inputs.Select(t => t.IsInvalid ? "a disposed tensor" : $"{t.dtype}[{string.Join(", ", t.shape)}] on {t.device}")) + ")";

    /// <summary>Counts a call in; throws once disposed. Internal so that tests can hold a call open.</summary>
    internal void EnterRun()
    {
        int state = Volatile.Read(ref _state);
        while (true)
        {
            ObjectDisposedException.ThrowIf(state < 0, this);
            int seen = Interlocked.CompareExchange(ref _state, state + 1, state);
            if (seen == state)
            {
                return;
            }

            state = seen;
        }
    }

    /// <summary>Counts a call out; the last one out after <see cref="Dispose"/> releases the module.</summary>
    internal void ExitRun()
    {
        if (Interlocked.Decrement(ref _state) == DisposedFlag)
        {
            Release();
        }
    }

    private Tensor Run(Tensor[] inputs, bool outputOnCpu)
    {
        EnterRun();
        long started = _metrics.ForwardDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        try
        {
            if (CheckInputs(inputs) is { } problem)
            {
                Record(started, "bad_input");
                throw new TorchInputException(Id, problem, Describe(inputs));
            }

            Tensor output;
            try
            {
                output = _typed is not null ? ForwardModule(inputs[0], outputOnCpu) : ForwardScript(inputs, outputOnCpu);
            }
            catch (ExternalException ex)
            {
                Record(started, "bad_input");
                throw new TorchInputException(Id, "libtorch refused them: " + TorchErrors.FirstLine(ex), Describe(inputs), ex);
            }

            Record(started, "success");
            return output;
        }
        catch (Exception ex) when (ex is not TorchInputException && Record(started, "error"))
        {
            throw;
        }
        finally
        {
            ExitRun();
        }
    }

    /// <summary>
    /// A TorchSharp module's forward, inside a dispose scope of its own: its managed intermediates (and
    /// the input's device copy) are disposed before this returns; only the output leaves, to the caller's
    /// scope when there is one.
    /// </summary>
    private Tensor ForwardModule(Tensor input, bool outputOnCpu)
    {
        using DisposeScope scope = torch.NewDisposeScope();
        using IDisposable noGrad = torch.no_grad();
        Tensor result = _typed!.forward(OnDevice(input));
        if (outputOnCpu && _device.type != DeviceType.CPU && result.device_type != DeviceType.CPU)
        {
            result = result.cpu();
        }

        return scope.MoveToOuter(result);
    }

    /// <summary>
    /// A TorchScript module's forward. Its intermediates live in libtorch only and die with the call; the
    /// only managed tensors are the input's device copies and the output, so no scope is needed: the copies
    /// are disposed here, and the output joins the caller's dispose scope when there is one.
    /// </summary>
    private Tensor ForwardScript(Tensor[] inputs, bool outputOnCpu)
    {
        var args = new object[inputs.Length];
        Tensor[]? copies = null;
        try
        {
            for (int i = 0; i < inputs.Length; i++)
            {
                Tensor onDevice = OnDevice(inputs[i]);
                if (!ReferenceEquals(onDevice, inputs[i]))
                {
                    (copies ??= new Tensor[inputs.Length])[i] = onDevice;
                }

                args[i] = onDevice;
            }

            object result;
            using (torch.no_grad())
            {
                result = _script!.forward(args);
            }

            if (result is not Tensor tensor)
            {
                (result as IDisposable)?.Dispose();
                throw new InvalidOperationException($"The forward of {Id} returned {(result is null ? "nothing" : "a " + result.GetType().Name)}, not a tensor; TorchServable serves modules whose forward returns one tensor.");
            }

            if (outputOnCpu && _device.type != DeviceType.CPU && tensor.device_type != DeviceType.CPU)
            {
                using (tensor)
                {
                    return tensor.cpu();
                }
            }

            return tensor;
        }
        finally
        {
            if (copies is not null)
            {
                foreach (Tensor? copy in copies)
                {
                    copy?.Dispose();
                }
            }
        }
    }

    /// <summary>The batched call, or <see cref="Run"/> on the caller's thread without batching.</summary>
    private Task<Tensor> RunAsync(Tensor[] inputs, bool outputOnCpu, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<Tensor>(cancellationToken);
        }

        if (_batchQueue is not { } queue)
        {
            try
            {
                return Task.FromResult(Run(inputs, outputOnCpu));
            }
#pragma warning disable CA1031 // The exception goes to the caller, in the task.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                return Task.FromException<Tensor>(ex);
            }
        }

        return ScheduleAsync(queue, inputs, outputOnCpu, cancellationToken);
    }

    /// <summary>Queues one call and waits for its batch; fails at once for inputs the module is known not to take.</summary>
    private async Task<Tensor> ScheduleAsync(BatchQueue<TorchBatchTask> queue, Tensor[] inputs, bool outputOnCpu, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (CheckInputs(inputs) is { } problem)
        {
            Record(0, "bad_input");
            throw new TorchInputException(Id, problem, Describe(inputs));
        }

        TorchBatchTask task = TorchBatchTask.Create(Id, inputs, outputOnCpu);
        await queue.ScheduleAsync(task, cancellationToken).ConfigureAwait(false);
        if (task.Failure is { } failure)
        {
            ExceptionDispatchInfo.Throw(failure);
        }

        return task.Output!;
    }

    /// <summary>The batch function: runs each group of calls that can run together as one forward, each group's failure its own.</summary>
    private ValueTask RunBatch(Batch<TorchBatchTask> batch, CancellationToken cancellationToken)
    {
        IReadOnlyList<TorchBatchTask> tasks = batch.Tasks;
        string key = tasks[0].Key;
        if (tasks.All(t => string.Equals(t.Key, key, StringComparison.Ordinal)))
        {
            RunGroup([.. tasks]);
        }
        else
        {
            foreach (IGrouping<string, TorchBatchTask> group in tasks.GroupBy(t => t.Key, StringComparer.Ordinal))
            {
                RunGroup([.. group]);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Concatenates the calls' inputs along dimension 0 (padded with zero rows to an allowed size), runs the
    /// module once, and gives each call a copy of its rows of the output. Everything else it creates is
    /// disposed before it returns (a dispose scope); a failure fails every call of the group, and only them.
    /// </summary>
    private void RunGroup(TorchBatchTask[] tasks)
    {
        tasks = FailCallsWithDisposedInputs(tasks);
        if (tasks.Length == 0)
        {
            return;
        }

        try
        {
            EnterRun();
        }
        catch (ObjectDisposedException ex)
        {
            Array.ForEach(tasks, t => t.Failure = ex);
            return;
        }

        long started = _metrics.ForwardDuration.Enabled ? Stopwatch.GetTimestamp() : 0;
        TorchBatchTask first = tasks[0];
        int rows = tasks.Sum(t => t.Size);
        int padded = _allowedBatchSizes.FirstOrDefault(size => size >= rows, rows);
        try
        {
            var outputs = new Tensor[tasks.Length];
            using (DisposeScope scope = torch.NewDisposeScope())
            using (torch.no_grad())
            {
                var batchInputs = new Tensor[first.Inputs.Length];
                for (int k = 0; k < batchInputs.Length; k++)
                {
                    batchInputs[k] = Concatenate(tasks, k, rows, padded);
                }

                Tensor output = _typed is not null ? ForwardModule(batchInputs[0], outputOnCpu: false) : ForwardScript(batchInputs, outputOnCpu: false);
                long[] shape = output.shape;
                if (shape.Length == 0 || shape[0] != padded)
                {
                    throw new InvalidOperationException($"The output of {Id} is {output.dtype}[{string.Join(", ", shape)}] for {padded} input rows: batching needs the output to have the rows as its first dimension. Turn Batching off for this model.");
                }

                long row = 0;
                for (int i = 0; i < tasks.Length; i++)
                {
                    Tensor rowsOfCall = output.narrow(0, row, tasks[i].Size);
                    outputs[i] = tasks[i].OutputOnCpu && output.device_type != DeviceType.CPU ? rowsOfCall.cpu() : rowsOfCall.clone();
                    row += tasks[i].Size;
                }

                // Only the calls' own copies leave the scope; the batch, the padding and the output go with it.
                scope.Detach(outputs);
            }

            for (int i = 0; i < tasks.Length; i++)
            {
                tasks[i].Output = outputs[i];
            }

            Record(started, "success");
        }
#pragma warning disable CA1031 // A group that fails fails its own calls, never the others in the batch.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Exception failure = ex is ExternalException native
                ? new TorchInputException(Id, $"libtorch refused them (in a batch of {tasks.Length} call(s), {padded} row(s)): {TorchErrors.FirstLine(native)}", Describe(first.Inputs), native)
                : ex;
            Record(started, failure is TorchInputException ? "bad_input" : "error");
            Log.BatchedForwardFailed(_logger, Id, tasks.Length, rows, failure);
            Array.ForEach(tasks, t => t.Failure = failure);
        }
        finally
        {
            ExitRun();
        }
    }

    /// <summary>Input <paramref name="k"/> of every call, one after another along dimension 0, with zero rows up to <paramref name="padded"/>; the call's own tensor when it is alone and unpadded.</summary>
    private static Tensor Concatenate(TorchBatchTask[] tasks, int k, int rows, int padded)
    {
        Tensor first = tasks[0].Inputs[k];
        if (tasks.Length == 1 && padded == rows)
        {
            return first;
        }

        var parts = new Tensor[tasks.Length + (padded > rows ? 1 : 0)];
        for (int i = 0; i < tasks.Length; i++)
        {
            parts[i] = tasks[i].Inputs[k];
        }

        if (padded > rows)
        {
            long[] shape = first.shape;
            shape[0] = padded - rows;
            parts[^1] = torch.zeros(shape, first.dtype, first.device);
        }

        return torch.cat(parts, 0);
    }

    /// <summary>Fails the calls whose caller disposed an input while it waited (they alone); returns the others.</summary>
    private TorchBatchTask[] FailCallsWithDisposedInputs(TorchBatchTask[] tasks)
    {
        if (!tasks.Any(t => t.Inputs.Any(i => i.IsInvalid)))
        {
            return tasks;
        }

        foreach (TorchBatchTask task in tasks.Where(t => t.Inputs.Any(i => i.IsInvalid)))
        {
            Record(0, "bad_input");
            task.Failure = new TorchInputException(Id, "an input was disposed before its batch ran; keep the inputs alive until ForwardAsync completes.", Describe(task.Inputs));
        }

        return [.. tasks.Where(t => t.Failure is null)];
    }

    /// <summary>The input itself when it is on the module's device, else a copy there (which the caller disposes).</summary>
    private Tensor OnDevice(Tensor input) =>
        input.device_type == _device.type && (_device.type != DeviceType.CUDA || input.device_index == _device.index)
            ? input
            : input.to(_device);

    /// <summary>What is wrong with the inputs before running; null when nothing is known to be.</summary>
    private string? CheckInputs(Tensor[] inputs)
    {
        if (_typed is not null && inputs.Length != 1)
        {
            return $"the module's forward takes one tensor; {inputs.Length} were given.";
        }

        for (int i = 0; i < inputs.Length; i++)
        {
            Tensor t = inputs[i];
            if (t.IsInvalid)
            {
                return $"input {i} was disposed.";
            }

            if (_parameterType is { } expected && t.dtype is var actual && actual != expected && IsFloatingPoint(actual))
            {
                return $"input {i} has element type {actual}; the module's parameters are {expected}. Convert it with .to({expected}) or set TorchServableOptions.DType.";
            }
        }

        return null;
    }

    private static bool IsFloatingPoint(ScalarType type) =>
        type is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;

    private static ScalarType? FirstFloatingParameterType(nn.Module module)
    {
        // Not disposed: both TorchSharp and TorchScript modules hand out the parameter objects they keep
        // (a TorchScript module registers its wrappers on first use), so disposing them here would empty the module.
        foreach (TorchSharp.Modules.Parameter p in module.parameters())
        {
            if (p.is_floating_point())
            {
                return p.dtype;
            }
        }

        return null;
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        if (_script is not null)
        {
            ReleaseScriptTensors(_script);
        }

        _module.Dispose();
        _metrics.Modules.Add(-1, new KeyValuePair<string, object?>("device", Device.ToString()));
        Log.ModuleDisposed(_logger, Id);
    }

    /// <summary>
    /// Replaces every parameter and buffer of a TorchScript module (and of its submodules) with an empty
    /// tensor before the module is disposed. With TorchSharp 0.107.0 and libtorch 2.10, a module from
    /// <c>torch.jit.load</c> stays allocated after <c>Dispose</c> (about its whole weights per load, measured
    /// with raw TorchSharp calls too); emptying its tensors first returns the weights' memory, which is
    /// nearly all of it. Best effort: a tensor that cannot be replaced is left to the module.
    /// </summary>
    private void ReleaseScriptTensors(jit.ScriptModule module)
    {
        try
        {
            var names = new List<string>();
            foreach ((string name, TorchSharp.Modules.Parameter parameter) in module.named_parameters())
            {
                names.Add(name);
                parameter.Dispose();
            }

            foreach ((string name, Tensor buffer) in module.named_buffers())
            {
                names.Add(name);
                buffer.Dispose();
            }

            foreach (string name in names)
            {
                string[] path = name.Split('.');
                var children = new List<nn.Module>();
                try
                {
                    jit.ScriptModule owner = module;
                    for (int i = 0; i < path.Length - 1; i++)
                    {
                        nn.Module child = owner.named_children().First(c => c.name == path[i]).module;
                        children.Add(child);
                        owner = (jit.ScriptModule)child;
                    }

                    using Tensor empty = torch.empty(0);
                    owner.set_attribute(path[^1], empty);
                    EmptiedScriptTensors++;
                }
                finally
                {
                    foreach (nn.Module child in children)
                    {
                        child.Dispose();
                    }
                }
            }
        }
#pragma warning disable CA1031 // Best effort before Dispose: whatever is left is released with the module, as before.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.ScriptTensorsNotReleased(_logger, Id, ex);
        }
    }

    /// <summary>Records a call's outcome (and duration when timed); returns false so that it can sit in an exception filter.</summary>
    private bool Record(long started, string outcome)
    {
        if (started != 0)
        {
            _metrics.ForwardDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _servableTag);
        }

        if (_metrics.Forwards.Enabled)
        {
            _metrics.Forwards.Add(1, _servableTag, new KeyValuePair<string, object?>("outcome", outcome));
        }

        return false;
    }
}
