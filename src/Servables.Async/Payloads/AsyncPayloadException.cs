namespace Servables.Async;

/// <summary>A body that cannot be decoded as its Content-Type says: malformed JSON, an unknown charset, bytes invalid in that charset.</summary>
/// <remarks>The request fails with this message; the worker goes on with the next request.</remarks>
public sealed class AsyncPayloadException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    public AsyncPayloadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the decoder's exception.</summary>
    public AsyncPayloadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public AsyncPayloadException()
        : base("The payload could not be decoded.")
    {
    }
}
