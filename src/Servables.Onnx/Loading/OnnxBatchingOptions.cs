namespace Servables.Onnx;

/// <summary>Batches single-example calls of <see cref="OnnxServable.RunAsync"/> from many threads into one session run.</summary>
/// <remarks>
/// Inputs are concatenated along dimension 0 (each call's rows, in order), padded to the next of
/// <see cref="BatchQueueOptions.AllowedBatchSizes"/> when set, run once, and each call gets its own rows
/// of every output back. Calls whose inputs differ in names, element types or trailing dimensions
/// (or that ask for other outputs) run in separate session runs. Only numeric tensors whose first
/// dimension is the batch are batched; every output must have the batch as its first dimension.
/// </remarks>
public sealed class OnnxBatchingOptions
{
    /// <summary>How batches are formed: <see cref="BatchQueueOptions.MaxBatchSize"/> rows at most, the timeout, the queue bound, allowed sizes.</summary>
    public BatchQueueOptions Queue { get; } = new();

    /// <summary>
    /// The scheduler whose workers run the batches; share one between the versions of a servable so
    /// that an old and a new version interleave during a swap (<c>AddOnnxServable</c> does). Null: each
    /// loaded version gets a scheduler of its own with <see cref="BatchWorkers"/> workers.
    /// </summary>
    /// <value>Defaults to null. The caller that sets one disposes it after the servables.</value>
    public BatchScheduler<OnnxBatchTask>? Scheduler { get; set; }

    /// <summary>Workers of the scheduler made when <see cref="Scheduler"/> is null.</summary>
    /// <value>1 to 256. Defaults to 1: a session run already uses <see cref="OnnxServableOptions.IntraOpThreads"/> threads.</value>
    public int BatchWorkers { get; set; } = 1;

    /// <summary>A copy whose later changes do not reach this one (the scheduler is shared, not copied).</summary>
    internal OnnxBatchingOptions Copy()
    {
        var copy = new OnnxBatchingOptions { Scheduler = Scheduler, BatchWorkers = BatchWorkers };
        (copy.Queue.MaxBatchSize, copy.Queue.BatchTimeout, copy.Queue.MaxEnqueuedBatches, copy.Queue.AllowSynchronousContinuations) = (Queue.MaxBatchSize, Queue.BatchTimeout, Queue.MaxEnqueuedBatches, Queue.AllowSynchronousContinuations);
        foreach (int size in Queue.AllowedBatchSizes)
        {
            copy.Queue.AllowedBatchSizes.Add(size);
        }

        return copy;
    }

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>(Queue.Validate().Select(e => "Batching.Queue: " + e));
        if (BatchWorkers is < 1 or > 256)
        {
            errors.Add($"Batching.{nameof(BatchWorkers)} must be between 1 and 256; it is {BatchWorkers}.");
        }

        return errors;
    }
}
