namespace Servables;

/// <summary>Why a servable version failed to load: the loader threw, the resource budget refused it, or its source reported an error.</summary>
/// <remarks>Published as <see cref="ServableState.Error"/>; the inner exception, when there is one, is the loader's own.</remarks>
public sealed class ServableLoadException : Exception
{
    /// <summary>Creates the exception for <paramref name="id"/>.</summary>
    public ServableLoadException(ServableId id, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Id = id;
    }

    /// <summary>Creates the exception with a message.</summary>
    public ServableLoadException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public ServableLoadException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception with a default message.</summary>
    public ServableLoadException()
        : base("A servable failed to load.")
    {
    }

    /// <summary>The version that failed.</summary>
    public ServableId Id { get; }

    /// <summary>True when the resource budget refused the load (the loader never ran).</summary>
    public bool IsResourceRefusal { get; init; }
}
