namespace Servables.Async;

/// <summary>One request as a result store keeps it: its payload until it finishes, then its result or error.</summary>
/// <remarks>Immutable; stores return new records for every change.</remarks>
public sealed record AsyncRequestRecord
{
    /// <summary>The request id.</summary>
    public required string Id { get; init; }

    /// <summary>Where the request stands (never <see cref="AsyncRequestState.NotFound"/> in a store).</summary>
    public required AsyncRequestState State { get; init; }

    /// <summary>The payload's content type, as submitted.</summary>
    public required string ContentType { get; init; }

    /// <summary>The payload; stores may drop it once the request finished (empty then).</summary>
    public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>The handler's result as JSON text, when completed.</summary>
    public string? ResultJson { get; init; }

    /// <summary>Why the request failed, when failed.</summary>
    public string? Error { get; init; }

    /// <summary>When the request was accepted.</summary>
    public required DateTimeOffset SubmittedAt { get; init; }

    /// <summary>When the request last changed state.</summary>
    public required DateTimeOffset UpdatedAt { get; init; }
}
