namespace Servables.Async;

/// <summary>Thrown by a submit whose request can be known bad at once: no or unparsable Content-Type, empty or oversized body, a malformed or already used request id, an API that is stopping.</summary>
/// <remarks>The request was not accepted and nothing of it was stored. Not retryable as it is.</remarks>
public sealed class AsyncRequestRejectedException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    public AsyncRequestRejectedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public AsyncRequestRejectedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public AsyncRequestRejectedException()
        : base("The request was rejected.")
    {
    }
}
