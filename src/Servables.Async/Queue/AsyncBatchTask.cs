namespace Servables.Async;

/// <summary>One request on its way through an API's batch queue: what the batch function starts and runs, and the outcome it leaves for the request's own continuation.</summary>
/// <remarks>
/// Its <see cref="Phase"/> moves once, on the scheduler's worker, from <see cref="BatchPhase.Queued"/> to
/// <see cref="BatchPhase.NotStarted"/>, <see cref="BatchPhase.Abandoned"/>, or through
/// <see cref="BatchPhase.Running"/> to <see cref="BatchPhase.Finished"/>; the continuation reads it after the
/// schedule's task completes, which publishes it. Not thread-safe beyond that hand-over.
/// </remarks>
internal sealed class AsyncBatchTask(LiveRequest request) : IBatchTask
{
    /// <summary>Where the request stands in its batch.</summary>
    public enum BatchPhase
    {
        /// <summary>Waiting for its batch.</summary>
        Queued,

        /// <summary>Its batch ran without it: it was cancelled while queued (or its start could not be stored and it was released).</summary>
        NotStarted,

        /// <summary>Started; in the handler's batch.</summary>
        Running,

        /// <summary>Ran: <see cref="Result"/> or <see cref="Failure"/> holds its outcome.</summary>
        Finished,

        /// <summary>A hard stop came first (<see cref="AbandonedWhat"/> says where it stood).</summary>
        Abandoned,
    }

    public LiveRequest Request { get; } = request;

    /// <summary>One request takes one place in a batch.</summary>
    public int Size => 1;

    public BatchPhase Phase { get; set; }

    /// <summary>When its batch started it (the API clock's time).</summary>
    public DateTimeOffset StartedAt { get; set; }

    /// <summary>The start's timestamp when the handle duration is timed, else 0.</summary>
    public long StartedTimestamp { get; set; }

    /// <summary>Its token's source while it runs: its deadline, its caller's cancel, a hard stop.</summary>
    public CancellationTokenSource? Cancellation { get; set; }

    /// <summary>The handler's result for it, to serialise; meaningful when <see cref="Failure"/> is null.</summary>
    public object? Result { get; private set; }

    /// <summary>Why it failed, or null.</summary>
    public string? Failure { get; private set; }

    /// <summary>Where it stood when a hard stop abandoned it.</summary>
    public string? AbandonedWhat { get; private set; }

    public void Finish(object? result, string? failure) => (Result, Failure, Phase) = (result, failure, BatchPhase.Finished);

    public void Abandon(string what) => (AbandonedWhat, Phase) = (what, BatchPhase.Abandoned);
}
