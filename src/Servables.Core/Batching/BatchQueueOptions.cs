namespace Servables;

/// <summary>How one queue of a <see cref="BatchScheduler{TTask}"/> forms batches.</summary>
/// <remarks>The queue copies these values when it is added; later changes have no effect on it.</remarks>
public sealed class BatchQueueOptions
{
    /// <summary>The most a batch may hold (the sum of its tasks' sizes).</summary>
    /// <value>1 to 1,000,000. Defaults to 32.</value>
    [OptionRange(1, 1_000_000)]
    public int MaxBatchSize { get; set; } = 32;

    /// <summary>
    /// How long the oldest queued task may wait for a fuller batch. Zero runs whatever is queued as soon
    /// as a worker is free (batches still form while every worker is busy); a longer timeout trades that
    /// much latency for fuller batches when callers arrive sparsely.
    /// </summary>
    /// <value>Zero to 10 seconds. Defaults to zero.</value>
    [TimeSpanRange("00:00:00", "00:00:10")]
    public TimeSpan BatchTimeout { get; set; } = TimeSpan.Zero;

    /// <summary>How many full batches' worth of tasks may wait; past that a new task is refused with <see cref="BatchQueueFullException"/>.</summary>
    /// <value>1 to 1,000,000. Defaults to 10.</value>
    [OptionRange(1, 1_000_000)]
    public int MaxEnqueuedBatches { get; set; } = 10;

    /// <summary>
    /// Whether a caller's continuation may run on the worker that ran its batch (or on the thread that
    /// cancelled its task), as <c>AllowSynchronousContinuations</c> of System.Threading.Channels does.
    /// </summary>
    /// <remarks>
    /// Off, each completed task's continuation is queued to the thread pool, and a worker that finished a
    /// batch often finds the next one not yet formed while its callers wait for pool threads to wake. On,
    /// the worker runs the callers' code up to their next <c>await</c> itself, typically their next call,
    /// so the next batch is ready when it looks (measured on 2 cores with 16 callers of an ONNX model: see
    /// benchmarks/README.md). The price: a caller that does long work, or blocks, after its await delays
    /// every batch of the scheduler's workers meanwhile, and a caller that waits synchronously on another
    /// task of the same queue deadlocks. Turn it on only when what follows the await is short.
    /// </remarks>
    /// <value>Defaults to false.</value>
    public bool AllowSynchronousContinuations { get; set; }

    /// <summary>
    /// Batch sizes a model runs best at (or was compiled for): a batch is padded up to the smallest
    /// that holds it (<see cref="Batch{TTask}.PaddedSize"/>). Increasing, and the last is
    /// <see cref="MaxBatchSize"/>.
    /// </summary>
    /// <value>Empty by default: batches run at their own size.</value>
    public IList<int> AllowedBatchSizes { get; } = new List<int>();

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = BatchQueueOptionsValidator.Instance.Validate(null, this).Problems();
        int previous = 0;
        foreach (int size in AllowedBatchSizes)
        {
            if (size <= previous)
            {
                errors.Add($"AllowedBatchSizes must be positive and increasing; they are [{string.Join(", ", AllowedBatchSizes)}].");
                break;
            }

            previous = size;
        }

        if (AllowedBatchSizes.Count > 0 && AllowedBatchSizes[^1] != MaxBatchSize)
        {
            errors.Add($"AllowedBatchSizes must end at MaxBatchSize ({MaxBatchSize}); they end at {AllowedBatchSizes[^1]}. Add {MaxBatchSize}, or set MaxBatchSize to the largest allowed size.");
        }

        return errors;
    }
}
