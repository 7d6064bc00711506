namespace Servables.Async;

/// <summary>Thrown when a bounded result store has no room for another request even after evicting expired ones.</summary>
public sealed class AsyncStoreFullException : Exception
{
    /// <summary>Creates the exception with a message.</summary>
    public AsyncStoreFullException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public AsyncStoreFullException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public AsyncStoreFullException()
        : base("The result store is full.")
    {
    }
}
