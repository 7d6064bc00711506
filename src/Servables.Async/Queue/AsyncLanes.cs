using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>An async API's worker lanes: each takes queued requests one at a time, runs the handler, and stores the outcome, retrying the store.</summary>
/// <remarks>
/// <see cref="AsyncApiOptions.WorkerCount"/> × <see cref="AsyncApiOptions.MaxConcurrencyPerWorker"/> lanes
/// read the channel until it is completed and empty. A lane gives the request's queue slot back when
/// it dequeues it, marks it in progress (advisory), runs the handler under the request's deadline and
/// cancellation, and stores the outcome; a store that fails is retried <see cref="AsyncApiOptions.StoreRetries"/>
/// times, then the request fails in the store or, failing that, in process. Every request ends
/// completed or failed; a faulty payload, handler or store call fails that request only. After a
/// hard stop (<see cref="HardStopAsync"/>) lanes abandon what they take. For an <see cref="IBatchAsyncHandler"/>
/// one lane feeds a batch queue instead, and each request keeps these semantics (see the other part of this class).
/// Thread-safe.
/// </remarks>
internal sealed partial class AsyncLanes : IDisposable
{
    private readonly AsyncApiOptions _options;
    private readonly IAsyncRequestTable _table;
    private readonly IAsyncResultStore _store;
    private readonly Channel<LiveRequest> _queue;
    private readonly QueueSlots _queued;
    private readonly AsyncMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly KeyValuePair<string, object?> _apiTag;
    private readonly CancellationTokenSource _hardStop = new();
    private IAsyncHandler? _handler;

    public AsyncLanes(string apiName, AsyncApiOptions options, IAsyncRequestTable table, Channel<LiveRequest> queue, QueueSlots queued, AsyncMetrics metrics, ILogger logger, TimeProvider time)
    {
        ApiName = apiName;
        _options = options;
        _table = table;
        _store = table.Store;
        _queue = queue;
        _queued = queued;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _apiTag = new KeyValuePair<string, object?>("api", apiName);
    }

    public string ApiName { get; }

    /// <summary>The running lanes' tasks; empty before <see cref="Start"/>. A lane's task ends when the queue is completed and empty.</summary>
    public Task[] Tasks { get; private set; } = [];

    /// <summary>How many lanes run now (a lane ends only when the API stops).</summary>
    public int Alive => Tasks.Count(lane => !lane.IsCompleted);

    /// <summary>How many lanes run once started: <see cref="AsyncApiOptions.WorkerCount"/> × <see cref="AsyncApiOptions.MaxConcurrencyPerWorker"/>, or the one that feeds the batch queue.</summary>
    public int LaneCount => Batching is null ? _options.WorkerCount * _options.MaxConcurrencyPerWorker : 1;

    /// <summary>Starts the lanes with the initialised handler (an <see cref="IAsyncHandler"/>, or an <see cref="IBatchAsyncHandler"/> when <see cref="Batching"/> is set); called once.</summary>
    public void Start(object handler)
    {
        if (Batching is not null)
        {
            StartBatched((IBatchAsyncHandler)handler);
            return;
        }

        _handler = (IAsyncHandler)handler;
        Tasks = [.. Enumerable.Range(0, _options.WorkerCount * _options.MaxConcurrencyPerWorker).Select(_ => Task.Run(RunLaneAsync, CancellationToken.None))];
    }

    /// <summary>Out of shutdown time: cancels running handlers' tokens; lanes abandon what they take from now on.</summary>
    public Task HardStopAsync() => _hardStop.CancelAsync();

    /// <summary>Releases the hard-stop source (and the batch stage's places); only when no lane runs.</summary>
    public void Dispose()
    {
        _hardStop.Dispose();
        _stage?.Dispose();
    }

    /// <summary>One lane: runs queued requests one at a time until the channel is completed and empty.</summary>
    /// <remarks>
    /// An idle lane waits in <see cref="ChannelReader{T}.ReadAsync"/>, which hands each new request to
    /// one waiting lane; waiting in WaitToReadAsync instead would wake every idle lane for each request.
    /// </remarks>
    private async Task RunLaneAsync()
    {
        ChannelReader<LiveRequest> reader = _queue.Reader;
        var lane = new Lane();
        while (true)
        {
            if (!reader.TryRead(out LiveRequest? request))
            {
                try
                {
                    request = await reader.ReadAsync().ConfigureAwait(false);
                }
                catch (ChannelClosedException)
                {
                    lane.TakeSpareCancellation()?.Dispose();
                    return; // stopping, and the queue is empty
                }
            }

            _queued.Return(); // recovered requests take slots too

            await RunOneAsync(request, lane).ConfigureAwait(false);
        }
    }

    private async Task RunOneAsync(LiveRequest request, Lane lane)
    {
        try
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, request.Id)))
            {
                await ProcessAsync(request, lane).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // A lane outlives any one request; the failure is logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.StoreFailed(_logger, ApiName, ex);
        }
        finally
        {
            if (!request.IsDone)
            {
                _table.Release(request); // a store call threw: its waiters read the store
            }
        }
    }

    private async Task ProcessAsync(LiveRequest request, Lane lane)
    {
        if (_hardStop.IsCancellationRequested)
        {
            await AbandonAsync(request, "it never ran").ConfigureAwait(false);
            return;
        }

        DateTimeOffset started = StartStamp(request);
        if (!await TryStartAsync(request, started).ConfigureAwait(false))
        {
            return; // cancelled while queued
        }

        long startedTimestamp = RecordStart(request, started);

        // One source per request, with the deadline's timer when there is one; the caller's cancel
        // and a hard stop reach it through the live request. Without a deadline the lane reuses its
        // source from one request to the next while nothing cancels it.
        CancellationTokenSource cancellation = _options.RequestTimeout == Timeout.InfiniteTimeSpan
            ? lane.TakeSpareCancellation() ?? new CancellationTokenSource()
            : new CancellationTokenSource(_options.RequestTimeout, _time);
        request.Started(cancellation, _hardStop.Token);
        _metrics.InFlight.Add(1, _apiTag);
        string? failure = null;
        string? resultJson = null;
        bool abandoned = false;
        try
        {
            AsyncPayload payload = AsyncPayloadDecoder.Decode(request.ContentType, request.Payload);
            object? result = await _handler!.HandleAsync(payload, request.Id, cancellation.Token).ConfigureAwait(false);
            resultJson = Serialize(result, out failure);
        }
        catch (AsyncPayloadException ex)
        {
            failure = ex.Message;
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            failure = CancelledFailure(request, out abandoned);
        }
#pragma warning disable CA1031 // A throwing handler fails its own request only.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.HandlerThrew(_logger, ApiName, ex);
            failure = $"The handler threw {TypeNames.Readable(ex.GetType())}: {ex.Message}";
        }
        finally
        {
            if (request.Stopped())
            {
                // The handler has returned: its registrations go with the reset.
                if (_options.RequestTimeout != Timeout.InfiniteTimeSpan || !lane.KeepSpareCancellation(cancellation))
                {
                    cancellation.Dispose();
                }
            }

            _metrics.InFlight.Add(-1, _apiTag);
        }

        if (abandoned)
        {
            await AbandonAsync(request, "it was cancelled while running").ConfigureAwait(false);
            return;
        }

        await FinishAsync(request, resultJson, failure, started, startedTimestamp).ConfigureAwait(false);
    }

    /// <summary>When a lane starts the request: the API clock's time, never before the submit's.</summary>
    /// <remarks>Stamps come from the API's TimeProvider; durations are measured with its timestamps, and only when a metric or a log takes them.</remarks>
    private DateTimeOffset StartStamp(LiveRequest request)
    {
        DateTimeOffset stamp = _time.GetUtcNow();
        return stamp > request.SubmittedAt ? stamp : request.SubmittedAt;
    }

    /// <summary>Moves the request to in progress (in the store, and on the live request); false when it was cancelled while queued: do not run it.</summary>
    private async ValueTask<bool> TryStartAsync(LiveRequest request, DateTimeOffset started)
    {
        if (request.Recovered && request.StoredState == AsyncRequestState.InProgress)
        {
            return request.TryStart(started.UtcTicks); // resumed: the store reads it in progress already
        }

        try
        {
            ValueTask<bool> marking = _table.TryStartAsync(request, started);
            if (!marking.IsCompleted && request.IsStarted)
            {
                // The live request started (a cancel from now on reaches it), and the store's mark is advisory
                // (a request read queued after a crash runs again just as one read in progress): run the request
                // without waiting for the mark's commit, which its outcome follows in the store's order.
                _ = ObserveMarkAsync(marking, request);
                return true;
            }

            return await marking.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            // The in-progress mark is advisory (a request read queued after a crash runs again just as one
            // read in progress), and a full store may refuse it yet take the outcome, which drops the payload
            // and so makes room: run the request. The table took the start on the live request first, so a
            // cancel meanwhile is not lost, and this process reads it in progress.
            Log.StartNotStored(_logger, ApiName, request.Id, ex);
            return request.IsStarted || request.TryStart(started.UtcTicks);
        }
    }

    /// <summary>Logs a store's failure to mark a request in progress when the lane did not wait for the mark.</summary>
    private async Task ObserveMarkAsync(ValueTask<bool> marking, LiveRequest request)
    {
        try
        {
            await marking.ConfigureAwait(false);
        }
#pragma warning disable CA1031 // Advisory, as when awaited: logged, never thrown at the lane.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.StartNotStored(_logger, ApiName, request.Id, ex);
        }
    }

    /// <summary>Records the queue wait of a request that starts now; returns the start's timestamp when the handle duration is timed, else 0.</summary>
    private long RecordStart(LiveRequest request, DateTimeOffset started)
    {
        bool debug = _logger.IsEnabled(LogLevel.Debug);
        bool timed = debug || _metrics.HandleDuration.Enabled;
        bool waitTimed = debug || _metrics.QueueWait.Enabled;
        long startedTimestamp = timed || waitTimed ? _time.GetTimestamp() : 0;
        if (waitTimed)
        {
            double queueWait = request.SubmittedTimestamp != 0 && startedTimestamp != 0
                ? _time.GetElapsedTime(request.SubmittedTimestamp, startedTimestamp).TotalSeconds
                : Math.Max(0, (started - request.SubmittedAt).TotalSeconds);
            _metrics.QueueWait.Record(queueWait, _apiTag);
            Log.RequestStarted(_logger, queueWait * 1000);
        }

        return timed ? startedTimestamp : 0;
    }

    /// <summary>Why a request whose token was cancelled while it ran ends: its caller, its deadline, or a hard stop (<paramref name="abandoned"/>, no failure).</summary>
    private string? CancelledFailure(LiveRequest request, out bool abandoned)
    {
        abandoned = false;
        if (request.CancelledByCaller)
        {
            return "Cancelled by the caller while it ran.";
        }

        if (_hardStop.IsCancellationRequested)
        {
            abandoned = true;
            return null;
        }

        return $"The request exceeded its deadline of {_options.RequestTimeout} (RequestTimeout) and was cancelled.";
    }

    /// <summary>Stores the outcome of a request that ran (retrying the store), and counts and logs it.</summary>
    /// <param name="request">The request.</param>
    /// <param name="resultJson">Its result, when <paramref name="failure"/> is null.</param>
    /// <param name="failure">Why it failed, or null.</param>
    /// <param name="started">When it started.</param>
    /// <param name="startedTimestamp">The start's timestamp when the duration is timed, else 0 (the stamps are used).</param>
    private async Task FinishAsync(LiveRequest request, string? resultJson, string? failure, DateTimeOffset started, long startedTimestamp)
    {
        DateTimeOffset stamp = _time.GetUtcNow();
        DateTimeOffset finished = stamp > started ? stamp : started;
        double elapsed = startedTimestamp != 0 ? _time.GetElapsedTime(startedTimestamp).TotalSeconds : (finished - started).TotalSeconds;
        _metrics.HandleDuration.Record(elapsed, _apiTag);
        try
        {
            if (!await _table.TryFinishAsync(request, resultJson, failure, finished).ConfigureAwait(false))
            {
                return; // ended meanwhile (abandoned by a stop whose grace ran out): counted there
            }
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            failure = await FinishAfterStoreFailureAsync(request, resultJson, failure, finished, ex).ConfigureAwait(false);
        }

        if (failure is null)
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "completed"));
            Log.RequestCompleted(_logger, elapsed * 1000);
        }
        else
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            Log.RequestFailed(_logger, failure);
        }
    }

    private string? Serialize(object? result, out string? failure)
    {
        try
        {
            failure = null;
            return result switch
            {
                null => "null",
                JsonElement element => element.GetRawText(), // already JSON: no serializer round trip
                JsonNode node => node.ToJsonString(_options.JsonSerializerOptions),
                _ => JsonSerializer.Serialize(result, result.GetType(), _options.JsonSerializerOptions),
            };
        }
        catch (Exception ex) when (ex is NotSupportedException or JsonException or InvalidOperationException or ArgumentException)
        {
            failure = $"The handler's result ({TypeNames.Readable(result!.GetType())}) cannot be serialised to JSON: {ex.Message}";
            return null;
        }
    }

    /// <summary>Shutdown ran out of time: a durable store keeps the request for recovery; otherwise it fails.</summary>
    /// <param name="request">The request.</param>
    /// <param name="what">Where it stood.</param>
    /// <param name="graceOver">Whether <see cref="AsyncApiOptions.AbandonTimeout"/> ran out (the stop abandons it, not its lane).</param>
    public async Task AbandonAsync(LiveRequest request, string what, bool graceOver = false)
    {
        string why = graceOver ? $"{what}, and the API's lanes did not return within AbandonTimeout ({_options.AbandonTimeout}) after cancellation" : what;
        string outcome;
        if (_store.IsDurable)
        {
            if (request.IsDone)
            {
                return; // the stop abandoned it already
            }

            _table.Release(request);
            outcome = _store is ISharedAsyncResultStore
                ? $"{why}; it stays in the shared queue, and a host that shares it runs it again"
                : $"{why}; it stays in the store and runs again at the next start";
        }
        else if (await FailOrReportAsync(request, $"The host shut down before the request finished ({why}).", _time.GetUtcNow()).ConfigureAwait(false))
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            outcome = $"{why}; it failed";
        }
        else
        {
            return; // finished meanwhile, or abandoned already
        }

        if (graceOver)
        {
            Log.RequestAbandonedAfterGrace(_logger, ApiName, request.Id, outcome);
        }
        else
        {
            Log.RequestAbandoned(_logger, ApiName, request.Id, outcome);
        }
    }

    /// <summary>Whether <paramref name="exception"/> from a store call is the store failing (not a cancel, not a full in-memory store, which says so itself).</summary>
    public static bool IsStoreFailure(Exception exception) => exception is not (OperationCanceledException or AsyncStoreFullException);

    /// <summary>Retries a store call that failed with <paramref name="first"/>, <see cref="AsyncApiOptions.StoreRetries"/> times with a doubling delay; a hard stop ends the retries.</summary>
    /// <returns>Whether a retry succeeded, its result, and the last failure when none did.</returns>
    private async Task<(bool Stored, bool Result, Exception Last)> RetryStoreAsync<TState>(Func<TState, ValueTask<bool>> call, TState state, LiveRequest request, string what, Exception first)
    {
        Exception last = first;
        TimeSpan delay = _options.StoreRetryDelay;
        for (int attempt = 1; attempt <= _options.StoreRetries; attempt++)
        {
            Log.StoreRetrying(_logger, ApiName, request.Id, what, attempt, _options.StoreRetries, delay.TotalMilliseconds, last);
            try
            {
                await Task.Delay(delay, _time, _hardStop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break; // shutting down: no time for more
            }

            try
            {
                return (true, await call(state).ConfigureAwait(false), last);
            }
            catch (Exception ex) when (IsStoreFailure(ex))
            {
                last = ex;
            }

            delay *= 2;
        }

        return (false, false, last);
    }

    /// <summary>The store failed to take the request's outcome: retries, then stores a failure that says so, else fails the request in process.</summary>
    /// <returns>The request's failure as it now stands: <paramref name="failure"/> when a retry stored the outcome, else why it could not be stored.</returns>
    private async Task<string?> FinishAfterStoreFailureAsync(LiveRequest request, string? resultJson, string? failure, DateTimeOffset at, Exception first)
    {
        (bool stored, _, Exception last) = await RetryStoreAsync(
            static s => s.Lanes._table.TryFinishAsync(s.Request, s.ResultJson, s.Failure, s.At),
            (Lanes: this, Request: request, ResultJson: resultJson, Failure: failure, At: at),
            request,
            failure is null ? "complete" : "fail",
            first).ConfigureAwait(false);
        if (stored)
        {
            return failure;
        }

        string what = failure is null ? "completed" : $"failed ({failure})";
        string error = $"The request {what}, but its outcome could not be stored in the result store ({last.GetType().Name}: {last.Message}).";
        await FailOrReportAsync(request, error, at, last).ConfigureAwait(false);
        return error;
    }

    /// <summary>Fails the request in the store; when the store fails, fails it in this process (its status says so until the process ends).</summary>
    /// <returns>False when the request had already finished.</returns>
    public async Task<bool> FailOrReportAsync(LiveRequest request, string error, DateTimeOffset at, Exception? storeFailure = null)
    {
        try
        {
            return await _table.TryFinishAsync(request, null, error, at).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            storeFailure = ex;
        }

        string reported = _store.IsDurable ? error + " The store still holds the request unfinished, so it runs again at the next start." : error;
        _table.FailInProcess(request, reported, at);
        Log.OutcomeNotStored(_logger, ApiName, request.Id, reported, storeFailure);
        return true;
    }

    /// <summary>What a lane carries from one request to the next.</summary>
    private sealed class Lane
    {
        private CancellationTokenSource? _spare;

        /// <summary>A cancellation source no request uses now, if the lane has one.</summary>
        public CancellationTokenSource? TakeSpareCancellation()
        {
            CancellationTokenSource? spare = _spare;
            _spare = null;
            return spare;
        }

        /// <summary>Keeps a source its request is done with, for the next one; false when it was cancelled (dispose it then).</summary>
        public bool KeepSpareCancellation(CancellationTokenSource cancellation)
        {
            if (!cancellation.TryReset())
            {
                return false;
            }

            _spare = cancellation;
            return true;
        }
    }
}
