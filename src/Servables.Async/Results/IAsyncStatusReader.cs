namespace Servables.Async;

/// <summary>A result store that answers a status poll at once, without building a full record first.</summary>
/// <remarks>Status polls are the hot read of an async API; stores in process memory implement this. Thread-safe.</remarks>
internal interface IAsyncStatusReader
{
    /// <summary>The request's status; null when it is absent or expired.</summary>
    AsyncRequestStatus? GetStatus(string requestId);
}
