using System.Diagnostics.Metrics;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Servables.Async;

/// <summary>One async API at run time, as its callers see it: admission, submit, status, waiting and cancelling; it owns the lanes and the lifecycle.</summary>
/// <remarks>
/// Submit checks the request (stopping, Content-Type, body, id), takes one of
/// <see cref="AsyncApiOptions.QueueCapacity"/> queue slots (a full queue is refused at once, before
/// anything is stored, and nothing is dropped), stores the request (durably, for a durable store)
/// and writes it to the channel that the <see cref="AsyncLanes"/> read. Requests this process holds
/// are also kept as <see cref="LiveRequest"/>s in the <see cref="IAsyncRequestTable"/>, so that
/// waiting for one and cancelling one need no store polling; a request another process holds is
/// polled. Over an <see cref="ISharedAsyncResultStore"/> (shared mode) the store is the queue: a submit goes
/// to the store alone, whichever host takes it runs it, and a wait for a request another host holds is
/// woken by the store's news of its finish. Start, stop and disposal are <see cref="AsyncApiLifecycle"/>'s. Thread-safe.
/// </remarks>
internal sealed class AsyncApi : IAsyncApiClient, IAsyncDisposable, IDisposable
{
    private readonly AsyncApiOptions _options;
    private readonly AsyncMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IAsyncResultStore _store;
    private readonly IAsyncRequestTable _table;
    private readonly ISharedAsyncResultStore? _shared;
    private readonly Channel<LiveRequest> _queue;
    private readonly KeyValuePair<string, object?> _apiTag;
    private readonly QueueSlots _queued;
    private readonly AsyncLanes _lanes;
    private readonly AsyncApiLifecycle _lifecycle;

    public AsyncApi(string apiName, AsyncApiOptions options, IServiceProvider services, Type handlerType, AsyncMetrics metrics, ILoggerFactory? loggerFactory, TimeProvider? timeProvider)
    {
        List<string> errors = options.ValidateFor(handlerType);
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid AsyncApiOptions for API '{apiName}': " + string.Join(" ", errors), nameof(options));
        }

        ApiName = apiName;
        _options = options;
        _metrics = metrics;
        _logger = loggerFactory?.CreateLogger($"Servables.Async.AsyncApi.{apiName}") ?? NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
        _apiTag = new KeyValuePair<string, object?>("api", apiName);
        bool batched = AsyncHandlerKind.IsBatched(handlerType);
        _queue = Channel.CreateUnbounded<LiveRequest>(new UnboundedChannelOptions { SingleReader = batched || options.WorkerCount * options.MaxConcurrencyPerWorker == 1 });
        var storeOptions = new AsyncResultStoreOptions
        {
            Retention = options.ResultRetention,
            TimeProvider = _time,
            MaxEntries = options.MaxStoredRequests,
            ApiName = apiName,
        };
        _store = options.StoreFactory is { } factory
            ? factory(services, storeOptions) ?? throw new InvalidOperationException($"The StoreFactory of async API '{apiName}' returned null; it must return the API's result store.")
            : new InMemoryAsyncResultStore(storeOptions);
        _shared = _store as ISharedAsyncResultStore;
        _table = _store as IAsyncRequestTable ?? new StoreRequestTable(_store);

        // Shared, the queue's capacity is the store's to keep across hosts; here it bounds what this host takes ahead of its lanes.
        _queued = new QueueSlots(_shared is null ? options.QueueCapacity : SharedPlaces(options, batched));
        _lanes = new AsyncLanes(apiName, options, _table, _queue, _queued, metrics, _logger, _time)
        {
            Batching = batched ? new AsyncLanes.BatchingSetup(loggerFactory, services.GetService(typeof(IMeterFactory)) as IMeterFactory) : null,
        };
        _lifecycle = new AsyncApiLifecycle(apiName, options, services, handlerType, _table, _queue, _queued, _lanes, metrics, _logger, _time);
        metrics.Register(this);
    }

    public string ApiName { get; }

    /// <summary>Requests waiting in the queue, recovered ones included.</summary>
    public int QueueDepth => _queued.Depth;

    public IAsyncResultStore Store => _store;

    /// <summary>The queue's capacity (<see cref="AsyncApiOptions.QueueCapacity"/>).</summary>
    public int QueueCapacity => _options.QueueCapacity;

    /// <summary>How many lanes the API runs once started (one, that feeds the batch queue, for a batched handler; none on a host whose shared store runs no requests).</summary>
    public int LaneCount => _shared is { RunsRequests: false } ? 0 : _lanes.LaneCount;

    /// <summary>How many lanes run now (a lane ends only when the API stops).</summary>
    public int LanesAlive => _lanes.Alive;

    /// <summary>Started and not stopping: it accepts and runs requests.</summary>
    public bool IsRunning => _lifecycle.IsRunning;

    /// <summary>Requests of a batched API taken from the queue and waiting for their batch.</summary>
    public int BatchQueuedSize => _lanes.BatchQueuedSize;

    /// <summary>When the batch timeout's timer of a batched API fires (a timestamp of <see cref="Time"/>); <see cref="long.MaxValue"/> when it is not set. A worker that set it found no batch ready.</summary>
    public long BatchTimerDue => _lanes.BatchTimerDue;

    /// <summary>The API's clock.</summary>
    public TimeProvider Time => _time;

    /// <inheritdoc cref="AsyncApiLifecycle.StartAsync"/>
    public Task StartAsync(CancellationToken cancellationToken) => _lifecycle.StartAsync(cancellationToken);

    /// <inheritdoc cref="AsyncApiLifecycle.StopAsync"/>
    public Task StopAsync(CancellationToken cancellationToken) => _lifecycle.StopAsync(cancellationToken);

    /// <inheritdoc cref="AsyncApiLifecycle.DisposeAsync"/>
    public ValueTask DisposeAsync() => _lifecycle.DisposeAsync();

    /// <summary>For a container disposed synchronously (<c>ServiceProvider.Dispose</c>): the same as <see cref="DisposeAsync"/>, blocking until it is done.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    public ValueTask<string> SubmitAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId = null, CancellationToken cancellationToken = default) =>
        SubmitAsync(body, contentType, requestId, owned: false, cancellationToken);

    /// <summary>A submit whose body the API may keep as it is (<paramref name="body"/> is a whole array nobody else writes): it is not copied.</summary>
    internal ValueTask<string> SubmitOwnedAsync(byte[] body, string contentType, string? requestId, CancellationToken cancellationToken) =>
        SubmitAsync(body, contentType, requestId, owned: true, cancellationToken);

    /// <summary>The largest body a submit accepts (<see cref="AsyncApiOptions.MaxPayloadBytes"/>).</summary>
    internal int MaxPayloadBytes => _options.MaxPayloadBytes;

    private ValueTask<string> SubmitAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId, bool owned, CancellationToken cancellationToken)
    {
        if (_shared is not null)
        {
            return SubmitSharedAsync(body, contentType, requestId, owned, cancellationToken);
        }

        // Synchronous all the way when the store answers at once (the in-memory store always does);
        // an async method only for a store that does not. Failures go into the returned task.
        try
        {
            LiveRequest request = Admit(body, contentType, requestId, owned, cancellationToken);
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
            catch (Exception ex) when (AsyncLanes.IsStoreFailure(ex) && ex is not ObjectDisposedException)
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

        if (_shared is not null)
        {
            return new ValueTask<AsyncRequestStatus>(WaitForSharedAsync(requestId, timeout, _time.GetTimestamp(), cancellationToken)); // it reads the status itself, once listening
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

        if (_shared is not null)
        {
            return await CancelSharedAsync(requestId, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Checks a submit, takes a queue slot and makes the live request; throws what the caller gets.</summary>
    private LiveRequest Admit(ReadOnlyMemory<byte> body, string contentType, string? requestId, bool owned, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_lifecycle.IsStopping)
        {
            throw Reject(AsyncRejection.Stopping, $"Async API '{ApiName}' is stopping and accepts no new requests.");
        }

        if (!AsyncPayloadDecoder.TryParseContentType(contentType, out _, out _, out string? problem))
        {
            throw Reject(AsyncRejection.Invalid, $"Request rejected by async API '{ApiName}': {problem}.");
        }

        if (body.IsEmpty)
        {
            throw Reject(AsyncRejection.Invalid, $"Request rejected by async API '{ApiName}': the body is empty.");
        }

        if (body.Length > _options.MaxPayloadBytes)
        {
            throw Reject(AsyncRejection.TooLarge, $"Request rejected by async API '{ApiName}': the body has {body.Length} bytes, more than MaxPayloadBytes ({_options.MaxPayloadBytes}).");
        }

        if (requestId is not null && !AsyncRequestIds.IsWellFormed(requestId))
        {
            throw Reject(AsyncRejection.Invalid, $"Request rejected by async API '{ApiName}': the request id '{EchoedText.Quote(requestId)}' is malformed; use 1 to {AsyncRequestIds.MaxLength} characters of A-Z a-z 0-9 - _ . ~, or let the API make one.");
        }

        if (_shared is null && !_queued.TryTake())
        {
            _metrics.Rejections.Add(1, _apiTag, new("reason", "queue_full"));
            Log.SubmitRejected(_logger, ApiName, "queue full");
            throw new AsyncQueueFullException(ApiName, _options.QueueCapacity);
        }

        var request = new LiveRequest(requestId, contentType, owned ? body : body.ToArray(), _time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
        if (_metrics.QueueWait.Enabled)
        {
            request.SubmittedTimestamp = _time.GetTimestamp(); // the queue wait is measured with the precise timestamps
        }

        return request;
    }

    /// <summary>How many requests a host in shared mode takes from the shared queue ahead of its lanes, at most: one per lane, or a batch's worth per batch.</summary>
    private static int SharedPlaces(AsyncApiOptions options, bool batched) =>
        options.WorkerCount * options.MaxConcurrencyPerWorker * (batched ? (options.Batching ?? new BatchQueueOptions()).MaxBatchSize : 1);

    /// <summary>A submit in shared mode: the store keeps the request and queues it for whichever host takes it (this process holds no live request for it).</summary>
    private async ValueTask<string> SubmitSharedAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId, bool owned, CancellationToken cancellationToken)
    {
        LiveRequest request = Admit(body, contentType, requestId, owned, cancellationToken);
        if (!request.HasId)
        {
            request.Id = AsyncRequestIds.New();
        }

        bool added;
        try
        {
            added = await _store.TryAddAsync(
                new AsyncRequestRecord { Id = request.Id, State = AsyncRequestState.InQueue, ContentType = request.ContentType, Payload = request.Payload, SubmittedAt = request.SubmittedAt, UpdatedAt = request.SubmittedAt },
                cancellationToken).ConfigureAwait(false);
        }
        catch (AsyncQueueFullException)
        {
            _metrics.Rejections.Add(1, _apiTag, new("reason", "queue_full"));
            Log.SubmitRejected(_logger, ApiName, "queue full");
            throw;
        }
        catch (Exception ex) when (StoreUnavailable(request, ex) is { } unavailable)
        {
            throw unavailable;
        }

        if (!added)
        {
            throw Reject(AsyncRejection.DuplicateId, $"Request rejected by async API '{ApiName}': a request with id '{request.Id}' already exists.");
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, request.Id)))
            {
                Log.RequestAccepted(_logger, request.ContentType, request.Payload.Length);
            }
        }

        return request.Id;
    }

    /// <summary>A cancel in shared mode: the store fails a queued request or asks the host that runs it to cancel it.</summary>
    private async ValueTask<bool> CancelSharedAsync(string requestId, CancellationToken cancellationToken)
    {
        AsyncSharedCancel done = await _shared!.CancelAsync(requestId, "Cancelled by the caller before it ran.", _time.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        if (done == AsyncSharedCancel.Withdrawn)
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            ((StoreRequestTable)_table).CancelHeld(requestId); // taken by this host and not run yet: its lane skips it
        }

        return done != AsyncSharedCancel.None;
    }

    /// <summary>Queues a request the table took (<paramref name="added"/>), or gives its slot back and says why not.</summary>
    private ValueTask<string> Enqueue(LiveRequest request, bool added)
    {
        if (!added)
        {
            _queued.Untake();
            throw Reject(AsyncRejection.DuplicateId, $"Request rejected by async API '{ApiName}': a request with id '{request.Id}' already exists.");
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
            await _lanes.FailOrReportAsync(request, "The API stopped before the request could be queued.", request.SubmittedAt).ConfigureAwait(false);
            throw Reject(AsyncRejection.Stopping, $"Async API '{ApiName}' is stopping and accepts no new requests.");
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

        AsyncRequestStatus status = request.StoredOutcome ?? await GetStatusAsync(request.Id, CancellationToken.None).ConfigureAwait(false);
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
        if (_shared is not null && live is null)
        {
            return await WaitForSharedAsync(requestId, timeout, startedTicks, cancellationToken).ConfigureAwait(false);
        }

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
            catch (Exception ex) when (AsyncLanes.IsStoreFailure(ex) && ex is not ObjectDisposedException)
            {
                throw AsyncStoreUnavailableException.Reading(ApiName, requestId, ex);
            }
        }

        return status;
    }

    /// <summary>
    /// Waits for a request that another host holds: woken by the store when any host finishes it, with a status read
    /// every <see cref="SharedRecheck"/> in case word of the finish was lost.
    /// </summary>
    private async Task<AsyncRequestStatus> WaitForSharedAsync(string requestId, TimeSpan timeout, long startedTicks, CancellationToken cancellationToken)
    {
        while (true)
        {
            TimeSpan left = timeout == Timeout.InfiniteTimeSpan ? timeout : timeout - _time.GetElapsedTime(startedTicks);
            if (left != Timeout.InfiniteTimeSpan && left <= TimeSpan.Zero)
            {
                throw await TimedOutAsync(requestId, timeout, null).ConfigureAwait(false);
            }

            AsyncRequestStatus status;
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            Task<AsyncRequestStatus?> finished = _shared!.WhenFinishedAsync(requestId, wait.Token); // before the read: a finish in between is not missed
            LiveRequest? live;
            try
            {
                (status, live) = await _table.ReadAsync(requestId, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (AsyncLanes.IsStoreFailure(ex) && ex is not ObjectDisposedException)
            {
                throw AsyncStoreUnavailableException.Reading(ApiName, requestId, ex);
            }

            if (status.IsFinished || status.State == AsyncRequestState.NotFound)
            {
                return status;
            }

            if (live is not null)
            {
                return await WaitForLiveAsync(live, left, cancellationToken).ConfigureAwait(false); // this host took it meanwhile
            }

            TimeSpan pause = left == Timeout.InfiniteTimeSpan || SharedRecheck < left ? SharedRecheck : left;
            await Task.WhenAny(finished, Task.Delay(pause, _time, wait.Token)).ConfigureAwait(false);
            await wait.CancelAsync().ConfigureAwait(false); // ends this round's registration (and its delay)
            cancellationToken.ThrowIfCancellationRequested();
            if (finished.IsCompletedSuccessfully && finished.Result is { } carried)
            {
                return carried; // the news of the finish carried the outcome
            }
        }
    }

    /// <summary>How often a wait in shared mode reads the status again when the store has not said that the request finished.</summary>
    private static readonly TimeSpan SharedRecheck = TimeSpan.FromSeconds(2);

    private async Task<TimeoutException> TimedOutAsync(string requestId, TimeSpan timeout, Exception? inner)
    {
        AsyncRequestStatus now = await GetStatusAsync(requestId, CancellationToken.None).ConfigureAwait(false);
        return new TimeoutException($"Request {requestId} of async API '{ApiName}' did not finish within {timeout}; it is {now.Status}. It goes on; poll its status later.", inner);
    }

    /// <summary>What a submit throws when the store failed to add the request; null when <paramref name="exception"/> is not a store failure.</summary>
    private AsyncStoreUnavailableException? StoreUnavailable(LiveRequest request, Exception exception)
    {
        if (!AsyncLanes.IsStoreFailure(exception) || exception is AsyncStoreUnavailableException)
        {
            return exception as AsyncStoreUnavailableException;
        }

        _metrics.Rejections.Add(1, _apiTag, new("reason", "store_unavailable"));
        var unavailable = new AsyncStoreUnavailableException(ApiName, request.HasId ? request.Id : "(no id yet)", exception);
        Log.SubmitRejected(_logger, ApiName, unavailable.Message);
        return unavailable;
    }

    private AsyncRequestRejectedException Reject(AsyncRejection reason, string message)
    {
        _metrics.Rejections.Add(1, _apiTag, new("reason", "invalid"));
        Log.SubmitRejected(_logger, ApiName, message);
        return new AsyncRequestRejectedException(message, reason);
    }
}
