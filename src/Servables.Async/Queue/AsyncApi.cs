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
/// Submit stores the request (durably, for a durable store) and writes it to an unbounded channel;
/// a semaphore of <see cref="AsyncApiOptions.QueueCapacity"/> slots bounds the queue, so a full
/// queue is refused at once and nothing is dropped. Workers take a slot back when they dequeue.
/// Every request ends completed or failed in the store; a faulty payload, handler or store call
/// fails that request only. Thread-safe.
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
    private readonly SemaphoreSlim _slots;
    private readonly Channel<QueuedRequest> _queue = Channel.CreateUnbounded<QueuedRequest>(new UnboundedChannelOptions { SingleWriter = false });
    private readonly ConcurrentDictionary<string, RunningRequest> _running = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<AsyncRequestStatus>> _waiters = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _hardStop = new();
    private readonly CancellationTokenSource _expiryStop = new();
    private readonly KeyValuePair<string, object?> _apiTag;
    private IAsyncHandler? _handler;
    private Task[] _workers = [];
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
        _slots = new SemaphoreSlim(options.QueueCapacity, options.QueueCapacity);
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
    public int QueueDepth => _options.QueueCapacity - _slots.CurrentCount;

    public IAsyncResultStore Store => _store;

    /// <summary>Recovers unfinished requests of a durable store, creates and initialises the handler, starts the workers.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        int recovered = 0;
        if (_store.IsDurable)
        {
            foreach (AsyncRequestRecord record in await _store.GetUnfinishedAsync(cancellationToken).ConfigureAwait(false))
            {
                _queue.Writer.TryWrite(new QueuedRequest(record.Id, record.ContentType, record.Payload, record.SubmittedAt, record.State, Recovered: true));
                recovered++;
            }

            if (recovered > 0)
            {
                Log.RequestsRecovered(_logger, ApiName, recovered);
            }
        }

        _handler = CreateHandler();
        await _handler.InitializeAsync(cancellationToken).ConfigureAwait(false);
        _workers = [.. Enumerable.Range(0, _options.WorkerCount).Select(_ => Task.Run(RunWorkerAsync, CancellationToken.None))];
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
            await Task.WhenAll(_workers).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Out of time: cancel the handlers; queued requests are abandoned (kept for recovery by a durable store).
            await _hardStop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(_workers).ConfigureAwait(false);
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
        if (!_slots.Wait(0, CancellationToken.None))
        {
            _metrics.Rejections.Add(1, _apiTag, new("reason", "queue_full"));
            Log.SubmitRejected(_logger, ApiName, "queue full");
            throw new AsyncQueueFullException(ApiName, _options.QueueCapacity);
        }

        DateTimeOffset now = _time.GetUtcNow();
        byte[] payload = body.ToArray();
        bool added;
        try
        {
            added = await _store.TryAddAsync(
                new AsyncRequestRecord { Id = id, State = AsyncRequestState.InQueue, ContentType = contentType, Payload = payload, SubmittedAt = now, UpdatedAt = now },
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            _slots.Release();
            throw;
        }

        if (!added)
        {
            _slots.Release();
            throw Reject("invalid", $"Request rejected by async API '{ApiName}': a request with id '{id}' already exists.");
        }

        if (!_queue.Writer.TryWrite(new QueuedRequest(id, contentType, payload, now, AsyncRequestState.InQueue, Recovered: false)))
        {
            _slots.Release();
            await _store.TryFailAsync(id, "The API stopped before the request could be queued.", now, CancellationToken.None).ConfigureAwait(false);
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

    public async ValueTask<AsyncRequestStatus> GetStatusAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        if (!AsyncRequestIds.IsWellFormed(requestId))
        {
            return NotFound(requestId);
        }

        AsyncRequestRecord? record = await _store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        return record is null ? NotFound(requestId) : new AsyncRequestStatus(record.Id, record.State, record.ResultJson, record.Error, record.UpdatedAt);
    }

    public async Task<AsyncRequestStatus> WaitForCompletionAsync(string requestId, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        TaskCompletionSource<AsyncRequestStatus> waiter = _waiters.GetOrAdd(requestId, _ => new TaskCompletionSource<AsyncRequestStatus>(TaskCreationOptions.RunContinuationsAsynchronously));
        AsyncRequestStatus status = await GetStatusAsync(requestId, cancellationToken).ConfigureAwait(false);
        if (status.IsFinished || status.State == AsyncRequestState.NotFound)
        {
            _waiters.TryRemove(new KeyValuePair<string, TaskCompletionSource<AsyncRequestStatus>>(requestId, waiter));
            return status;
        }

        try
        {
            return await waiter.Task.WaitAsync(timeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException ex)
        {
            AsyncRequestStatus now = await GetStatusAsync(requestId, CancellationToken.None).ConfigureAwait(false);
            throw new TimeoutException($"Request {requestId} of async API '{ApiName}' did not finish within {timeout}; it is {now.Status}. It goes on; poll its status later.", ex);
        }
    }

    public async ValueTask<bool> CancelAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        AsyncRequestRecord? record = await _store.GetAsync(requestId, includePayload: false, cancellationToken).ConfigureAwait(false);
        if (record?.State == AsyncRequestState.InQueue
            && await _store.TryFailAsync(requestId, "Cancelled by the caller before it ran.", _time.GetUtcNow(), cancellationToken).ConfigureAwait(false))
        {
            _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
            await NotifyWaitersAsync(requestId).ConfigureAwait(false);
            return true;
        }

        if (_running.TryGetValue(requestId, out RunningRequest? running))
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
        _slots.Dispose();
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

    private async Task RunWorkerAsync()
    {
        using var concurrency = new SemaphoreSlim(_options.MaxConcurrencyPerWorker);
        var running = new List<Task>();
        ChannelReader<QueuedRequest> reader = _queue.Reader;
        while (true)
        {
            await concurrency.WaitAsync().ConfigureAwait(false);
            if (!await reader.WaitToReadAsync().ConfigureAwait(false) || !reader.TryRead(out QueuedRequest? item))
            {
                concurrency.Release();
                if (reader.Completion.IsCompleted)
                {
                    break;
                }

                continue;
            }

            if (!item.Recovered)
            {
                _slots.Release();
            }

            running.RemoveAll(t => t.IsCompleted);
            running.Add(RunOneAsync(item, concurrency));
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task RunOneAsync(QueuedRequest item, SemaphoreSlim concurrency)
    {
        try
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, item.Id)))
            {
                await ProcessAsync(item).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // A worker outlives any one request; the failure is logged.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.StoreFailed(_logger, ApiName, ex);
        }
        finally
        {
            concurrency.Release();
            await NotifyWaitersAsync(item.Id).ConfigureAwait(false);
        }
    }

    private async Task ProcessAsync(QueuedRequest item)
    {
        if (_hardStop.IsCancellationRequested)
        {
            await AbandonAsync(item.Id, "it never ran").ConfigureAwait(false);
            return;
        }

        DateTimeOffset started = _time.GetUtcNow();
        bool resumed = item.Recovered && item.StoredState == AsyncRequestState.InProgress;
        if (!resumed && !await _store.TryMarkInProgressAsync(item.Id, started).ConfigureAwait(false))
        {
            return; // cancelled while queued
        }

        double queueWait = Math.Max(0, (started - item.SubmittedAt).TotalSeconds);
        _metrics.QueueWait.Record(queueWait, _apiTag);
        Log.RequestStarted(_logger, queueWait * 1000);

        using CancellationTokenSource deadline = _options.RequestTimeout == Timeout.InfiniteTimeSpan
            ? new CancellationTokenSource()
            : new CancellationTokenSource(_options.RequestTimeout, _time);
        using CancellationTokenSource linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, _hardStop.Token);
        var running = new RunningRequest(linked);
        _running[item.Id] = running;
        _metrics.InFlight.Add(1, _apiTag);
        long startedTicks = _time.GetTimestamp();
        string? failure = null;
        string? resultJson = null;
        try
        {
            AsyncPayload payload = AsyncPayloadDecoder.Decode(item.ContentType, item.Payload);
            object? result = await _handler!.HandleAsync(payload, item.Id, linked.Token).ConfigureAwait(false);
            resultJson = Serialize(result, out failure);
        }
        catch (AsyncPayloadException ex)
        {
            failure = ex.Message;
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            if (running.CancelledByCaller)
            {
                failure = "Cancelled by the caller while it ran.";
            }
            else if (_hardStop.IsCancellationRequested)
            {
                _running.TryRemove(item.Id, out _);
                _metrics.InFlight.Add(-1, _apiTag);
                await AbandonAsync(item.Id, "it was cancelled while running").ConfigureAwait(false);
                return;
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

        _running.TryRemove(item.Id, out _);
        _metrics.InFlight.Add(-1, _apiTag);
        double elapsed = _time.GetElapsedTime(startedTicks).TotalSeconds;
        _metrics.HandleDuration.Record(elapsed, _apiTag);
        DateTimeOffset finished = _time.GetUtcNow();
        if (failure is null)
        {
            await _store.TryCompleteAsync(item.Id, resultJson!, finished).ConfigureAwait(false);
            _metrics.Outcomes.Add(1, _apiTag, new("status", "completed"));
            Log.RequestCompleted(_logger, elapsed * 1000);
        }
        else
        {
            await _store.TryFailAsync(item.Id, failure, finished).ConfigureAwait(false);
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

    private async Task NotifyWaitersAsync(string requestId)
    {
        if (_waiters.TryRemove(requestId, out TaskCompletionSource<AsyncRequestStatus>? waiter))
        {
            try
            {
                waiter.TrySetResult(await GetStatusAsync(requestId, CancellationToken.None).ConfigureAwait(false));
            }
#pragma warning disable CA1031 // The waiter learns of the failure instead of the worker.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                waiter.TrySetException(ex);
            }
        }
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
