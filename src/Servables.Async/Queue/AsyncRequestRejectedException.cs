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

    /// <summary>Creates the exception with its message and why the request was refused.</summary>
    public AsyncRequestRejectedException(string message, AsyncRejection reason)
        : base(message)
    {
        Reason = reason;
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

    /// <summary>Why the request was refused (an HTTP endpoint answers 400, 409, 413 or 503 from it).</summary>
    public AsyncRejection Reason { get; } = AsyncRejection.Invalid;
}

/// <summary>Why a submit was refused with <see cref="AsyncRequestRejectedException"/>.</summary>
public enum AsyncRejection
{
    /// <summary>The request is malformed: no or unparsable Content-Type, an empty body, a malformed request id.</summary>
    Invalid,

    /// <summary>A request with the id the caller gave exists already.</summary>
    DuplicateId,

    /// <summary>The body is larger than <see cref="AsyncApiOptions.MaxPayloadBytes"/>.</summary>
    TooLarge,

    /// <summary>The API is stopping and accepts no new requests.</summary>
    Stopping,
}
