namespace Servables;

/// <summary>A task that can be cut into smaller tasks, so that one larger than a batch is spread over several (TF Serving's large batch splitting).</summary>
/// <remarks>
/// A task larger than <see cref="BatchQueueOptions.MaxBatchSize"/> is refused unless it implements this.
/// The pieces run in whatever batches they land in, possibly at the same time on several workers;
/// scheduling the original completes when every piece has run, and fails when any piece failed.
/// Each piece must write its results where the original's caller will find them (typically its own
/// rows of the original's output).
/// </remarks>
/// <typeparam name="TTask">The task type of the scheduler.</typeparam>
public interface ISplittableBatchTask<TTask> : IBatchTask
    where TTask : IBatchTask
{
    /// <summary>Cuts the task into pieces, in order: the first of <paramref name="firstSize"/>, each other of at most <paramref name="maxSize"/>, together exactly <see cref="IBatchTask.Size"/>.</summary>
    /// <param name="firstSize">The room left in the batch being filled: 1 to <paramref name="maxSize"/>.</param>
    /// <param name="maxSize">The queue's <see cref="BatchQueueOptions.MaxBatchSize"/>.</param>
    IReadOnlyList<TTask> Split(int firstSize, int maxSize);
}
