namespace Servables.Torch;

/// <summary>Batches single-example calls of <see cref="TorchServable.ForwardAsync(TorchSharp.torch.Tensor, bool, CancellationToken)"/> from many threads into one forward of the module.</summary>
/// <remarks>
/// Inputs are concatenated along dimension 0 (<c>torch.cat</c>, each call's rows in order), padded with
/// zero rows to the next of <see cref="BatchQueueOptions.AllowedBatchSizes"/> when set, run once under
/// <c>torch.no_grad()</c>, and each call gets its own rows of the output back, as a tensor it owns. Calls
/// whose inputs differ in count, element type, device or trailing dimensions run in separate forwards.
/// Every input must have the call's rows as its first dimension, and so must the output. Loaders copy
/// these values when they are created; later changes reach only loaders created afterwards. Not thread-safe while being changed.
/// </remarks>
public sealed class TorchBatchingOptions
{
    /// <summary>How batches are formed: <see cref="BatchQueueOptions.MaxBatchSize"/> rows at most, the timeout, the queue bound, allowed sizes.</summary>
    public BatchQueueOptions Queue { get; } = new();

    /// <summary>
    /// The scheduler whose workers run the batches; share one between the versions of a servable so
    /// that an old and a new version interleave during a swap (<c>AddTorchServable</c> does). Null: each
    /// loaded version gets a scheduler of its own with <see cref="BatchWorkers"/> workers.
    /// </summary>
    /// <value>Defaults to null. The caller that sets one disposes it after the servables.</value>
    public BatchScheduler<TorchBatchTask>? Scheduler { get; set; }

    /// <summary>
    /// Workers of the scheduler made when <see cref="Scheduler"/> is null (and of the one <c>AddTorchServable</c>
    /// shares between a servable's versions): how many batches may run at once.
    /// </summary>
    /// <value>
    /// 1 to 256. Defaults to 1. libtorch's intra-op threads are set per process (<see cref="TorchRuntime.SetThreads"/>);
    /// with one intra-op thread, two workers with half-size batches keep two cores busy.
    /// </value>
    public int BatchWorkers { get; set; } = 1;

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

    /// <summary>A copy whose later changes do not reach this one (the scheduler is shared, not copied).</summary>
    internal TorchBatchingOptions Copy()
    {
        var copy = new TorchBatchingOptions { Scheduler = Scheduler, BatchWorkers = BatchWorkers };
        (copy.Queue.MaxBatchSize, copy.Queue.BatchTimeout, copy.Queue.MaxEnqueuedBatches, copy.Queue.AllowSynchronousContinuations) = (Queue.MaxBatchSize, Queue.BatchTimeout, Queue.MaxEnqueuedBatches, Queue.AllowSynchronousContinuations);
        foreach (int size in Queue.AllowedBatchSizes)
        {
            copy.Queue.AllowedBatchSizes.Add(size);
        }

        return copy;
    }
}
