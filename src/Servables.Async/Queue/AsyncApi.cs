using System.Collections.Concurrent;
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
/// this process holds are also kept as <see cref="LiveRequest"/>s, so that waiting for one and
/// cancelling one need no store polling. Thread-safe.
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
    private readonly Channel<LiveRequest> _queue;
    private readonly ConcurrentDictionary<string, LiveRequest> _live = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _hardStop = new();
    private readonly CancellationTokenSource _expiryStop = new();
    private readonly KeyValuePair<string, object?> _apiTag;
    private IAsyncHandler? _handler;
    private Task[] _lanes = [];
    private int _queued;
    private Task _expiryLoop = Task.CompletedTask;
    private volatile bool _stopping;
    private int _disposed;

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
        _queue = Channel.CreateUnbounded<LiveRequest>(new UnboundedChannelOptions { SingleReader = options.WorkerCount * options.MaxConcurrencyPerWorker == 1 });
        var storeOptions = new AsyncResultStoreOptions
        {
            Retention = options.ResultRetention,
            TimeProvider = _time,
            MaxEntries = options.MaxStoredRequests,
        };
        _store = options.StoreFactory?.Invoke(services, storeOptions) ?? AsyncResultStores.Create(options, storeOptions, apiName);
        metrics.Register(this);
    }

    public string ApiName { get; }

    /// <summary>Requests waiting in the queue (recovered ones not counted).</summary>
    public int QueueDepth => Volatile.Read(ref _queued);

    public IAsyncResultStore Store => _store;

    /// <summary>Recovers unfinished requests of a durable store, creates and initialises the handler, starts the workers.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        int recovered = 0;
        if (_store.IsDurable)
        {
            foreach (AsyncRequestRecord record in await _store.GetUnfinishedAsync(cancellationToken).ConfigureAwait(false))
            {
                var request = new LiveRequest(record.Id, record.ContentType, record.Payload, record.SubmittedAt, record.State, recovered: true);
                _live[record.Id] = request;
                _queue.Writer.TryWrite(request);
                recovered++;
            }

            if (recovered > 0)
            {
                Log.RequestsRecovered(_logger, ApiName, recovered);
            }
        }

        _handler = CreateHandler();
        await _handler.InitializeAsync(cancellationToken).ConfigureAwait(false);
        _lanes = [.. Enumerable.Range(0, _options.WorkerCount * _options.MaxConcurrencyPerWorker).Select(_ => Task.Run(RunLaneAsync, CancellationToken.None))];
        _expiryLoop = Task.Run(RunExpiryLoopAsync, CancellationToken.None);
        Log.ApiStarted(_logger, ApiName, _options.WorkerCount, _options.MaxConcurrencyPerWorker, _options.QueueCapacity, _store.GetType().Name);
    }

    /// <summary>Stops accepting, lets the workers drain the queue until <paramref name="cancellationToken"/> (the host's shutdown timeout) fires, then cancels what runs.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopping)
        {
            return;
        }

        _stopping = true;
        Log.ApiStopping(_logger, ApiName, QueueDepth);
        _queue.Writer.TryComplete();
        await _expiryStop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_lanes).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Out of time: cancel the handlers; queued requests are abandoned (kept for recovery by a durable store).
            await _hardStop.CancelAsync().ConfigureAwait(false);
            foreach (LiveRequest request in _live.Values)
            {
                request.CancelRunning();
            }

            await Task.WhenAll(_lanes).ConfigureAwait(false);
        }

        await _expiryLoop.ConfigureAwait(false);
    }

    public async ValueTask<string> SubmitAsync(ReadOnlyMemory<byte> body, string contentType, string? requestId = null, CancellationToken cancellationToken = default)
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
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': the request id '{Truncate(requestId)}' is malformed; use 1 to {AsyncRequestIds.MaxLength} characters of A-Z a-z 0-9 - _ . ~, or let the API make one.");
        }

        string id = requestId ?? AsyncRequestIds.New();
        if (Interlocked.Increment(ref _queued) > _options.QueueCapacity)
        {
            Interlocked.Decrement(ref _queued);
            _metrics.Rejections.Add(1, _apiTag, new("reason", "queue_full"));
            Log.SubmitRejected(_logger, ApiName, "queue full");
            throw new AsyncQueueFullException(ApiName, _options.QueueCapacity);
        }

        DateTimeOffset now = _time.GetUtcNow();
        byte[] payload = body.ToArray();
        var request = new LiveRequest(id, contentType, payload, now, AsyncRequestState.InQueue, recovered: false);
        if (!_live.TryAdd(id, request))
        {
            Interlocked.Decrement(ref _queued);
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': a request with id '{id}' already exists.");
        }

        bool added = false;
        try
        {
            added = await _store.TryAddAsync(
                new AsyncRequestRecord { Id = id, State = AsyncRequestState.InQueue, ContentType = contentType, Payload = payload, SubmittedAt = now, UpdatedAt = now },
                cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (!added)
            {
                // Never accepted: whoever found the live request in the meantime reads not_found.
                Forget(request);
                Interlocked.Decrement(ref _queued);
            }
        }

        if (!added)
        {
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': a request with id '{id}' already exists.");
        }

        if (!_queue.Writer.TryWrite(request))
        {
            Interlocked.Decrement(ref _queued);
            await _store.TryFailAsync(id, "The API stopped before the request could be queued.", now, CancellationToken.None).ConfigureAwait(false);
            Forget(request);
            throw Reject("invalid", $"Async API '{ApiName}' is stopping and accepts no new requests.");
        }

        if (_logger.IsEnabled(LogLevel.Debug))
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, id)))
            {
                Log.RequestAccepted(_logger, contentType, payload.Length);
            }
        }

        return id;
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
            return new ValueTask<AsyncRequestStatus>(NotFound(requestId));
        }

        if (_store is IAsyncStatusReader reader)
        {
            return new ValueTask<AsyncRequestStatus>(reader.GetStatus(requestId) ?? NotFound(requestId));
        }

        return ReadStatusAsync(requestId, cancellationToken);
    }

    public Task<AsyncRequestStatus> WaitForCompletionAsync(string requestId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (timeout != Timeout.InfiniteTimeSpan && timeout < TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive or Timeout.InfiniteTimeSpan.");
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (_live.TryGetValue(requestId, out LiveRequest? request))
        {
            Task done = request.WhenDone();
            if (!done.IsCompleted)
            {
                return WaitForLiveAsync(request, done, timeout, cancellationToken);
            }
        }

        ValueTask<AsyncRequestStatus> pending = GetStatusAsync(requestId, cancellationToken);
        if (!pending.IsCompletedSuccessfully)
        {
            return WaitForStoredAsync(requestId, pending.AsTask(), timeout, cancellationToken);
        }

        AsyncRequestStatus status = pending.Result;
        return status.IsFinished || status.State == AsyncRequestState.NotFound
            ? Task.FromResult(status)
            : WaitForStoredAsync(requestId, Task.FromResult(status), timeout, cancellationToken);
    }

    public async ValueTask<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        AsyncRequestRecord? record = await _store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        if (record?.State == AsyncRequestState.InQueue
            && await _store.TryFailAsync(requestId, "Cancelled by the caller before it ran.", _time.GetUtcNow(), cancellationToken).ConfigureAwait(false))
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            if (_live.TryGetValue(requestId, out LiveRequest? queued))
            {
                // The lane that dequeues it skips it; its waiters need not wait for that.
                Forget(queued);
            }

            return true;
        }

        if (record?.State == AsyncRequestState.InProgress && _live.TryGetValue(requestId, out LiveRequest? running))
        {
            running.CancelByCaller();
            return true;
        }

        return false;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await StopAsync(new CancellationToken(canceled: true)).ConfigureAwait(false);
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
                    return; // stopping, and the queue is empty
                }
            }

            if (!request.Recovered)
            {
                Interlocked.Decrement(ref _queued);
            }

            await RunOneAsync(request).ConfigureAwait(false);
        }
    }

    private async Task RunOneAsync(LiveRequest request)
    {
        try
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, request.Id)))
            {
                await ProcessAsync(request).ConfigureAwait(false);
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
            Forget(request);
        }
    }

    private async Task ProcessAsync(LiveRequest request)
    {
        if (_hardStop.IsCancellationRequested)
        {
            await AbandonAsync(request.Id, "it never ran").ConfigureAwait(false);
            return;
        }

        DateTimeOffset started = _time.GetUtcNow();
        bool resumed = request.Recovered && request.StoredState == AsyncRequestState.InProgress;
        if (!resumed && !await _store.TryMarkInProgressAsync(request.Id, started).ConfigureAwait(false))
        {
            return; // cancelled while queued
        }

        double queueWait = Math.Max(0, (started - request.SubmittedAt).TotalSeconds);
        _metrics.QueueWait.Record(queueWait, _apiTag);
        Log.RequestStarted(_logger, queueWait * 1000);

        // One source per request, with the deadline's timer when there is one; the caller's cancel
        // and a hard stop reach it through the live request.
        CancellationTokenSource cancellation = _options.RequestTimeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(_options.RequestTimeout, _time);
        request.Started(cancellation, _hardStop.Token);
        _metrics.InFlight.Add(1, _apiTag);
        long startedTicks = _time.GetTimestamp();
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
            failure = $"The handler threw {ex.GetType().Name}: {ex.Message}";
        }
        finally
        {
            request.Stopped();
            cancellation.Dispose();
            _metrics.InFlight.Add(-1, _apiTag);
        }

        if (abandoned)
        {
            await AbandonAsync(request.Id, "it was cancelled while running").ConfigureAwait(false);
            return;
        }

        double elapsed = _time.GetElapsedTime(startedTicks).TotalSeconds;
        _metrics.HandleDuration.Record(elapsed, _apiTag);
        DateTimeOffset finished = _time.GetUtcNow();
        if (failure is null)
        {
            await _store.TryCompleteAsync(request.Id, resultJson!, finished).ConfigureAwait(false);
            _metrics.Outcomes.Add(1, _apiTag, new("status", "completed"));
            Log.RequestCompleted(_logger, elapsed * 1000);
        }
        else
        {
            await _store.TryFailAsync(request.Id, failure, finished).ConfigureAwait(false);
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
            failure = $"The handler's result ({result!.GetType().Name}) cannot be serialised to JSON: {ex.Message}";
            return null;
        }
    }

    /// <summary>Shutdown ran out of time: a durable store keeps the request for recovery; otherwise it fails.</summary>
    private async Task AbandonAsync(string requestId, string what)
    {
        if (_store.IsDurable)
        {
            Log.RequestAbandoned(_logger, ApiName, requestId, $"{what}; it stays in the store and runs again at the next start");
            return;
        }

        await _store.TryFailAsync(requestId, $"The host shut down before the request finished ({what}).", _time.GetUtcNow()).ConfigureAwait(false);
        _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
        Log.RequestAbandoned(_logger, ApiName, requestId, $"{what}; it failed");
    }

    private async ValueTask<AsyncRequestStatus> ReadStatusAsync(string requestId, CancellationToken cancellationToken)
    {
        AsyncRequestRecord? record = await _store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        return record is null ? NotFound(requestId) : new AsyncRequestStatus(record.Id, record.State, record.ResultJson, record.Error, record.UpdatedAt);
    }

    /// <summary>The request is no longer this process's to run: its waiters go to the store for its status.</summary>
    private void Forget(LiveRequest request)
    {
        _live.TryRemove(new KeyValuePair<string, LiveRequest>(request.Id, request));
        request.MarkDone();
    }

    private async Task<AsyncRequestStatus> WaitForLiveAsync(LiveRequest request, Task done, TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await done.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            throw await TimedOutAsync(request.Id, timeout, ex).ConfigureAwait(false);
        }

        return await GetStatusAsync(request.Id, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>The request is unfinished in the store but not live here (submitted by another process sharing the store, or just now): poll the store.</summary>
    private async Task<AsyncRequestStatus> WaitForStoredAsync(string requestId, Task<AsyncRequestStatus> first, TimeSpan timeout, CancellationToken cancellationToken)
    {
        AsyncRequestStatus status = await first.ConfigureAwait(false);
        long startedTicks = _time.GetTimestamp();
        TimeSpan pause = TimeSpan.FromMilliseconds(1);
        while (!status.IsFinished && status.State != AsyncRequestState.NotFound)
        {
            if (_live.TryGetValue(requestId, out LiveRequest? request))
            {
                TimeSpan left = timeout == Timeout.InfiniteTimeSpan ? timeout : timeout - _time.GetElapsedTime(startedTicks);
                return left == Timeout.InfiniteTimeSpan || left > TimeSpan.Zero
                    ? await WaitForLiveAsync(request, request.WhenDone(), left, cancellationToken).ConfigureAwait(false)
                    : throw await TimedOutAsync(requestId, timeout, null).ConfigureAwait(false);
            }

            if (timeout != Timeout.InfiniteTimeSpan && _time.GetElapsedTime(startedTicks) >= timeout)
            {
                throw await TimedOutAsync(requestId, timeout, null).ConfigureAwait(false);
            }

            await Task.Delay(pause, _time, cancellationToken).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.TicksPerSecond));
            status = await GetStatusAsync(requestId, cancellationToken).ConfigureAwait(false);
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

    private AsyncRequestRejectedException Reject(string reason, string message)
    {
        _metrics.Rejections.Add(1, _apiTag, new("reason", reason));
        Log.SubmitRejected(_logger, ApiName, message);
        return new AsyncRequestRejectedException(message);
    }

    private static AsyncRequestStatus NotFound(string requestId) => new(requestId, AsyncRequestState.NotFound, null, null, null);

    private static string Truncate(string text) => text.Length <= 64 ? text : text[..64] + "…";
}
