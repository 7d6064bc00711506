namespace Servables.Async;

/// <summary>A request waiting in an API's channel. <see cref="Recovered"/> ones came from the store at start-up and hold no queue slot.</summary>
internal sealed record QueuedRequest(string Id, string ContentType, ReadOnlyMemory<byte> Payload, DateTimeOffset SubmittedAt, AsyncRequestState StoredState, bool Recovered);
