using System.Runtime.InteropServices;

namespace Servables.Async;

/// <summary>A request this process has accepted (or recovered) and not yet finished: what the queue carries, how to cancel it while it runs, and who waits for it.</summary>
/// <remarks>
/// The result store is the record of truth; this object only connects the submitter, the worker
/// and any waiters in process, so that waiting and cancelling need no store polling. Its completion
/// moves once from "open" (no waiter yet), through "awaited" (a waiter's task), to "done".
/// Where the request stands in process is one phase word that every start, finish and withdrawal
/// changes with one compare-and-swap, so of any two racing exactly one wins: queued, running, then
/// finished by its lane or ended by the table. An in-memory table also lets the lane leave the
/// request's outcome here (<see cref="TrySetOutcome"/>) for the table to move into its entry later,
/// on a thread that uses the table anyway. Thread-safe.
/// </remarks>
internal sealed class LiveRequest(string? id, string contentType, ReadOnlyMemory<byte> payload, DateTimeOffset submittedAt, AsyncRequestState storedState, bool recovered)
{
    private static readonly object Done = new();

    // null (open), a TaskCompletionSource (awaited), or Done.
    private object? _completion;
    private CancellationTokenSource? _cancellation;
    private int _cancelledByCaller;

    // Where the request stands in process, the one word every start, finish and withdrawal exchanges:
    // Queued → Running (a lane started it) → FinishedByLane (its outcome is below) or EndedByTable
    // (the table ended it: a finish by id, a cancel); Queued → FinishedByLane or EndedByTable directly.
    private const int Queued = 0;
    private const int Running = 1;
    private const int FinishedByLane = 2;
    private const int EndedByTable = 3;
    private int _phase;
    private long _startedTicks;
    private string? _outcomeText;
    private bool _outcomeFailed;
    private long _outcomeTicks;

    private string? _id = id;

    /// <summary>The request's id; set by the request table when the caller named none (<see cref="HasId"/> is false until then).</summary>
    public string Id
    {
        get => _id!;
        set => _id = value;
    }

    /// <summary>Whether the request has its id yet.</summary>
    public bool HasId => _id is not null;

    public string ContentType { get; } = contentType;

    // A whole array, so that the lane can let it go with one reference write that a reader never sees torn.
    private byte[]? _payload = WholeArray(payload);

    /// <summary>The body; empty once <see cref="TrySetOutcome"/> has run, so that a finished request does not keep it alive.</summary>
    public ReadOnlyMemory<byte> Payload => Volatile.Read(ref _payload);

    public DateTimeOffset SubmittedAt { get; } = submittedAt;

    /// <summary>The precise clock's timestamp of the submit (<see cref="TimeProvider.GetTimestamp"/>), when the queue wait is measured; 0 otherwise.</summary>
    public long SubmittedTimestamp { get; set; }

    /// <summary>The state the store held when the request was recovered; <see cref="AsyncRequestState.InQueue"/> for a new one.</summary>
    public AsyncRequestState StoredState { get; } = storedState;

    /// <summary>Came from a durable store at start-up; holds no queue slot.</summary>
    public bool Recovered { get; } = recovered;

    /// <summary>The slot an <see cref="InMemoryAsyncResultStore"/> gave the request, and that slot's generation (a freed slot's next use has another); -1 elsewhere.</summary>
    public int StoreSlot { get; set; } = -1;

    /// <inheritdoc cref="StoreSlot"/>
    public int StoreGeneration { get; set; }

    /// <summary>Whether a lane is running the request: started through <see cref="TryStart"/>, and not yet finished or ended by the table.</summary>
    public bool IsStarted => Volatile.Read(ref _phase) == Running;

    /// <summary>When <see cref="TryStart"/> started the request (UTC ticks); read it after <see cref="IsStarted"/>.</summary>
    public long StartedTicks => _startedTicks;

    public bool IsDone => ReferenceEquals(Volatile.Read(ref _completion), Done);

    /// <summary>The finished status a request table stored for the request before it let it go (a table beside a store); null otherwise. Read it once <see cref="IsDone"/>.</summary>
    public AsyncRequestStatus? StoredOutcome { get; set; }

    public bool CancelledByCaller => Volatile.Read(ref _cancelledByCaller) != 0;

    /// <summary>Leaves the request's outcome here and marks it done; false when the table ended the request first.</summary>
    /// <param name="resultJson">The result, when <paramref name="error"/> is null.</param>
    /// <param name="error">The failure, or null.</param>
    /// <param name="atTicks">When it finished (UTC ticks).</param>
    public bool TrySetOutcome(string? resultJson, string? error, long atTicks)
    {
        if (!TryMove(FinishedByLane, fromRunning: true))
        {
            return false;
        }

        (_outcomeText, _outcomeFailed, _outcomeTicks) = (error ?? resultJson, error is not null, atTicks);
        Volatile.Write(ref _payload, null);
        MarkDone(); // publishes the fields above to whoever sees IsDone
        return true;
    }

    /// <summary>The outcome <see cref="TrySetOutcome"/> left, once the request is done.</summary>
    public bool TryGetOutcome(out string text, out bool failed, out long atTicks)
    {
        if (!IsDone || Volatile.Read(ref _phase) != FinishedByLane)
        {
            (text, failed, atTicks) = (string.Empty, false, 0);
            return false;
        }

        (text, failed, atTicks) = (_outcomeText!, _outcomeFailed, _outcomeTicks);
        return true;
    }

    /// <summary>The table ends the request itself (a caller's cancel, a finish by id); false when the lane left an outcome first (use that).</summary>
    public bool TryClaimOutcome() => TryMove(EndedByTable, fromRunning: true);

    /// <summary>A task that completes when the request is done; an already completed one if it is.</summary>
    public Task WhenDone()
    {
        object? current = Volatile.Read(ref _completion);
        while (true)
        {
            switch (current)
            {
                case TaskCompletionSource awaited:
                    return awaited.Task;
                case not null:
                    return Task.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            object? seen = Interlocked.CompareExchange(ref _completion, waiter, null);
            if (seen is null)
            {
                return waiter.Task;
            }

            current = seen;
        }
    }

    /// <summary>Moves the request from queued to started, at <paramref name="atTicks"/> (UTC); false when it was withdrawn first.</summary>
    public bool TryStart(long atTicks)
    {
        _startedTicks = atTicks; // published by the exchange below
        return Interlocked.CompareExchange(ref _phase, Running, Queued) == Queued;
    }

    /// <summary>The table ends a request that has not started (a caller's cancel); false when a lane started or finished it first.</summary>
    public bool TryWithdraw() => TryMove(EndedByTable, fromRunning: false) || Volatile.Read(ref _phase) == EndedByTable;

    /// <summary>Moves an unfinished request (queued, or running when <paramref name="fromRunning"/>) to <paramref name="to"/>; false when it is past that.</summary>
    private bool TryMove(int to, bool fromRunning)
    {
        int seen = Volatile.Read(ref _phase); // one exchange from what is there, not a failing one first
        while (seen == Queued || (fromRunning && seen == Running))
        {
            int found = Interlocked.CompareExchange(ref _phase, to, seen);
            if (found == seen)
            {
                return true;
            }

            seen = found;
        }

        return false;
    }

    /// <summary>Marks the request done (its final state is in the store, or it was abandoned) and releases its waiters. Idempotent.</summary>
    public void MarkDone() => (Interlocked.Exchange(ref _completion, Done) as TaskCompletionSource)?.TrySetResult();

    /// <summary>Hands the running request its cancellation source; cancels it at once if the caller or a hard stop came first.</summary>
    public void Started(CancellationTokenSource cancellation, CancellationToken hardStop)
    {
        // Each side writes its half with a full fence, then reads the other's: one of them sees both.
        Interlocked.Exchange(ref _cancellation, cancellation);
        if (CancelledByCaller || hardStop.IsCancellationRequested)
        {
            cancellation.Cancel();
        }
    }

    /// <summary>Stops handing out the cancellation source.</summary>
    /// <returns>
    /// True when the lane has the source back to reuse or dispose; false when a canceller took it
    /// (it is cancelled, or being cancelled, and belongs to nobody now: drop it).
    /// </returns>
    public bool Stopped() => Interlocked.Exchange(ref _cancellation, null) is not null;

    /// <summary>Cancels the request's token if it runs; remembers the wish if it is about to.</summary>
    public void CancelByCaller()
    {
        Interlocked.Exchange(ref _cancelledByCaller, 1);
        CancelRunning();
    }

    private static byte[] WholeArray(ReadOnlyMemory<byte> payload) =>
        MemoryMarshal.TryGetArray(payload, out ArraySegment<byte> segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : payload.ToArray(); // a slice (not from a submit, which copies the body into its own array)

    /// <summary>Cancels the request's token if it runs (the host is out of shutdown time; the hard stop flag is already set).</summary>
    /// <remarks>
    /// The source is taken out before it is cancelled, so that a lane that stops the request at the
    /// same moment cannot reuse it for its next request (see <see cref="Stopped"/>).
    /// </remarks>
    public void CancelRunning() => Interlocked.Exchange(ref _cancellation, null)?.Cancel();
}
