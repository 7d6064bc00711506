namespace Servables.Async;

/// <summary>Thrown by a submit when the API's queue is full. Retryable: submit again later, or slow down.</summary>
/// <remarks>The request was not accepted and nothing of it was stored.</remarks>
public sealed class AsyncQueueFullException : Exception
{
    /// <summary>Creates the exception for <paramref name="apiName"/> with a queue of <paramref name="capacity"/>.</summary>
    public AsyncQueueFullException(string apiName, int capacity)
        : base($"The queue of async API '{apiName}' is full ({capacity} requests wait); the request was not accepted. Retry later or raise QueueCapacity.")
    {
        ApiName = apiName;
        Capacity = capacity;
    }

    /// <summary>Creates the exception with a message.</summary>
    public AsyncQueueFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public AsyncQueueFullException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public AsyncQueueFullException()
        : base("The async API's queue is full.")
    {
    }

    /// <summary>The API whose queue is full.</summary>
    public string ApiName { get; } = string.Empty;

    /// <summary>The queue's capacity.</summary>
    public int Capacity { get; }
}
