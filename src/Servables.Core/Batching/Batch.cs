namespace Servables;

/// <summary>Tasks that run together: what a batch function receives from a <see cref="BatchScheduler{TTask}"/>.</summary>
/// <remarks>Immutable. The batch function runs the tasks as one (for a model: concatenates their inputs, padded to <see cref="PaddedSize"/>, runs once, and splits the outputs back).</remarks>
/// <typeparam name="TTask">The task type.</typeparam>
public sealed class Batch<TTask>
    where TTask : IBatchTask
{
    internal Batch(string queueName, TTask[] tasks, int size, int paddedSize)
    {
        QueueName = queueName;
        Tasks = tasks;
        Size = size;
        PaddedSize = paddedSize;
    }

    /// <summary>The queue the tasks came from.</summary>
    public string QueueName { get; }

    /// <summary>The tasks, oldest first.</summary>
    public IReadOnlyList<TTask> Tasks { get; }

    /// <summary>The sum of the tasks' sizes; at most the queue's <see cref="BatchQueueOptions.MaxBatchSize"/>.</summary>
    public int Size { get; }

    /// <summary>
    /// The size to pad the batch to: the smallest of the queue's <see cref="BatchQueueOptions.AllowedBatchSizes"/>
    /// that holds <see cref="Size"/>, or <see cref="Size"/> when none are set. Padding rows are the batch
    /// function's to add and to drop from the results.
    /// </summary>
    public int PaddedSize { get; }
}
