namespace Servables;

/// <summary>Thrown when a request names no servable version that is available now.</summary>
/// <remarks>
/// Usually a transient state (the version is still loading, or was unloaded). Callers on a hot
/// path use <see cref="IServableManager.TryGetServableHandle{T}(ServableRequest, out ServableHandle{T})"/> instead.
/// </remarks>
public sealed class ServableNotAvailableException : Exception
{
    /// <summary>Creates the exception for <paramref name="request"/> with a message that explains why.</summary>
    public ServableNotAvailableException(ServableRequest request, string message)
        : base(message)
    {
        Request = request;
    }

    /// <summary>Creates the exception with a message.</summary>
    public ServableNotAvailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public ServableNotAvailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public ServableNotAvailableException()
        : base("The requested servable is not available.")
    {
    }

    /// <summary>The request that could not be served.</summary>
    public ServableRequest Request { get; }
}
