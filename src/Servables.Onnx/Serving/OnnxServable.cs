using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>
/// One loaded version of an ONNX model: its input and output metadata, and <c>Run</c> over an
/// ONNX Runtime <see cref="InferenceSession"/>. The servable a <see cref="ServableHandle{T}"/> of
/// <see cref="OnnxLoader"/> gives.
/// </summary>
/// <remarks>
/// <para>
/// Inputs and outputs are <see cref="OrtValue"/>s. A value created with
/// <see cref="OrtValue.CreateTensorValueFromMemory{T}(T[], long[])"/> pins the caller's array and is
/// read in place, and outputs are read in place with <see cref="OrtValue.GetTensorDataAsSpan{T}"/>,
/// so nothing is copied on the way in or out. <c>Run</c> executes on the caller's thread and returns
/// when inference is done.
/// </para>
/// <para>
/// Inputs that do not match the model (an unknown or missing name, a wrong element type, rank or
/// fixed dimension) throw <see cref="OnnxInputException"/>, which names the problem and the model's
/// signature; the session stays usable. The check costs nothing on a run that succeeds: it runs only
/// when ONNX Runtime refuses the inputs.
/// </para>
/// <para>
/// Lifetime: the loader creates it and disposes it on unload, which the manager starts only after
/// the version's last handle was released. Disposing it is safe on its own too: <c>Run</c> calls
/// that started before keep the session alive until the last of them returns (that call disposes
/// it), and later calls throw <see cref="ObjectDisposedException"/>.
/// </para>
/// <para>Thread-safe: any number of threads may call <c>Run</c> at once on one servable.</para>
/// </remarks>
public sealed class OnnxServable : IServableMetadata, IDisposable, IAsyncDisposable
{
    private const int DisposedFlag = int.MinValue;

    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions;
    private readonly OnnxTensorInfo[] _inputs;
    private TensorMetadata[]? _inputMetadata;
    private TensorMetadata[]? _outputMetadata;
    private readonly OnnxTensorInfo[] _outputs;
    private readonly Dictionary<string, OnnxTensorInfo> _inputsByName;
    private readonly Dictionary<string, OnnxTensorInfo> _outputsByName;
    private readonly string[] _outputNames;
    private readonly OnnxMetrics _metrics;
    private readonly ILogger _logger;
    private readonly KeyValuePair<string, object?> _servableTag;

    // Runs in flight in the low bits; DisposedFlag once disposed. The session is released when both
    // the flag is set and the count is zero, exactly once.
    private int _state;
    private int _released;

    // Set once by the loader when OnnxServableOptions.Batching is on.
    private BatchQueue<OnnxBatchTask>? _batchQueue;
    private BatchScheduler<OnnxBatchTask>? _ownedScheduler;
    private int[] _allowedBatchSizes = [];

    /// <summary>Wraps <paramref name="session"/>, which it then owns and disposes.</summary>
    internal OnnxServable(ServableId id, string modelPath, InferenceSession session, OnnxExecutionProvider executionProvider, OnnxMetrics metrics, ILogger logger)
    {
        Id = id;
        ModelPath = modelPath;
        ExecutionProvider = executionProvider;
        _session = session;
        _metrics = metrics;
        _logger = logger;
        _servableTag = new KeyValuePair<string, object?>("servable", id.Name);
        _runOptions = new RunOptions();
        _inputs = [.. session.InputMetadata.Select(kv => new OnnxTensorInfo(kv.Key, kv.Value))];
        _outputs = [.. session.OutputMetadata.Select(kv => new OnnxTensorInfo(kv.Key, kv.Value))];
        _inputsByName = _inputs.ToDictionary(i => i.Name, StringComparer.Ordinal);
        _outputsByName = _outputs.ToDictionary(o => o.Name, StringComparer.Ordinal);
        _outputNames = [.. _outputs.Select(o => o.Name)];
        Signature = $"({string.Join(", ", _inputs.Select(i => i.ToString()))}) -> ({string.Join(", ", _outputs.Select(o => o.ToString()))})";
        _metrics.Sessions.Add(1, new KeyValuePair<string, object?>("execution_provider", executionProvider.ToString()));
    }

    /// <summary>The servable version this is.</summary>
    public ServableId Id { get; }

    /// <summary>The model file the session was created from.</summary>
    public string ModelPath { get; }

    /// <summary>Where the model runs: <see cref="OnnxExecutionProvider.Cpu"/> or <see cref="OnnxExecutionProvider.Cuda"/> (never Auto: what Auto chose).</summary>
    public OnnxExecutionProvider ExecutionProvider { get; }

    /// <summary>Whether the session runs on the process's shared thread pools (<see cref="OnnxEnvironment"/>) rather than its own.</summary>
    internal bool SharedThreadPools { get; init; }

    /// <summary>The model's inputs, in the model's order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Inputs => _inputs;

    /// <summary>The model's outputs, in the model's order.</summary>
    public IReadOnlyList<OnnxTensorInfo> Outputs => _outputs;

    /// <inheritdoc />
    /// <remarks><c>onnxruntime_onnx</c>.</remarks>
    public string Platform => "onnxruntime_onnx";

    /// <inheritdoc />
    /// <remarks>The model's tensor inputs (a sequence or map input is left out), symbolic dimensions as -1.</remarks>
    IReadOnlyList<TensorMetadata> IServableMetadata.Inputs => _inputMetadata ??= OnnxTensorInfo.ToMetadata(_inputs);

    /// <inheritdoc />
    /// <remarks>The model's tensor outputs (a sequence or map output is left out), symbolic dimensions as -1.</remarks>
    IReadOnlyList<TensorMetadata> IServableMetadata.Outputs => _outputMetadata ??= OnnxTensorInfo.ToMetadata(_outputs);

    /// <summary>The inputs and outputs in one line, such as <c>(X: float[batch, 4]) -&gt; (Y: float[batch, 2])</c>.</summary>
    public string Signature { get; }

    /// <summary>The session itself, for benchmarks that compare against raw ONNX Runtime on the very same session.</summary>
    internal InferenceSession Session => _session;

    /// <summary>True once <see cref="Dispose"/> was called.</summary>
    internal bool IsDisposed => Volatile.Read(ref _state) < 0;

    /// <summary>True once the session itself was disposed (after the last in-flight run).</summary>
    internal bool IsSessionReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Runs the model on named inputs and returns the requested outputs, allocated by ONNX Runtime.</summary>
    /// <param name="inputs">The inputs by name; every model input the graph needs must be present. The caller keeps ownership.</param>
    /// <param name="outputNames">The outputs to compute; null for all of them, in the model's order.</param>
    /// <param name="runOptions">Per-run options (log tag, termination); null for the defaults.</param>
    /// <returns>The outputs, in the order of <paramref name="outputNames"/>. The caller disposes the collection, which disposes every value in it.</returns>
    /// <exception cref="OnnxInputException">The inputs or output names do not match the model.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime failed for another reason.</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed.</exception>
    public IDisposableReadOnlyCollection<OrtValue> Run(
        IReadOnlyDictionary<string, OrtValue> inputs,
        IReadOnlyCollection<string>? outputNames = null,
        RunOptions? runOptions = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        EnterRun();
        long started = StartTiming();
        try
        {
            IDisposableReadOnlyCollection<OrtValue> results = _session.Run(runOptions ?? _runOptions, inputs, outputNames ?? _outputNames);
            Record(started, "success");
            return results;
        }
        catch (OnnxRuntimeException ex) when (Diagnose(inputs.Keys, inputs.Values, outputNames, null) is { } problem)
        {
            Record(started, "bad_input");
            throw new OnnxInputException(Id, problem, Signature, ex);
        }
        catch (Exception) when (Record(started, "error"))
        {
            throw;
        }
        finally
        {
            ExitRun();
        }
    }

    /// <summary>
    /// Runs the model into outputs the caller allocated (for example with
    /// <see cref="OrtValue.CreateTensorValueFromMemory{T}(T[], long[])"/>): no allocation for results,
    /// and buffers can be reused across calls.
    /// </summary>
    /// <param name="inputNames">The names of <paramref name="inputs"/>, in the same order.</param>
    /// <param name="inputs">The input values. The caller keeps ownership.</param>
    /// <param name="outputNames">The names of <paramref name="outputs"/>, in the same order.</param>
    /// <param name="outputs">Tensors of the right element type and shape that receive the results. The caller keeps ownership.</param>
    /// <param name="runOptions">Per-run options; null for the defaults.</param>
    /// <exception cref="OnnxInputException">The inputs, or the output names and buffers, do not match the model.</exception>
    /// <exception cref="OnnxRuntimeException">ONNX Runtime failed for another reason.</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed.</exception>
    public void Run(
        IReadOnlyCollection<string> inputNames,
        IReadOnlyCollection<OrtValue> inputs,
        IReadOnlyCollection<string> outputNames,
        IReadOnlyCollection<OrtValue> outputs,
        RunOptions? runOptions = null)
    {
        ArgumentNullException.ThrowIfNull(inputNames);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputNames);
        ArgumentNullException.ThrowIfNull(outputs);
        EnterRun();
        long started = StartTiming();
        try
        {
            _session.Run(runOptions ?? _runOptions, inputNames, inputs, outputNames, outputs);
            Record(started, "success");
        }
        catch (OnnxRuntimeException ex) when (Diagnose(inputNames, inputs, outputNames, outputs) is { } problem)
        {
            Record(started, "bad_input");
            throw new OnnxInputException(Id, problem, Signature, ex);
        }
        catch (Exception) when (Record(started, "error"))
        {
            throw;
        }
        finally
        {
            ExitRun();
        }
    }

    /// <summary>Whether <see cref="RunAsync"/> batches calls (<see cref="OnnxServableOptions.Batching"/>).</summary>
    public bool IsBatching => _batchQueue is not null;

    /// <summary>
    /// Runs the model on named inputs, batched with other callers' when <see cref="OnnxServableOptions.Batching"/>
    /// is on (see <see cref="OnnxBatchingOptions"/>); otherwise as <see cref="Run(IReadOnlyDictionary{string, OrtValue}, IReadOnlyCollection{string}?, RunOptions?)"/>.
    /// The results are the same as an unbatched run's.
    /// </summary>
    /// <param name="inputs">The inputs by name, each with the call's rows as its first dimension. The caller keeps ownership and keeps them alive until the task completes.</param>
    /// <param name="outputNames">The outputs to compute; null for all of them, in the model's order.</param>
    /// <param name="cancellationToken">Cancels the call while it waits for its batch.</param>
    /// <returns>The call's rows of each output, in the order of <paramref name="outputNames"/>. The caller disposes the collection, which disposes every value in it.</returns>
    /// <exception cref="ArgumentException">Batching is on and an input is not a numeric tensor with the call's rows first.</exception>
    /// <exception cref="BatchQueueFullException">Batching is on and the queue is full: retry later.</exception>
    /// <exception cref="OnnxInputException">The inputs or output names do not match the model.</exception>
    /// <exception cref="ObjectDisposedException">The servable was disposed.</exception>
    public async Task<IDisposableReadOnlyCollection<OrtValue>> RunAsync(
        IReadOnlyDictionary<string, OrtValue> inputs,
        IReadOnlyCollection<string>? outputNames = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        cancellationToken.ThrowIfCancellationRequested();
        if (_batchQueue is not { } queue)
        {
            return Run(inputs, outputNames);
        }

        ObjectDisposedException.ThrowIf(IsDisposed, this);
        OnnxBatchTask task = OnnxBatchTask.Create(Id, inputs, outputNames is null ? _outputNames : [.. outputNames]);
        await queue.ScheduleAsync(task, cancellationToken).ConfigureAwait(false);
        if (task.Failure is { } failure)
        {
            ExceptionDispatchInfo.Throw(failure);
        }

        return task.Outputs!;
    }

    /// <summary>
    /// Disposes the servable once what its batch queue holds has run (at once without batching):
    /// what the loader's unload calls.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_batchQueue is { } queue)
        {
            await queue.DisposeAsync().ConfigureAwait(false);
        }

        if (_ownedScheduler is { } scheduler)
        {
            await scheduler.DisposeAsync().ConfigureAwait(false);
        }

        Dispose();
    }

    /// <summary>Starts batching <see cref="RunAsync"/> calls on <paramref name="options"/>' scheduler, or on one of its own. Called once, by the loader, before the version is available.</summary>
    internal void StartBatching(OnnxBatchingOptions options, BatchScheduler<OnnxBatchTask>? shared)
    {
        BatchScheduler<OnnxBatchTask> scheduler = options.Scheduler ?? shared
            ?? (_ownedScheduler = new BatchScheduler<OnnxBatchTask>(new BatchSchedulerOptions { BatchWorkers = options.BatchWorkers }));
        _allowedBatchSizes = [.. options.Queue.AllowedBatchSizes];
        _batchQueue = scheduler.AddQueue(Id.ToString(), RunBatch, options.Queue);
    }

    /// <summary>The batch function: runs each group of calls that can run together as one session run, each call's failure its own group's.</summary>
    private ValueTask RunBatch(Batch<OnnxBatchTask> batch, CancellationToken cancellationToken)
    {
        IReadOnlyList<OnnxBatchTask> tasks = batch.Tasks;
        string key = tasks[0].Key;
        bool oneGroup = true;
        for (int i = 1; i < tasks.Count && oneGroup; i++)
        {
            oneGroup = string.Equals(tasks[i].Key, key, StringComparison.Ordinal);
        }

        if (oneGroup)
        {
            RunGroup(tasks);
            return ValueTask.CompletedTask;
        }

        foreach (IGrouping<string, OnnxBatchTask> group in tasks.GroupBy(t => t.Key, StringComparer.Ordinal))
        {
            RunGroup([.. group]);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Concatenates the calls' inputs along dimension 0 (padded to an allowed size), runs once, and gives each call views of its rows of every output.</summary>
    private void RunGroup(IReadOnlyList<OnnxBatchTask> tasks)
    {
        OnnxBatchTask first = tasks[0];
        int rows = 0;
        for (int i = 0; i < tasks.Count; i++)
        {
            rows += tasks[i].Size;
        }

        int padded = _allowedBatchSizes.FirstOrDefault(size => size >= rows, rows);
        var inputs = new OrtValue[first.InputNames.Length];
        var buffers = new byte[inputs.Length][];
        var outputs = new OrtValue[tasks.Count][];
        OnnxOutputs.BatchRun? run = null;
        try
        {
            EnterRun();
        }
        catch (ObjectDisposedException ex)
        {
            Fail(tasks, ex);
            return;
        }

        long started = StartTiming();
        try
        {
            for (int k = 0; k < inputs.Length; k++)
            {
                (Microsoft.ML.OnnxRuntime.Tensors.TensorElementType type, long[] trailing, long rowBytes) = OnnxBatchTask.RowLayout(first.Inputs[k], first.Size);
                byte[] data = buffers[k] = GC.AllocateUninitializedArray<byte>(checked((int)(padded * rowBytes)), pinned: true);
                int offset = 0;
                for (int i = 0; i < tasks.Count; i++)
                {
                    Span<byte> rowsOfTask = tasks[i].Inputs[k].GetTensorMutableRawData();
                    rowsOfTask.CopyTo(data.AsSpan(offset));
                    offset += rowsOfTask.Length;
                }

                data.AsSpan(offset).Clear(); // padding rows
                inputs[k] = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, type, [padded, .. trailing], Marshal.UnsafeAddrOfPinnedArrayElement(data, 0), data.Length);
            }

            run = new OnnxOutputs.BatchRun(_session.Run(_runOptions, first.InputNames, inputs, first.OutputNames), tasks.Count + 1);
            IDisposableReadOnlyCollection<OrtValue> results = run.Results;
            for (int i = 0; i < tasks.Count; i++)
            {
                outputs[i] = new OrtValue[results.Count];
            }

            for (int j = 0; j < results.Count; j++)
            {
                OrtTensorTypeAndShapeInfo info = results[j].GetTensorTypeAndShape();
                long[] shape = info.Shape;
                if (info.IsString || shape.Length == 0 || shape[0] != padded)
                {
                    throw new InvalidOperationException($"Output '{first.OutputNames[j]}' of {Id} is {info.ElementDataType}[{string.Join(", ", shape)}] for {padded} input rows: batching needs every output to have the rows as its first dimension. Turn Batching off for this model.");
                }

                long rowBytes = results[j].GetTensorSizeInBytes() / padded;
                nint all = AddressOf(results[j].GetTensorMutableRawData());
                long row = 0;
                for (int i = 0; i < tasks.Count; i++)
                {
                    long[] mine = (long[])shape.Clone();
                    mine[0] = tasks[i].Size;
                    outputs[i][j] = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, info.ElementDataType, mine, all + (nint)(row * rowBytes), tasks[i].Size * rowBytes);
                    row += tasks[i].Size;
                }
            }

            for (int i = 0; i < tasks.Count; i++)
            {
                tasks[i].Outputs = new OnnxOutputs(outputs[i], run);
            }

            Record(started, "success");
        }
#pragma warning disable CA1031 // A group that fails fails its own calls, never the others in the batch.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Exception failure = ex is OnnxRuntimeException native && Diagnose(first.InputNames, first.Inputs, first.OutputNames, null) is { } problem
                ? new OnnxInputException(Id, problem, Signature, native)
                : ex;
            Record(started, failure is OnnxInputException ? "bad_input" : "error");
            foreach (OrtValue? value in outputs.Where(o => o is not null).SelectMany(o => o))
            {
                value?.Dispose();
            }

            run?.Results.Dispose();
            run = null;
            Fail(tasks, failure);
        }
        finally
        {
            run?.Release(); // the batch function's own hold
            foreach (OrtValue? input in inputs)
            {
                input?.Dispose();
            }

            GC.KeepAlive(buffers);
            ExitRun();
        }
    }

    private static void Fail(IReadOnlyList<OnnxBatchTask> tasks, Exception failure)
    {
        for (int i = 0; i < tasks.Count; i++)
        {
            (tasks[i].Outputs, tasks[i].Failure) = (null, failure);
        }
    }

    /// <summary>The address of a tensor's data, which ONNX Runtime allocated (native memory the collector never moves).</summary>
    private static unsafe nint AddressOf(Span<byte> native)
    {
        fixed (byte* start = native)
        {
            return (nint)start;
        }
    }

    /// <summary>
    /// Disposes the session, at once when no <c>Run</c> is in flight, else when the last one returns.
    /// Later <c>Run</c> calls throw <see cref="ObjectDisposedException"/>. Idempotent.
    /// </summary>
    public void Dispose()
    {
        int prior = Interlocked.Or(ref _state, DisposedFlag);
        if (prior == 0)
        {
            Release();
        }
    }

    /// <summary>Describes it, such as <c>linear:2 on Cpu (X: float[batch, 4]) -&gt; (Y: float[batch, 2])</c>.</summary>
    public override string ToString() => $"{Id} on {ExecutionProvider} {Signature}";

    /// <summary>
    /// Says what is wrong with a run's inputs and outputs against the model's signature; null when
    /// nothing is (ONNX Runtime failed for another reason). Called only after ONNX Runtime refused a run.
    /// </summary>
    internal string? Diagnose(IEnumerable<string> inputNames, IEnumerable<OrtValue> inputValues, IEnumerable<string>? outputNames, IEnumerable<OrtValue>? outputValues)
    {
        string[] names = [.. inputNames];
        OrtValue[] values = [.. inputValues];
        if (names.Length != values.Length)
        {
            return $"{names.Length} input name(s) were given for {values.Length} value(s).";
        }

        for (int i = 0; i < names.Length; i++)
        {
            if (names[i] is null || !_inputsByName.TryGetValue(names[i], out OnnxTensorInfo? expected))
            {
                return $"'{names[i]}' is not an input of the model (its inputs are {string.Join(", ", _inputs.Select(x => x.Name))}).";
            }

            if (Array.IndexOf(names, names[i]) != i)
            {
                return $"input '{names[i]}' is given more than once.";
            }

            if (DescribeValueMismatch("input", expected, values[i]) is { } problem)
            {
                return problem;
            }
        }

        foreach (OnnxTensorInfo input in _inputs)
        {
            if (Array.IndexOf(names, input.Name) < 0)
            {
                return $"input '{input.Name}' is missing.";
            }
        }

        if (outputNames is not null)
        {
            string[] outNames = [.. outputNames];
            OrtValue[]? outValues = outputValues is null ? null : [.. outputValues];
            if (outValues is not null && outValues.Length != outNames.Length)
            {
                return $"{outNames.Length} output name(s) were given for {outValues.Length} output buffer(s).";
            }

            for (int i = 0; i < outNames.Length; i++)
            {
                if (outNames[i] is null || !_outputsByName.TryGetValue(outNames[i], out OnnxTensorInfo? expected))
                {
                    return $"'{outNames[i]}' is not an output of the model (its outputs are {string.Join(", ", _outputs.Select(x => x.Name))}).";
                }

                if (outValues is not null && DescribeValueMismatch("output buffer", expected, outValues[i]) is { } problem)
                {
                    return problem;
                }
            }
        }

        return null;
    }

    private static string? DescribeValueMismatch(string role, OnnxTensorInfo expected, OrtValue? value)
    {
        if (value is null)
        {
            return $"{role} '{expected.Name}' is null.";
        }

        if (!expected.IsTensor)
        {
            return null;
        }

        if (!value.IsTensor)
        {
            return $"{role} '{expected.Name}' is a {value.OnnxType}, not a tensor; the model expects {expected}.";
        }

        OrtTensorTypeAndShapeInfo actual = value.GetTensorTypeAndShape();
        string actualText = $"{OnnxTensorInfo.ElementTypeName(actual.ElementDataType)}[{string.Join(", ", actual.Shape)}]";
        if (actual.ElementDataType != expected.ElementType)
        {
            return $"{role} '{expected.Name}' has element type {OnnxTensorInfo.ElementTypeName(actual.ElementDataType)} ({actualText}); the model expects {expected}.";
        }

        if (actual.Shape.Length != expected.Rank)
        {
            return $"{role} '{expected.Name}' has rank {actual.Shape.Length} ({actualText}); the model expects rank {expected.Rank} ({expected}).";
        }

        if (!expected.Accepts(actual.Shape))
        {
            return $"{role} '{expected.Name}' has shape {actualText}; the model expects {expected}.";
        }

        return null;
    }

    /// <summary>Counts a run in; throws once disposed. Internal so that tests can hold a run open.</summary>
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

    /// <summary>Counts a run out; the last one out after <see cref="Dispose"/> releases the session.</summary>
    internal void ExitRun()
    {
        if (Interlocked.Decrement(ref _state) == DisposedFlag)
        {
            Release();
        }
    }

    private void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        _session.Dispose();
        _runOptions.Dispose();
        _metrics.Sessions.Add(-1, new KeyValuePair<string, object?>("execution_provider", ExecutionProvider.ToString()));
        Log.SessionDisposed(_logger, Id);
    }

    private long StartTiming() => _metrics.RunDuration.Enabled ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Records a run's outcome (and duration when timed); returns false so that it can sit in an exception filter.</summary>
    private bool Record(long started, string outcome)
    {
        if (started != 0)
        {
            _metrics.RunDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, _servableTag);
        }

        if (_metrics.Runs.Enabled)
        {
            _metrics.Runs.Add(1, _servableTag, new KeyValuePair<string, object?>("outcome", outcome));
        }

        return false;
    }
}
