using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Servables.Async;

/// <summary>One async API at run time: its store, queue, workers and handler; also its client.</summary>
/// <remarks>
/// Submit takes one of <see cref="AsyncApiOptions.QueueCapacity"/> queue slots (a full queue is
/// refused at once, before anything is stored, and nothing is dropped), stores the request (durably,
/// for a durable store) and writes it to the channel; a worker lane gives the slot back when it
/// dequeues. <see cref="AsyncApiOptions.WorkerCount"/> × <see cref="AsyncApiOptions.MaxConcurrencyPerWorker"/>
/// lanes read the channel, each running one request at a time. Every request ends completed or
/// failed in the store; a faulty payload, handler or store call fails that request only. Requests
/// this process holds are also kept as <see cref="LiveRequest"/>s in the <see cref="IAsyncRequestTable"/>,
/// so that waiting for one and cancelling one need no store polling. Thread-safe.
/// </remarks>
internal sealed class AsyncApi : IAsyncApiClient, IAsyncDisposable
{
    private readonly AsyncApiOptions _options;
    private readonly IServiceProvider _services;
    private readonly Type _handlerType;
    private readonly AsyncMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IAsyncResultStore _store;
    private readonly IAsyncRequestTable _table;
    private readonly Channel<LiveRequest> _queue;
    private readonly CancellationTokenSource _hardStop = new();
    private readonly CancellationTokenSource _expiryStop = new();
    private readonly KeyValuePair<string, object?> _apiTag;
    private IAsyncHandler? _handler;
    private Task[] _lanes = [];
    private readonly QueueSlots _queued;
    private Task _expiryLoop = Task.CompletedTask;

    // Stopping and disposing are each one sequence, begun once under _lifecycle; every caller awaits it.
    private readonly Lock _lifecycle = new();
    private readonly TaskCompletionSource _hurry = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _stop;
    private Task? _dispose;
    private Task _workers = Task.CompletedTask;
    private volatile bool _stopping;
    private volatile bool _started;

    public AsyncApi(string apiName, AsyncApiOptions options, IServiceProvider services, Type handlerType, AsyncMetrics metrics, ILoggerFactory? loggerFactory, TimeProvider? timeProvider)
    {
        IReadOnlyList<string> errors = options.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid AsyncApiOptions for API '{apiName}': " + string.Join(" ", errors), nameof(options));
        }

        ApiName = apiName;
        _options = options;
        _services = services;
        _handlerType = handlerType;
        _metrics = metrics;
        _logger = loggerFactory?.CreateLogger($"Servables.Async.AsyncApi.{apiName}") ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _apiTag = new KeyValuePair<string, object?>("api", apiName);
        _queued = new QueueSlots(options.QueueCapacity);
        _queue = Channel.CreateUnbounded<LiveRequest>(new UnboundedChannelOptions { SingleReader = options.WorkerCount * options.MaxConcurrencyPerWorker == 1 });
        var storeOptions = new AsyncResultStoreOptions
        {
            Retention = options.ResultRetention,
            TimeProvider = _time,
            MaxEntries = options.MaxStoredRequests,
        };
        _store = options.StoreFactory?.Invoke(services, storeOptions) ?? AsyncResultStores.Create(options, storeOptions, apiName);
        _table = _store as IAsyncRequestTable ?? new StoreRequestTable(_store);
        metrics.Register(this);
    }

    public string ApiName { get; }

    /// <summary>Requests waiting in the queue (recovered ones not counted).</summary>
    public int QueueDepth => _queued.Depth;

    public IAsyncResultStore Store => _store;

    /// <summary>The queue's capacity (<see cref="AsyncApiOptions.QueueCapacity"/>).</summary>
    public int QueueCapacity => _options.QueueCapacity;

    /// <summary>How many lanes the API runs once started.</summary>
    public int LaneCount => _options.WorkerCount * _options.MaxConcurrencyPerWorker;

    /// <summary>How many lanes run now (a lane ends only when the API stops).</summary>
    public int LanesAlive => _lanes.Count(lane => !lane.IsCompleted);

    /// <summary>Started and not stopping: it accepts and runs requests.</summary>
    public bool IsRunning => _started && !_stopping;

    /// <summary>The API's clock.</summary>
    public TimeProvider Time => _time;

    /// <summary>Recovers unfinished requests of a durable store, creates and initialises the handler, starts the workers.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<LiveRequest> recovered = await _table.RecoverAsync(cancellationToken).ConfigureAwait(false);
        foreach (LiveRequest request in recovered)
        {
            _queue.Writer.TryWrite(request);
        }

        if (recovered.Count > 0)
        {
            Log.RequestsRecovered(_logger, ApiName, recovered.Count);
        }

        _handler = CreateHandler();
        await _handler.InitializeAsync(cancellationToken).ConfigureAwait(false);
        _lanes = [.. Enumerable.Range(0, _options.WorkerCount * _options.MaxConcurrencyPerWorker).Select(_ => Task.Run(RunLaneAsync, CancellationToken.None))];
        _expiryLoop = Task.Run(RunExpiryLoopAsync, CancellationToken.None);
        _started = true;
        Log.ApiStarted(_logger, ApiName, _options.WorkerCount, _options.MaxConcurrencyPerWorker, _options.QueueCapacity, _store.GetType().Name);
    }

    /// <summary>
    /// Stops accepting, lets the workers drain the queue until <paramref name="cancellationToken"/> (the host's
    /// shutdown timeout) fires, then cancels what runs and waits <see cref="AsyncApiOptions.AbandonTimeout"/> more.
    /// </summary>
    /// <remarks>
    /// Bounded by the token plus the grace: what is still held then is abandoned and logged. Concurrent and
    /// repeated calls (and <see cref="DisposeAsync"/>) share one stop; any caller's token cutting the drain short
    /// cuts it short for all.
    /// </remarks>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        Task stop = BeginStop();
        if (!stop.IsCompleted)
        {
            using (cancellationToken.UnsafeRegister(static state => ((AsyncApi)state!).Hurry(), this))
            {
                await stop.ConfigureAwait(false);
            }
        }

        await stop.ConfigureAwait(false);
    }

    /// <summary>The stop sequence, begun by the first caller.</summary>
    private Task BeginStop()
    {
        lock (_lifecycle)
        {
            if (_stop is null)
            {
                _stopping = true;
                _stop = Task.Run(StopOnceAsync, CancellationToken.None);
            }

            return _stop;
        }
    }

    /// <summary>Ends the drain: the running handlers are cancelled and the queue abandoned.</summary>
    private void Hurry() => _hurry.TrySetResult();

    private async Task StopOnceAsync()
    {
        Log.ApiStopping(_logger, ApiName, QueueDepth);
        _queue.Writer.TryComplete();
        await _expiryStop.CancelAsync().ConfigureAwait(false);
        _workers = Task.WhenAll([.. _lanes, _expiryLoop]);
        if (await Task.WhenAny(_workers, _hurry.Task).ConfigureAwait(false) == _workers)
        {
            return;
        }

        // Out of time: cancel the handlers; queued requests are abandoned (kept for recovery by a durable store).
        await _hardStop.CancelAsync().ConfigureAwait(false);
        foreach (LiveRequest request in _table.HeldRequests())
        {
            request.CancelRunning();
        }

        try
        {
            await _workers.WaitAsync(_options.AbandonTimeout, _time).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A handler ignores its token: stop waiting for it. What the API still holds is abandoned now;
            // the stuck lane finds its request abandoned if its handler ever returns. The grace is spent, so
            // a store slow to take the abandonments does not hold the stop either: they go on without it,
            // and count as work still running for the disposal.
            _workers = Task.WhenAll(_workers, AbandonHeldAsync());
        }
    }

    /// <summary>Abandons every request the API still holds once the grace after cancellation is spent.</summary>
    private async Task AbandonHeldAsync()
    {
        foreach (LiveRequest request in _table.HeldRequests())
        {
            await AbandonAsync(request, request.IsStarted ? "it was running" : "it was queued", graceOver: true).ConfigureAwait(false);
        }
    }

    public ValueTask<string> SubmitAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId = null, CancellationToken cancellationToken = default)
    {
        // Synchronous all the way when the store answers at once (the in-memory store always does);
        // an async method only for a store that does not. Failures go into the returned task.
        try
        {
            LiveRequest request = Admit(body, contentType, requestId, cancellationToken);
            ValueTask<bool> adding;
            try
            {
                adding = _table.TryAddAsync(request, cancellationToken);
            }
            catch (Exception ex)
            {
                _queued.Untake();
                if (StoreUnavailable(request, ex) is { } unavailable)
                {
                    throw unavailable;
                }

                throw;
            }

            return adding.IsCompletedSuccessfully ? Enqueue(request, adding.Result) : EnqueueWhenAddedAsync(request, adding);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<string>(cancellationToken);
        }
        catch (Exception ex)
        {
            return ValueTask.FromException<string>(ex);
        }

        async ValueTask<string> EnqueueWhenAddedAsync(LiveRequest request, ValueTask<bool> adding)
        {
            bool added;
            try
            {
                added = await adding.ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _queued.Untake();
                if (StoreUnavailable(request, ex) is { } unavailable)
                {
                    throw unavailable;
                }

                throw;
            }

            return await Enqueue(request, added).ConfigureAwait(false);
        }
    }

    public ValueTask<string> SubmitJsonAsync<T>(T value, string? requestId = null, CancellationToken cancellationToken = default) =>
        SubmitAsync(JsonSerializer.SerializeToUtf8Bytes(value, _options.JsonSerializerOptions), "application/json", requestId, cancellationToken);

    public ValueTask<string> SubmitTextAsync(string text, string? requestId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        return SubmitAsync(Encoding.UTF8.GetBytes(text), "text/plain; charset=utf-8", requestId, cancellationToken);
    }

    public ValueTask<AsyncRequestStatus> GetStatusAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (!AsyncRequestIds.IsWellFormed(requestId))
        {
            return new ValueTask<AsyncRequestStatus>(AsyncRequestStatus.NotFound(requestId));
        }

        ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> read = _table.ReadAsync(requestId, cancellationToken);
        return read.IsCompletedSuccessfully ? new ValueTask<AsyncRequestStatus>(read.Result.Status) : StatusOfAsync(requestId, read);

        async ValueTask<AsyncRequestStatus> StatusOfAsync(string requestId, ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> read)
        {
            try
            {
                return (await read.ConfigureAwait(false)).Status;
            }
            catch (Exception ex) when (IsStoreFailure(ex) && ex is not ObjectDisposedException)
            {
                throw AsyncStoreUnavailableException.Reading(ApiName, requestId, ex);
            }
        }
    }

    public ValueTask<AsyncRequestStatus> WaitForCompletionAsync(string requestId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (timeout != Timeout.InfiniteTimeSpan && timeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive or Timeout.InfiniteTimeSpan.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (!AsyncRequestIds.IsWellFormed(requestId))
        {
            return new ValueTask<AsyncRequestStatus>(AsyncRequestStatus.NotFound(requestId));
        }

        ValueTask<(AsyncRequestStatus Status, LiveRequest? Live)> read = _table.ReadAsync(requestId, cancellationToken);
        if (!read.IsCompletedSuccessfully)
        {
            return new ValueTask<AsyncRequestStatus>(WaitForStoredAsync(requestId, read.AsTask(), timeout, cancellationToken));
        }

        (AsyncRequestStatus status, LiveRequest? live) = read.Result;
        if (status.IsFinished || status.State == AsyncRequestState.NotFound)
        {
            return new ValueTask<AsyncRequestStatus>(status);
        }

        return new ValueTask<AsyncRequestStatus>(live is not null
            ? WaitForLiveAsync(live, timeout, cancellationToken)
            : WaitForStoredAsync(requestId, Task.FromResult((status, live)), timeout, cancellationToken));
    }

    public async ValueTask<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (!AsyncRequestIds.IsWellFormed(requestId))
        {
            return false;
        }

        if (await _table.TryFailQueuedAsync(requestId, "Cancelled by the caller before it ran.", _time.GetUtcNow(), cancellationToken).ConfigureAwait(false))
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            return true;
        }

        (AsyncRequestStatus status, LiveRequest? running) = await _table.ReadAsync(requestId, cancellationToken).ConfigureAwait(false);
        if (status.State == AsyncRequestState.InProgress && running is not null)
        {
            running.CancelByCaller();
            return true;
        }

        return false;
    }

    /// <summary>Stops at once (cancelling what runs, see <see cref="StopAsync"/>), then disposes the handler and the store once no lane runs.</summary>
    /// <remarks>Idempotent; concurrent callers await the same disposal. A lane whose handler ignores cancellation delays the disposal until it returns (logged), never the caller.</remarks>
    public ValueTask DisposeAsync()
    {
        lock (_lifecycle)
        {
            _dispose ??= DisposeOnceAsync();
            return new ValueTask(_dispose);
        }
    }

    private async Task DisposeOnceAsync()
    {
        Hurry();
        await BeginStop().ConfigureAwait(false);
        if (_workers.IsCompleted)
        {
            await DisposeOwnedAsync().ConfigureAwait(false);
            return;
        }

        Log.DisposalDeferred(_logger, ApiName, _lanes.Count(lane => !lane.IsCompleted));
        _ = DisposeWhenWorkersEndAsync();

        async Task DisposeWhenWorkersEndAsync()
        {
            try
            {
                await _workers.ConfigureAwait(false);
                await DisposeOwnedAsync().ConfigureAwait(false);
            }
#pragma warning disable CA1031 // Nobody awaits this: the failure is logged.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.StoreFailed(_logger, ApiName, ex);
            }
        }
    }

    /// <summary>Disposes what the API owns; only when no lane runs.</summary>
    private async Task DisposeOwnedAsync()
    {
        switch (_handler)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }

        await _store.DisposeAsync().ConfigureAwait(false);
        _hardStop.Dispose();
        _expiryStop.Dispose();
    }

    /// <summary>Checks a submit, takes a queue slot and makes the live request; throws what the caller gets.</summary>
    private LiveRequest Admit(ReadOnlyMemory<byte> body, string contentType, string? requestId, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_stopping)
        {
            throw Reject("invalid", $"Async API '{ApiName}' is stopping and accepts no new requests.");
        }

        if (!AsyncPayloadDecoder.TryParseContentType(contentType, out _, out _, out string? problem))
        {
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': {problem}.");
        }

        if (body.IsEmpty)
        {
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': the body is empty.");
        }

        if (body.Length > _options.MaxPayloadBytes)
        {
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': the body has {body.Length} bytes, more than MaxPayloadBytes ({_options.MaxPayloadBytes}).");
        }

        if (requestId is not null && !AsyncRequestIds.IsWellFormed(requestId))
        {
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': the request id '{EchoedText.Quote(requestId)}' is malformed; use 1 to {AsyncRequestIds.MaxLength} characters of A-Z a-z 0-9 - _ . ~, or let the API make one.");
        }

        if (!_queued.TryTake())
        {
            _metrics.Rejections.Add(1, _apiTag, new("reason", "queue_full"));
            Log.SubmitRejected(_logger, ApiName, "queue full");
            throw new AsyncQueueFullException(ApiName, _options.QueueCapacity);
        }

        var request = new LiveRequest(requestId, contentType, body.ToArray(), _time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
        if (_metrics.QueueWait.Enabled)
        {
            request.SubmittedTimestamp = _time.GetTimestamp(); // the queue wait is measured with the precise timestamps
        }

        return request;
    }

    /// <summary>Queues a request the table took (<paramref name="added"/>), or gives its slot back and says why not.</summary>
    private ValueTask<string> Enqueue(LiveRequest request, bool added)
    {
        if (!added)
        {
            _queued.Untake();
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': a request with id '{request.Id}' already exists.");
        }

        if (!_queue.Writer.TryWrite(request))
        {
            _queued.Untake();
            return FailUnqueuedAsync(request);
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, request.Id)))
            {
                Log.RequestAccepted(_logger, request.ContentType, request.Payload.Length);
            }
        }

        return new ValueTask<string>(request.Id);

        async ValueTask<string> FailUnqueuedAsync(LiveRequest request)
        {
            await FailOrReportAsync(request, "The API stopped before the request could be queued.", request.SubmittedAt).ConfigureAwait(false);
            throw Reject("invalid", $"Async API '{ApiName}' is stopping and accepts no new requests.");
        }
    }

    private IAsyncHandler CreateHandler()
    {
        // Hand the handler its per-API config and metrics only where its constructors ask for them.
        Type[] wanted = [.. _handlerType.GetConstructors().SelectMany(c => c.GetParameters()).Select(p => p.ParameterType)];
        var args = new List<object>();
        if (wanted.Contains(typeof(AsyncHandlerConfig)))
        {
            args.Add(new AsyncHandlerConfig(_options.Config) { ApiName = ApiName });
        }

        if (wanted.Contains(typeof(IAsyncHandlerMetrics)))
        {
            args.Add(new AsyncHandlerMetrics(_metrics.HandlerMeter, ApiName));
        }

        return (IAsyncHandler)ActivatorUtilities.CreateInstance(_services, _handlerType, [.. args]);
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

            if (!request.Recovered)
            {
                _queued.Return();
            }

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

        // Stamps come from the API's TimeProvider (never before the submit's); durations are measured
        // with its timestamps, and only when a metric or a log takes them.
        DateTimeOffset stamp = _time.GetUtcNow();
        DateTimeOffset started = stamp > request.SubmittedAt ? stamp : request.SubmittedAt;
        bool resumed = request.Recovered && request.StoredState == AsyncRequestState.InProgress;
        bool start;
        if (resumed)
        {
            start = request.TryStart(started.UtcTicks);
        }
        else
        {
            try
            {
                start = await _table.TryStartAsync(request, started).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStoreFailure(ex))
            {
                // The in-progress mark is advisory (a request read queued after a crash runs again just as one
                // read in progress), and a full store may refuse it yet take the outcome, which drops the payload
                // and so makes room: run the request. The table took the start on the live request first, so a
                // cancel meanwhile is not lost, and this process reads it in progress.
                Log.StartNotStored(_logger, ApiName, request.Id, ex);
                start = request.IsStarted || request.TryStart(started.UtcTicks);
            }
        }

        if (!start)
        {
            return; // cancelled while queued
        }

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
            if (request.CancelledByCaller)
            {
                failure = "Cancelled by the caller while it ran.";
            }
            else if (_hardStop.IsCancellationRequested)
            {
                abandoned = true;
            }
            else
            {
                failure = $"The request exceeded its deadline of {_options.RequestTimeout} (RequestTimeout) and was cancelled.";
            }
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

        stamp = _time.GetUtcNow();
        DateTimeOffset finished = stamp > started ? stamp : started;
        double elapsed = timed && startedTimestamp != 0 ? _time.GetElapsedTime(startedTimestamp).TotalSeconds : (finished - started).TotalSeconds;
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
    private async Task AbandonAsync(LiveRequest request, string what, bool graceOver = false)
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
            outcome = $"{why}; it stays in the store and runs again at the next start";
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

    private async Task<AsyncRequestStatus> WaitForLiveAsync(LiveRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        long startedTicks = _time.GetTimestamp();
        try
        {
            await request.WhenDone().WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw await TimedOutAsync(request.Id, timeout, ex).ConfigureAwait(false);
        }

        AsyncRequestStatus status = await GetStatusAsync(request.Id, CancellationToken.None).ConfigureAwait(false);
        return status.IsFinished || status.State == AsyncRequestState.NotFound
            ? status
            : await WaitAfterReleaseAsync(status, timeout, startedTicks, cancellationToken).ConfigureAwait(false); // the same awaiter type as above: no bigger frame
    }

    /// <summary>
    /// The request was released unfinished (abandoned at shutdown, kept by a durable store for the next start):
    /// never hand that back as the end; wait on the store for the rest of the timeout.
    /// </summary>
    private ValueTask<AsyncRequestStatus> WaitAfterReleaseAsync(AsyncRequestStatus status, TimeSpan timeout, long startedTicks, CancellationToken cancellationToken)
    {
        TimeSpan left = timeout == Timeout.InfiniteTimeSpan ? timeout : timeout - _time.GetElapsedTime(startedTicks);
        left = left < TimeSpan.Zero && left != Timeout.InfiniteTimeSpan ? TimeSpan.Zero : left;
        return new ValueTask<AsyncRequestStatus>(WaitForStoredAsync(status.Id, Task.FromResult<(AsyncRequestStatus, LiveRequest?)>((status, null)), left, cancellationToken));
    }

    /// <summary>
    /// The request is unfinished in the store but this process does not hold it (a process sharing
    /// the store submitted it, or the read was not synchronous): wait on it if it becomes live here,
    /// else poll the store, from 1 ms up to once a second.
    /// </summary>
    private async Task<AsyncRequestStatus> WaitForStoredAsync(string requestId, Task<(AsyncRequestStatus Status, LiveRequest? Live)> first, TimeSpan timeout, CancellationToken cancellationToken)
    {
        (AsyncRequestStatus status, LiveRequest? live) = await first.ConfigureAwait(false);
        long startedTicks = _time.GetTimestamp();
        TimeSpan pause = TimeSpan.FromMilliseconds(1);
        while (!status.IsFinished && status.State != AsyncRequestState.NotFound)
        {
            TimeSpan left = timeout == Timeout.InfiniteTimeSpan ? timeout : timeout - _time.GetElapsedTime(startedTicks);
            if (left != Timeout.InfiniteTimeSpan && left <= TimeSpan.Zero)
            {
                throw await TimedOutAsync(requestId, timeout, null).ConfigureAwait(false);
            }

            if (live is not null)
            {
                return await WaitForLiveAsync(live, left, cancellationToken).ConfigureAwait(false);
            }

            await Task.Delay(left == Timeout.InfiniteTimeSpan || pause < left ? pause : left, _time, cancellationToken).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.TicksPerSecond));
            try
            {
                (status, live) = await _table.ReadAsync(requestId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsStoreFailure(ex) && ex is not ObjectDisposedException)
            {
                throw AsyncStoreUnavailableException.Reading(ApiName, requestId, ex);
            }
        }

        return status;
    }

    private async Task<TimeoutException> TimedOutAsync(string requestId, TimeSpan timeout, Exception? inner)
    {
        AsyncRequestStatus now = await GetStatusAsync(requestId, CancellationToken.None).ConfigureAwait(false);
        return new TimeoutException($"Request {requestId} of async API '{ApiName}' did not finish within {timeout}; it is {now.Status}. It goes on; poll its status later.", inner);
    }

    private async Task RunExpiryLoopAsync()
    {
        while (true)
        {
            try
            {
                await Task.Delay(_options.ExpiryScanInterval, _time, _expiryStop.Token).ConfigureAwait(false);
                int removed = await _store.RemoveExpiredAsync(_expiryStop.Token).ConfigureAwait(false);
                Log.ExpiredRemoved(_logger, ApiName, removed);
            }
            catch (OperationCanceledException) when (_expiryStop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The scan runs again next time.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.StoreFailed(_logger, ApiName, ex);
            }
        }
    }

    /// <summary>Whether <paramref name="exception"/> from a store call is the store failing (not a cancel, not a full in-memory store, which says so itself).</summary>
    private static bool IsStoreFailure(Exception exception) => exception is not (OperationCanceledException or AsyncStoreFullException);

    /// <summary>What a submit throws when the store failed to add the request; null when <paramref name="exception"/> is not a store failure.</summary>
    private AsyncStoreUnavailableException? StoreUnavailable(LiveRequest request, Exception exception)
    {
        if (!IsStoreFailure(exception) || exception is AsyncStoreUnavailableException)
        {
            return exception as AsyncStoreUnavailableException;
        }

        _metrics.Rejections.Add(1, _apiTag, new("reason", "store_unavailable"));
        var unavailable = new AsyncStoreUnavailableException(ApiName, request.HasId ? request.Id : "(no id yet)", exception);
        Log.SubmitRejected(_logger, ApiName, unavailable.Message);
        return unavailable;
    }

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
            static s => s.Api._table.TryFinishAsync(s.Request, s.ResultJson, s.Failure, s.At),
            (Api: this, Request: request, ResultJson: resultJson, Failure: failure, At: at),
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
    private async Task<bool> FailOrReportAsync(LiveRequest request, string error, DateTimeOffset at, Exception? storeFailure = null)
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

    private AsyncRequestRejectedException Reject(string reason, string message)
    {
        _metrics.Rejections.Add(1, _apiTag, new("reason", reason));
        Log.SubmitRejected(_logger, ApiName, message);
        return new AsyncRequestRejectedException(message);
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
