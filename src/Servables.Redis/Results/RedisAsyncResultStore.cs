using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;

namespace Servables.Async;

/// <summary>
/// An async API's queue and results in Redis, shared by every host that serves the API: submits go to a stream that
/// the lanes of all hosts read through one consumer group; statuses and results live in Redis for the retention.
/// </summary>
/// <remarks>
/// <para>
/// Each change of a request is one Lua script (<see cref="RedisScripts"/>), so nothing is ever half-written: a submit
/// stores the request, appends it to the stream and counts it against <see cref="RedisAsyncResultStoreOptions.QueueCapacity"/>
/// in one step; an outcome is stored and the stream entry acknowledged in one step, the first outcome winning.
/// Delivery is at least once: a host renews its hold on what it took every third of
/// <see cref="RedisAsyncResultStoreOptions.VisibilityTimeout"/>; a request whose host stopped renewing is taken over by
/// another host (<c>XAUTOCLAIM</c>), and one handed out <see cref="RedisAsyncResultStoreOptions.MaxDeliveries"/> times
/// without an outcome fails instead of running again. A request this host gives up (<see cref="Release"/>: abandoned at a
/// stop, or its outcome could not be stored) is handed back to the queue at once, for the next free lane of any host.
/// </para>
/// <para>
/// Pub/sub carries the news between hosts: a submit wakes one idle host, a finish wakes every host's waiters, a cancel of a
/// running request reaches the host that runs it. The news is not durable; hosts also look at the queue every
/// <see cref="RedisAsyncResultStoreOptions.PollInterval"/>, and waiters read the status again now and then.
/// </para>
/// <para>
/// Stamps and expiry follow the API's <see cref="TimeProvider"/> (a finished request reads as absent once its retention
/// has passed on that clock); the holds, the polling and Redis's own expiry of finished requests run on real time.
/// Thread-safe. Dispose it to stop renewing holds and to close its connection.
/// </para>
/// </remarks>
public sealed class RedisAsyncResultStore : ISharedAsyncResultStore
{
    /// <summary>The stream's consumer group, read by the lanes of every host.</summary>
    internal const string Group = "lanes";

    private const int RemoveBatch = 1000;

    private readonly RedisAsyncResultStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly TimeSpan _retention;
    private readonly ILogger _logger;
    private readonly ConnectionMultiplexer _connection;
    private readonly IDatabase _db;
    private readonly string _ns;
    private readonly string _requestPrefix;
    private readonly RedisKey _stream;
    private readonly RedisKey _queued;
    private readonly RedisKey _open;
    private readonly RedisKey _done;
    private readonly RedisKey _idle;
    private readonly string _workChannelPrefix;
    private readonly RedisChannel _workChannel;
    private readonly RedisChannel _doneChannel;
    private readonly RedisChannel _cancelChannel;
    private readonly string _tooManyDeliveries;
    private readonly CancellationTokenSource _disposed = new();

    // What this host holds: request id → its stream entry, renewed until its outcome is stored or it is released.
    private readonly ConcurrentDictionary<string, string> _held = new(StringComparer.Ordinal);

    // Hand-backs of released requests still running; disposal waits for them.
    private readonly ConcurrentDictionary<Task, bool> _handingBack = new();

    // Waiters for a request's finish, by id; completed by the finish's news.
    private readonly Lock _waitersGate = new();
    private readonly Dictionary<string, (TaskCompletionSource<AsyncRequestStatus?> Finished, int Count)> _waiters = new(StringComparer.Ordinal);

    private TaskCompletionSource _work = NewSignal();
    private Task? _workSubscription;
    private Task? _finishSubscription;
    private Task _renewLoop = Task.CompletedTask;
    private Action<string>? _cancelHeld;
    private bool _groupReady;
    private long _nextTakeOver;

    /// <summary>Connects (in the background) and creates a store for the API <see cref="RedisAsyncResultStoreOptions.ApiName"/>.</summary>
    /// <param name="options">Where Redis is and how hosts share the queue.</param>
    /// <param name="storeOptions">Retention and clock; null for the defaults. Its <see cref="AsyncResultStoreOptions.MaxEntries"/> does not apply (Redis is bounded by its own memory).</param>
    /// <param name="logger">Where the store logs (events 500–599); null for none.</param>
    /// <exception cref="ArgumentException">The options are invalid (the message names them), or the configuration string cannot be parsed.</exception>
    public RedisAsyncResultStore(RedisAsyncResultStoreOptions options, AsyncResultStoreOptions? storeOptions = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        storeOptions ??= new AsyncResultStoreOptions();
        List<string> errors = [.. options.Validate(), .. storeOptions.Validate()];
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid Redis result store options: " + string.Join(" ", errors), nameof(options));
        }

        ConfigurationOptions configuration;
        try
        {
            configuration = ConfigurationOptions.Parse(options.Configuration);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"The Redis configuration '{options.Configuration}' cannot be parsed: {ex.Message}", nameof(options), ex);
        }

        string lowered = options.Configuration.ToLowerInvariant();
        if (!lowered.Contains("abortconnect", StringComparison.Ordinal))
        {
            configuration.AbortOnConnectFail = false;
        }

        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ReconnectRetryPolicy ??= new LinearRetry(500);

        _options = options;
        _time = storeOptions.TimeProvider;
        _retention = storeOptions.Retention;
        _logger = logger ?? NullLogger.Instance;
        _ns = "{" + options.KeyPrefix + ":" + options.ApiName + "}";
        _requestPrefix = _ns + ":r:";
        _stream = _ns + ":q";
        _queued = _ns + ":queued";
        _open = _ns + ":open";
        _done = _ns + ":done";
        _idle = _ns + ":idle";
        _workChannelPrefix = _ns + ":work:";
        _doneChannel = RedisChannel.Literal(_ns + ":finished");
        _cancelChannel = RedisChannel.Literal(_ns + ":cancel");
        Consumer = options.ConsumerName ?? $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid().ToString("N")[..8]}";
        _workChannel = RedisChannel.Literal(_workChannelPrefix + Consumer);
        _tooManyDeliveries = $"The request was handed to a host {options.MaxDeliveries} times without an outcome being stored (each host that took it stopped or lost Redis first); it is not run again (MaxDeliveries is {options.MaxDeliveries}).";
        _connection = ConnectionMultiplexer.Connect(configuration);
        _connection.ConnectionFailed += (_, e) => RedisLog.ConnectionLost(_logger, options.ApiName, e.EndPoint?.ToString() ?? "?", e.FailureType.ToString(), e.Exception);
        _connection.ConnectionRestored += (_, e) => RedisLog.ConnectionRestored(_logger, options.ApiName, e.EndPoint?.ToString() ?? "?");
        _db = _connection.GetDatabase();
        _nextTakeOver = Environment.TickCount64;
        RedisLog.StoreOpened(_logger, options.ApiName, _ns, Consumer);
    }

    /// <summary>This host's name in the stream's consumer group.</summary>
    public string Consumer { get; }

    /// <inheritdoc />
    /// <remarks>True: accepted requests survive the crash of any host (and of Redis itself, when Redis persists with <c>appendfsync always</c>).</remarks>
    public bool IsDurable => true;

    /// <inheritdoc />
    public bool RunsRequests => _options.RunsRequests;

    /// <summary>How many requests this host holds now (taken, outcome not yet stored).</summary>
    internal int HeldCount => _held.Count;

    /// <inheritdoc />
    /// <remarks>Also queues the request in the shared stream (its <see cref="AsyncRequestRecord.State"/> must be <see cref="AsyncRequestState.InQueue"/>).</remarks>
    /// <exception cref="AsyncQueueFullException"><see cref="RedisAsyncResultStoreOptions.QueueCapacity"/> requests wait already.</exception>
    /// <exception cref="RedisException">Redis is unreachable or failed the command: nothing was stored.</exception>
    public async ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.Id);
        ArgumentNullException.ThrowIfNull(request.ContentType);
        if (request.State != AsyncRequestState.InQueue)
        {
            throw new ArgumentException($"A request is added in_queue; this one is {request.State.ToWireName()}.", nameof(request));
        }

        cancellationToken.ThrowIfCancellationRequested();
        RedisResult added = await _db.ScriptEvaluateAsync(
            RedisScripts.Add,
            [RequestKey(request.Id), _stream, _queued, _open, _done, _idle],
            [request.Id, request.ContentType, request.Payload, Ticks(request.SubmittedAt), Ticks(request.UpdatedAt), Micros(request.SubmittedAt.UtcTicks), Micros(NowTicks()), _options.QueueCapacity, _workChannelPrefix]).ConfigureAwait(false);
        return (int)added switch
        {
            1 => true,
            0 => false,
            _ => throw new AsyncQueueFullException(_options.ApiName, _options.QueueCapacity),
        };
    }

    /// <inheritdoc />
    public async ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        cancellationToken.ThrowIfCancellationRequested();
        RedisValue[] fields = await _db.HashGetAsync(RequestKey(requestId), includePayload ? RecordFieldsWithPayload : RecordFields).ConfigureAwait(false);
        return ToRecord(requestId, fields);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        cancellationToken.ThrowIfCancellationRequested();
        return (int)await _db.ScriptEvaluateAsync(RedisScripts.MarkInProgress, [RequestKey(requestId)], [Ticks(at)]).ConfigureAwait(false) == 1;
    }

    /// <inheritdoc />
    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(resultJson);
        return FinishAsync(requestId, AsyncRequestState.Completed, resultJson, at, cancellationToken);
    }

    /// <inheritdoc />
    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        return FinishAsync(requestId, AsyncRequestState.Failed, errorText, at, cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default)
    {
        RedisValue[] ids = await _db.SortedSetRangeByRankAsync(_open).ConfigureAwait(false);
        var unfinished = new List<AsyncRequestRecord>(ids.Length);
        foreach (RedisValue id in ids)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (await GetAsync(id.ToString(), includePayload: true, cancellationToken).ConfigureAwait(false) is { State: AsyncRequestState.InQueue or AsyncRequestState.InProgress } record)
            {
                unfinished.Add(record);
            }
        }

        return unfinished;
    }

    /// <inheritdoc />
    /// <remarks>Finished requests also expire in Redis itself after the retention; this removes those expired on the API's clock, and their index entries.</remarks>
    public async ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default)
    {
        int removed = 0;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var result = (RedisResult[])(await _db.ScriptEvaluateAsync(RedisScripts.RemoveExpired, [_done], [Micros(NowTicks()), _requestPrefix, RemoveBatch]).ConfigureAwait(false))!;
            removed += (int)result[0];
            if ((int)result[1] < RemoveBatch)
            {
                return removed;
            }
        }
    }

    /// <inheritdoc />
    public void Attach(Action<string> cancelHeld)
    {
        ArgumentNullException.ThrowIfNull(cancelHeld);
        _cancelHeld = cancelHeld;
        _ = EnsureSubscribedToWorkAsync();
        _renewLoop = Task.Run(RenewHoldsAsync, CancellationToken.None);
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<AsyncRequestRecord>> TakeAsync(int maxCount, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        if (!_options.RunsRequests)
        {
            using var never = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
            await Task.Delay(Timeout.Infinite, never.Token).ConfigureAwait(false); // a host that only submits takes nothing
        }

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Task work = Volatile.Read(ref _work).Task; // before looking: a submit meanwhile wakes the wait below
            await EnsureSubscribedToWorkAsync().ConfigureAwait(false);
            await EnsureGroupAsync().ConfigureAwait(false);
            var taken = new List<AsyncRequestRecord>();
            long now = Environment.TickCount64;
            if (now >= Volatile.Read(ref _nextTakeOver))
            {
                Volatile.Write(ref _nextTakeOver, now + ((long)_options.VisibilityTimeout.TotalMilliseconds / 2));
                await TakeOnceAsync(((long)_options.VisibilityTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture), maxCount, taken).ConfigureAwait(false);
                if (taken.Count > 0)
                {
                    RedisLog.RequestsTakenOver(_logger, _options.ApiName, taken.Count, _options.VisibilityTimeout);
                }
            }

            if (taken.Count < maxCount)
            {
                await TakeOnceAsync("new", maxCount - taken.Count, taken).ConfigureAwait(false);
            }

            if (taken.Count > 0)
            {
                return taken;
            }

            long untilTakeOver = Math.Max(1, Volatile.Read(ref _nextTakeOver) - Environment.TickCount64);
            TimeSpan pause = TimeSpan.FromMilliseconds(Math.Min(untilTakeOver, _options.PollInterval.TotalMilliseconds));
            using var wake = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
            Task delay = Task.Delay(pause, wake.Token);
            await Task.WhenAny(work, delay).ConfigureAwait(false);
            await wake.CancelAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Hands the request back to the shared queue at once, in the background (<see cref="RedisScripts.HandBack"/>), so that
    /// another host runs it without waiting for the visibility timeout; if Redis cannot be reached, that timeout applies.
    /// </remarks>
    public void Release(string requestId)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (_held.TryRemove(requestId, out string? entry))
        {
            Task handingBack = HandBackAsync(requestId, entry);
            _handingBack[handingBack] = true;
            _ = handingBack.ContinueWith(t => _handingBack.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <inheritdoc />
    public async ValueTask<long> CountWaitingAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return (long?)await _db.StringGetAsync(_queued).ConfigureAwait(false) ?? 0;
    }

    /// <inheritdoc />
    public async ValueTask<AsyncSharedCancel> CancelAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        ArgumentNullException.ThrowIfNull(errorText);
        cancellationToken.ThrowIfCancellationRequested();
        int done = await RunFinishAsync(requestId, AsyncRequestState.Failed, errorText, at, onlyIfQueued: true).ConfigureAwait(false);
        if (done == 1)
        {
            _held.TryRemove(requestId, out _);
        }

        return done switch { 1 => AsyncSharedCancel.Withdrawn, 2 => AsyncSharedCancel.Signalled, _ => AsyncSharedCancel.None };
    }

    /// <inheritdoc />
    public Task<AsyncRequestStatus?> WhenFinishedAsync(string requestId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        Task subscribing = EnsureSubscribedToFinishesAsync();
        TaskCompletionSource<AsyncRequestStatus?> finished;
        lock (_waitersGate)
        {
            finished = _waiters.TryGetValue(requestId, out var waiting) ? waiting.Finished : new TaskCompletionSource<AsyncRequestStatus?>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters[requestId] = (finished, waiting.Count + 1);
        }

        return WaitAsync(subscribing, finished.Task, requestId, cancellationToken);

        async Task<AsyncRequestStatus?> WaitAsync(Task subscribing, Task<AsyncRequestStatus?> finished, string requestId, CancellationToken cancellationToken)
        {
            try
            {
                await subscribing.ConfigureAwait(false);
                return await finished.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                lock (_waitersGate)
                {
                    if (_waiters.TryGetValue(requestId, out var waiting) && waiting.Finished.Task == finished)
                    {
                        if (waiting.Count == 1)
                        {
                            _waiters.Remove(requestId);
                        }
                        else
                        {
                            _waiters[requestId] = (waiting.Finished, waiting.Count - 1);
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Stops renewing this host's holds, waits for the requests it released to be handed back, and closes the connection.
    /// What it still holds unreleased goes to other hosts after the visibility timeout.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        await _disposed.CancelAsync().ConfigureAwait(false);
        await _renewLoop.ConfigureAwait(false);
        await Task.WhenAll(_handingBack.Keys).ConfigureAwait(false);
        if (_groupReady)
        {
            try
            {
                await _db.ScriptEvaluateAsync(RedisScripts.Leave, [_stream, _idle], [Group, Consumer]).ConfigureAwait(false);
            }
            catch (RedisException)
            {
                // Redis is out of reach: a submit that picks this host wakes nobody (an idle host finds the request when it
                // next looks), and the group keeps an empty consumer.
            }
        }

        await _connection.CloseAsync(allowCommandsToComplete: true).ConfigureAwait(false);
        await _connection.DisposeAsync().ConfigureAwait(false);
        _disposed.Dispose();
    }

    private static readonly RedisValue[] RecordFields = ["st", "ct", "sub", "upd", "res"];
    private static readonly RedisValue[] RecordFieldsWithPayload = ["st", "ct", "sub", "upd", "res", "pl"];

    /// <summary>Runs <see cref="RedisScripts.HandBack"/> for a request this host released; never throws (a failure is logged, and the visibility timeout applies).</summary>
    private async Task HandBackAsync(string requestId, string entry)
    {
        try
        {
            RedisResult handed = await _db.ScriptEvaluateAsync(
                RedisScripts.HandBack,
                [RequestKey(requestId), _stream, _queued, _idle],
                [requestId, entry, Group, Consumer, Ticks(_time.GetUtcNow()), _workChannelPrefix]).ConfigureAwait(false);
            if ((int)handed == 1)
            {
                RedisLog.RequestHandedBack(_logger, _options.ApiName, requestId);
            }
        }
#pragma warning disable CA1031 // Taken over after the visibility timeout instead; logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            RedisLog.HandBackFailed(_logger, _options.ApiName, requestId, _options.VisibilityTimeout, ex);
        }
    }

    private async ValueTask<bool> FinishAsync(string requestId, AsyncRequestState state, string text, DateTimeOffset at, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        bool finished = await RunFinishAsync(requestId, state, text, at, onlyIfQueued: false).ConfigureAwait(false) == 1;
        _held.TryRemove(requestId, out _); // stored (or finished before): no longer this host's to keep
        return finished;
    }

    private async ValueTask<int> RunFinishAsync(string requestId, AsyncRequestState state, string text, DateTimeOffset at, bool onlyIfQueued) =>
        (int)await _db.ScriptEvaluateAsync(
            RedisScripts.Finish,
            [RequestKey(requestId), _stream, _queued, _open, _done],
            [requestId, (int)state, text, Ticks(at), ExpiryMicros(at.UtcTicks), (long)_retention.TotalMilliseconds, Group, _doneChannel.ToString(), onlyIfQueued ? 1 : 0, _cancelChannel.ToString()]).ConfigureAwait(false);

    /// <summary>Runs <see cref="RedisScripts.Take"/> once in <paramref name="mode"/> and adds what it handed over to <paramref name="taken"/> (and to the holds).</summary>
    private async Task TakeOnceAsync(string mode, int count, List<AsyncRequestRecord> taken)
    {
        long now = NowTicks();
        RedisResult result;
        try
        {
            result = await RunTakeAsync(mode, count, now).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("NOGROUP", StringComparison.Ordinal))
        {
            _groupReady = false; // the stream was deleted (Redis emptied): make the group again
            await EnsureGroupAsync().ConfigureAwait(false);
            result = await RunTakeAsync(mode, count, now).ConfigureAwait(false);
        }

        var lists = (RedisResult[])result!;
        foreach (RedisResult item in (RedisResult[])lists[0]!)
        {
            var e = (RedisResult[])item!;
            string id = (string)e[0]!;
            var record = new AsyncRequestRecord
            {
                Id = id,
                State = (AsyncRequestState)(int)e[1],
                ContentType = (string)e[2]!,
                Payload = (byte[]?)e[3] ?? [],
                SubmittedAt = FromTicks((string)e[4]!),
                UpdatedAt = FromTicks((string)e[5]!),
            };
            _held[id] = (string)e[6]!;
            taken.Add(record);
        }

        foreach (RedisResult failed in (RedisResult[])lists[1]!)
        {
            RedisLog.RequestNotDelivered(_logger, _options.ApiName, (string)failed!, "handed out too often without an outcome, or cancelled while a host that stopped ran it");
        }
    }

    private Task<RedisResult> RunTakeAsync(string mode, int count, long nowTicks) => _db.ScriptEvaluateAsync(
        RedisScripts.Take,
        [_stream, _queued, _open, _done, _idle],
        [Group, Consumer, count, _requestPrefix, _options.MaxDeliveries, nowTicks.ToString(CultureInfo.InvariantCulture), ExpiryMicros(nowTicks), (long)_retention.TotalMilliseconds, _doneChannel.ToString(), _tooManyDeliveries, mode, "Cancelled by the caller while it ran."]);

    /// <summary>Creates the consumer group (and the stream) if missing, reading from the stream's start.</summary>
    private async Task EnsureGroupAsync()
    {
        if (_groupReady)
        {
            return;
        }

        try
        {
            await _db.StreamCreateConsumerGroupAsync(_stream, Group, StreamPosition.Beginning, createStream: true).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
        {
            // Another host (or an earlier start) made it.
        }

        _groupReady = true;
    }

    /// <summary>Subscribes once (again after a failed try) to the news a host that runs requests needs: submits and cancels.</summary>
    /// <remarks>StackExchange.Redis subscribes again itself after a reconnect.</remarks>
    private Task EnsureSubscribedToWorkAsync() => EnsureSubscribed(ref _workSubscription, async subscriber =>
    {
        await subscriber.SubscribeAsync(_workChannel, (_, _) => Interlocked.Exchange(ref _work, NewSignal()).TrySetResult()).ConfigureAwait(false);
        await subscriber.SubscribeAsync(_cancelChannel, (_, id) =>
        {
            if (_held.ContainsKey(id.ToString()))
            {
                _cancelHeld?.Invoke(id.ToString());
            }
        }).ConfigureAwait(false);
    });

    /// <summary>Subscribes once (again after a failed try) to the news of finishes, when the first waiter needs it.</summary>
    private Task EnsureSubscribedToFinishesAsync() => EnsureSubscribed(ref _finishSubscription, subscriber => subscriber.SubscribeAsync(_doneChannel, (_, message) => OnFinished(message.ToString())));

    private Task EnsureSubscribed(ref Task? subscription, Func<ISubscriber, Task> subscribe)
    {
        Task? current = Volatile.Read(ref subscription);
        if (current is { IsFaulted: false, IsCanceled: false })
        {
            return current;
        }

        Task fresh = subscribe(_connection.GetSubscriber());
        Interlocked.CompareExchange(ref subscription, fresh, current);
        return fresh;
    }

    /// <summary>News of a finish: <c>id</c>, or <c>id\nstate\nticks\ntext</c> (see <see cref="RedisScripts.Finish"/>); wakes the id's waiters with the status it carries.</summary>
    private void OnFinished(string message)
    {
        string requestId = message;
        AsyncRequestStatus? status = null;
        string[] parts = message.Split('\n', 4);
        if (parts.Length == 4 && parts[1] is "3" or "4" && long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long ticks))
        {
            requestId = parts[0];
            bool completed = parts[1] == "3";
            status = new AsyncRequestStatus(requestId, completed ? AsyncRequestState.Completed : AsyncRequestState.Failed, completed ? parts[3] : null, completed ? null : parts[3], new DateTimeOffset(ticks, TimeSpan.Zero));
        }

        TaskCompletionSource<AsyncRequestStatus?>? finished = null;
        lock (_waitersGate)
        {
            if (_waiters.Remove(requestId, out var waiting))
            {
                finished = waiting.Finished;
            }
        }

        finished?.TrySetResult(status);
    }

    /// <summary>Renews this host's hold on what it took (resets the entries' idle time), every third of the visibility timeout, until disposed.</summary>
    private async Task RenewHoldsAsync()
    {
        TimeSpan every = _options.VisibilityTimeout / 3;
        while (true)
        {
            try
            {
                await Task.Delay(every, _disposed.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            await RenewOnceAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Renews the holds once (<see cref="RedisScripts.Renew"/>, 256 entries a call); forgets the ones another host took over. Never throws (a failure is logged).</summary>
    internal async Task RenewOnceAsync()
    {
        KeyValuePair<string, string>[] held = [.. _held];
        var lost = new HashSet<string>(StringComparer.Ordinal);
        for (int start = 0; start < held.Length; start += 256)
        {
            RedisValue[] args = [Group, Consumer, .. held[start..Math.Min(held.Length, start + 256)].Select(h => (RedisValue)h.Value)];
            try
            {
                var gone = (RedisResult[])(await _db.ScriptEvaluateAsync(RedisScripts.Renew, [_stream], args).ConfigureAwait(false))!;
                lost.UnionWith(gone.Select(g => (string)g!));
            }
#pragma warning disable CA1031 // Renewed again next time; logged.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                RedisLog.RenewFailed(_logger, _options.ApiName, held.Length - start, _options.VisibilityTimeout, ex);
                break;
            }
        }

        // Not this host's any more: no renewal and no hand-back (an outcome it stores still counts if it is the first).
        int forgotten = held.Count(h => lost.Contains(h.Value) && _held.TryRemove(h));
        if (forgotten > 0)
        {
            RedisLog.HoldsLost(_logger, _options.ApiName, forgotten, _options.VisibilityTimeout);
        }
    }

    private AsyncRequestRecord? ToRecord(string requestId, RedisValue[] fields)
    {
        if (fields[0].IsNull)
        {
            return null;
        }

        var state = (AsyncRequestState)(int)fields[0];
        DateTimeOffset updated = FromTicks(fields[3].ToString());
        bool finished = state is AsyncRequestState.Completed or AsyncRequestState.Failed;
        if (finished && NowTicks() - updated.UtcTicks >= _retention.Ticks)
        {
            return null; // expired on the API's clock
        }

        return new AsyncRequestRecord
        {
            Id = requestId,
            State = state,
            ContentType = fields[1].ToString(),
            Payload = fields.Length > 5 && !fields[5].IsNull ? (byte[])fields[5]! : ReadOnlyMemory<byte>.Empty,
            ResultJson = state == AsyncRequestState.Completed ? fields[4].ToString() : null,
            Error = state == AsyncRequestState.Failed ? fields[4].ToString() : null,
            SubmittedAt = FromTicks(fields[2].ToString()),
            UpdatedAt = updated,
        };
    }

    private RedisKey RequestKey(string requestId) => _requestPrefix + requestId;

    private long NowTicks() => _time.GetUtcNow().UtcTicks;

    private long ExpiryMicros(long finishedTicks) => (finishedTicks + _retention.Ticks - DateTimeOffset.UnixEpoch.UtcTicks + 9) / 10; // rounded up: never early

    private static long Micros(long utcTicks) => (utcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private static string Ticks(DateTimeOffset at) => at.UtcTicks.ToString(CultureInfo.InvariantCulture);

    private static DateTimeOffset FromTicks(string ticks) => new(long.Parse(ticks, CultureInfo.InvariantCulture), TimeSpan.Zero);

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
