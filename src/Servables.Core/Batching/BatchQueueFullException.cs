namespace Servables;

/// <summary>A batch queue holds as many tasks as it may (<see cref="BatchQueueOptions.MaxEnqueuedBatches"/> full batches): retry later, or shed the load.</summary>
/// <remarks>Nothing was queued; the task is untouched.</remarks>
public sealed class BatchQueueFullException : Exception
{
    /// <summary>Creates the exception.</summary>
    public BatchQueueFullException()
        : this("The batch queue is full.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public BatchQueueFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public BatchQueueFullException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
