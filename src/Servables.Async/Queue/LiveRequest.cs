using System.Runtime.InteropServices;

namespace Servables.Async;

/// <summary>A request this process has accepted (or recovered) and not yet finished: what the queue carries, how to cancel it while it runs, and who waits for it.</summary>
/// <remarks>
/// The result store is the record of truth; this object only connects the submitter, the worker
/// and any waiters in process, so that waiting and cancelling need no store polling. Where the
/// request stands in process is one word, <see cref="CurrentPhase"/>: queued, running, ended by the
/// table (a cancel, a finish by id), or finished by its lane, which then leaves its outcome here
/// (<see cref="TrySetOutcome"/>) for an in-memory table to move into its entry on a thread that uses
/// the table anyway. Its completion moves once from "open" (no waiter yet), through "awaited" (a
/// waiter's task), to "done". Thread-safe.
/// </remarks>
internal sealed class LiveRequest(string? id, string contentType, ReadOnlyMemory<byte> payload, DateTimeOffset submittedAt, AsyncRequestState storedState, bool recovered)
{
    private static readonly object Done = new();

    // The phase (low two bits) and the caller's wish to cancel (CancelledFlag): one word, changed by compare-and-swap.
    private const int PhaseMask = 3;
    private const int CancelledFlag = 4;

    // null (open), a TaskCompletionSource (awaited), or Done.
    private object? _completion;
    private CancellationTokenSource? _cancellation;
    private int _state;
    private long _startedTicks;

    // Written by the lane before the phase becomes Finished, which publishes them; only the lane writes them.
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

    /// <summary>When <see cref="TryStart"/> started the request (UTC ticks); read it after <see cref="IsStarted"/>.</summary>
    public long StartedTicks => _startedTicks;

    public bool IsDone => ReferenceEquals(Volatile.Read(ref _completion), Done);

    public bool CancelledByCaller => (Volatile.Read(ref _state) & CancelledFlag) != 0;

    /// <summary>Where the request stands in process; the one field that says so.</summary>
    public Phase CurrentPhase => (Phase)(Volatile.Read(ref _state) & PhaseMask);

    /// <summary>Whether a lane started the request (<see cref="TryStart"/>) and has not finished it.</summary>
    public bool IsStarted => CurrentPhase == Phase.Running;

    /// <summary>Leaves the request's outcome here and marks it done; false when the table ended the request first, or the lane already did.</summary>
    /// <param name="resultJson">The result, when <paramref name="error"/> is null.</param>
    /// <param name="error">The failure, or null.</param>
    /// <param name="atTicks">When it finished (UTC ticks).</param>
    public bool TrySetOutcome(string? resultJson, string? error, long atTicks)
    {
        if (CurrentPhase is Phase.Ended or Phase.Finished)
        {
            return false; // only the lane writes the outcome, so nobody reads it while it is written below
        }

        (_outcomeText, _outcomeFailed, _outcomeTicks) = (error ?? resultJson, error is not null, atTicks);
        if (!TryMove(Phase.Queued, Phase.Running, Phase.Finished))
        {
            return false;
        }

        Volatile.Write(ref _payload, null);
        MarkDone();
        return true;
    }

    /// <summary>The outcome <see cref="TrySetOutcome"/> left, once it has.</summary>
    public bool TryGetOutcome(out string text, out bool failed, out long atTicks)
    {
        if (CurrentPhase != Phase.Finished)
        {
            (text, failed, atTicks) = (string.Empty, false, 0);
            return false;
        }

        (text, failed, atTicks) = (_outcomeText!, _outcomeFailed, _outcomeTicks);
        return true;
    }

    /// <summary>The table ends the request itself (a finish by id, a stop); false when the lane left an outcome first (use that).</summary>
    public bool TryClaimOutcome() => TryMove(Phase.Queued, Phase.Running, Phase.Ended);

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

    /// <summary>Moves the request from queued to running, at <paramref name="atTicks"/> (UTC); false when it was withdrawn or ended first.</summary>
    public bool TryStart(long atTicks)
    {
        _startedTicks = atTicks; // published by the exchange below
        return TryMove(Phase.Queued, Phase.Queued, Phase.Running);
    }

    /// <summary>Keeps a queued request from starting (the caller cancelled it, or the table ends it); false when a lane started or finished it.</summary>
    public bool TryWithdraw() => TryMove(Phase.Queued, Phase.Queued, Phase.Ended) || CurrentPhase == Phase.Ended;

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
        Interlocked.Or(ref _state, CancelledFlag);
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

    /// <summary>Moves the phase from <paramref name="from"/> or <paramref name="orFrom"/> to <paramref name="to"/>, keeping the cancel flag; false when it is in neither.</summary>
    private bool TryMove(Phase from, Phase orFrom, Phase to)
    {
        int seen = Volatile.Read(ref _state);
        while ((Phase)(seen & PhaseMask) == from || (Phase)(seen & PhaseMask) == orFrom)
        {
            int was = Interlocked.CompareExchange(ref _state, (seen & ~PhaseMask) | (int)to, seen);
            if (was == seen)
            {
                return true;
            }

            seen = was;
        }

        return false;
    }

    /// <summary>Where a request stands in process.</summary>
    public enum Phase
    {
        /// <summary>Waiting for a lane.</summary>
        Queued = 0,

        /// <summary>A lane runs it.</summary>
        Running = 1,

        /// <summary>The table ended it (a cancel, a finish by id); no lane starts or finishes it any more.</summary>
        Ended = 2,

        /// <summary>Its lane finished it and left the outcome here.</summary>
        Finished = 3,
    }
}
