namespace Servables.Async;

/// <summary>What a <see cref="SqliteWrite"/> changes.</summary>
internal enum SqliteWriteKind
{
    /// <summary>Adds a request (<see cref="SqliteWrite.Record"/>); 1 when added, 0 when the id exists.</summary>
    Add,

    /// <summary>Marks a queued request in progress; 1 when it was queued.</summary>
    MarkInProgress,

    /// <summary>Completes an unfinished request with <see cref="SqliteWrite.Text"/> as its result; 1 when it was unfinished.</summary>
    Complete,

    /// <summary>Fails an unfinished request with <see cref="SqliteWrite.Text"/> as its error; 1 when it was unfinished.</summary>
    Fail,

    /// <summary>Deletes expired finished requests; how many.</summary>
    RemoveExpired,
}

/// <summary>One change waiting for the next group commit of a <see cref="SqliteAsyncResultStore"/>, and its caller's task.</summary>
/// <remarks>
/// A write is taken by exactly one group, or cancelled while it waits, never both (<see cref="TryTake"/>). Its task
/// completes only after the group's transaction committed, or with the error that kept it out of the file.
/// Thread-safe.
/// </remarks>
internal sealed class SqliteWrite
{
    private const int Waiting = 0;
    private const int Taken = 1;
    private const int Cancelled = 2;

    // Continuations run asynchronously so that the committing thread completes a whole group before any caller
    // runs on it.
    private readonly TaskCompletionSource<long> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenRegistration _cancellation;
    private int _state;

    public SqliteWrite(SqliteWriteKind kind, string? id = null, AsyncRequestRecord? record = null, string? text = null, long at = 0)
    {
        Kind = kind;
        Id = id;
        Record = record;
        Text = text;
        At = at;
    }

    public SqliteWriteKind Kind { get; }

    public string? Id { get; }

    public AsyncRequestRecord? Record { get; }

    public string? Text { get; }

    /// <summary>The change's time in UTC ticks.</summary>
    public long At { get; }

    /// <summary>
    /// Whether its commit must reach the disk before the caller hears of it: adds and outcomes. An in-progress mark
    /// and an expiry sweep survive kill -9 without a flush, and losing them to an OS crash changes nothing that matters.
    /// </summary>
    public bool NeedsFlush => Kind is SqliteWriteKind.Add or SqliteWriteKind.Complete or SqliteWriteKind.Fail;

    public Task<long> Task => _done.Task;

    /// <summary>Cancels the write if <paramref name="cancellationToken"/> fires before a group takes it.</summary>
    public void CancelWith(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((SqliteWrite)state!).Cancel(token), this);
        }
    }

    /// <summary>Claims the write for a group; false when its caller cancelled it first.</summary>
    public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Waiting) == Waiting;

    /// <summary>The group that took it committed: <paramref name="result"/> is its outcome.</summary>
    public void Complete(long result)
    {
        _cancellation.Dispose();
        _done.TrySetResult(result);
    }

    /// <summary>It is not in the file: <paramref name="error"/> says why.</summary>
    public void Fail(Exception error)
    {
        _cancellation.Dispose();
        _done.TrySetException(error);
    }

    private void Cancel(CancellationToken token)
    {
        if (Interlocked.CompareExchange(ref _state, Cancelled, Waiting) == Waiting)
        {
            _done.TrySetCanceled(token);
        }
    }
}
