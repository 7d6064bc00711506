using System.Threading.Channels;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>An async API's lifecycle: start (recovery, handler activation, lanes, expiry scan), the bounded stop, and disposal.</summary>
/// <remarks>
/// Start recovers a durable store's unfinished requests onto the queue (the first page before the lanes start,
/// the rest a page at a time as the queue has room), creates the handler once with
/// DI (handing it its config and metrics where its constructor asks) and initialises it before the
/// lanes start; the expiry scan then runs every <see cref="AsyncApiOptions.ExpiryScanInterval"/>.
/// Stopping and disposing are each one sequence, begun once; every caller awaits it. A stop drains
/// the queue until the host's token fires, then cancels what runs and waits
/// <see cref="AsyncApiOptions.AbandonTimeout"/> more, then abandons what is still held. The handler
/// and the store are disposed only once no lane runs. Thread-safe.
/// </remarks>
internal sealed class AsyncApiLifecycle : IAsyncDisposable
{
    // How many unfinished requests recovery reads from the store at once, at most (and at most the queue's capacity).
    private const int RecoveryPageSize = 256;

    private readonly AsyncApiOptions _options;
    private readonly IServiceProvider _services;
    private readonly Type _handlerType;
    private readonly AsyncMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IAsyncResultStore _store;
    private readonly IAsyncRequestTable _table;
    private readonly Channel<LiveRequest> _queue;
    private readonly QueueSlots _queued;
    private readonly AsyncLanes _lanes;
    private readonly CancellationTokenSource _expiryStop = new();
    private object? _handler; // an IAsyncHandler or an IBatchAsyncHandler
    private Task _expiryLoop = Task.CompletedTask;
    private Task _recovery = Task.CompletedTask;
    private Task _feed = Task.CompletedTask;

    // Stopping and disposing are each one sequence, begun once under _gate; every caller awaits it.
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _hurry = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _stop;
    private Task? _dispose;
    private Task _workers = Task.CompletedTask;
    private volatile bool _stopping;
    private volatile bool _started;

    public AsyncApiLifecycle(string apiName, AsyncApiOptions options, IServiceProvider services, Type handlerType, IAsyncRequestTable table, Channel<LiveRequest> queue, QueueSlots queued, AsyncLanes lanes, AsyncMetrics metrics, ILogger logger, TimeProvider time)
    {
        ApiName = apiName;
        _options = options;
        _services = services;
        _handlerType = handlerType;
        _table = table;
        _store = table.Store;
        _queue = queue;
        _queued = queued;
        _lanes = lanes;
        _metrics = metrics;
        _logger = logger;
        _time = time;
    }

    public string ApiName { get; }

    /// <summary>A stop has begun: no new requests are accepted.</summary>
    public bool IsStopping => _stopping;

    /// <summary>Started and not stopping: it accepts and runs requests.</summary>
    public bool IsRunning => _started && !_stopping;

    /// <summary>Recovers unfinished requests of a durable store, creates and initialises the handler, starts the workers.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (_store is ISharedAsyncResultStore shared)
        {
            await StartSharedAsync(shared, cancellationToken).ConfigureAwait(false);
            return;
        }

        // Recovery: the first page is queued, as far as the queue has room, before any new submit; the rest follows
        // in the background, a page at a time as the lanes make room (recovered requests take queue slots as submits do).
        int pageSize = Math.Min(_options.QueueCapacity, RecoveryPageSize);
        (IReadOnlyList<LiveRequest> first, string? next) = await _table.RecoverPageAsync(null, pageSize, cancellationToken).ConfigureAwait(false);
        int queued = 0;
        while (queued < first.Count && _queued.TryTake())
        {
            _queue.Writer.TryWrite(first[queued++]);
        }

        await StartLanesAsync(cancellationToken).ConfigureAwait(false);
        _recovery = first.Count > 0 || next is not null ? Task.Run(() => RecoverRestAsync(first, queued, next, pageSize, _expiryStop.Token), CancellationToken.None) : Task.CompletedTask;
        MarkStarted();
    }

    /// <summary>Creates the handler once, initialises it, and starts the lanes with it.</summary>
    private async Task StartLanesAsync(CancellationToken cancellationToken)
    {
        _handler = CreateHandler();
        ValueTask initializing = _handler is IBatchAsyncHandler batched
            ? batched.InitializeAsync(cancellationToken)
            : ((IAsyncHandler)_handler).InitializeAsync(cancellationToken);
        await initializing.ConfigureAwait(false);
        _lanes.Start(_handler);
    }

    /// <summary>Starts the expiry scan and marks the API running (it accepts requests from now on).</summary>
    private void MarkStarted()
    {
        _expiryLoop = Task.Run(RunExpiryLoopAsync, CancellationToken.None);
        _started = true;
        Log.ApiStarted(_logger, ApiName, _options.WorkerCount, _options.MaxConcurrencyPerWorker, _options.QueueCapacity, _store.GetType().Name);
    }

    /// <summary>
    /// Starts in shared mode: nothing is recovered (the hosts that hold requests run them); the lanes run what this host
    /// takes from the shared queue. A host whose store runs no requests (a front end) creates no handler and no lanes.
    /// </summary>
    private async Task StartSharedAsync(ISharedAsyncResultStore shared, CancellationToken cancellationToken)
    {
        if (!shared.RunsRequests)
        {
            MarkStarted();
            return;
        }

        var table = (StoreRequestTable)_table;
        shared.Attach(table.CancelHeld);
        await StartLanesAsync(cancellationToken).ConfigureAwait(false);
        _feed = Task.Run(() => FeedAsync(shared, table, _expiryStop.Token), CancellationToken.None);
        MarkStarted();
    }

    /// <summary>
    /// Shared mode: takes requests from the shared queue as this host has places for them (one per lane, see
    /// <see cref="QueueSlots"/>), holds them and queues them for the lanes, until the stop. A store that fails is
    /// tried again after a pause that doubles from 100 ms up to 5 s.
    /// </summary>
    private async Task FeedAsync(ISharedAsyncResultStore shared, StoreRequestTable table, CancellationToken stop)
    {
        TimeSpan pause = TimeSpan.Zero;
        while (true)
        {
            int places = 0;
            try
            {
                await _queued.TakeAsync(stop).ConfigureAwait(false);
                places = 1;
                while (places < SharedTakeSize && _queued.TryTake())
                {
                    places++;
                }

                IReadOnlyList<AsyncRequestRecord> taken = await shared.TakeAsync(places, stop).ConfigureAwait(false);
                pause = TimeSpan.Zero;
                foreach (AsyncRequestRecord record in taken)
                {
                    places--;
                    if (table.Hold(record) is not { } request)
                    {
                        _queued.Untake(); // held here already (taken again after this host was slow to keep it)
                    }
                    else if (!_queue.Writer.TryWrite(request))
                    {
                        _queued.Untake();
                        table.Release(request); // stopping: the shared queue hands it to a host again
                    }
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The feed goes on after a pause; what it did not take stays in the shared queue.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.StoreFailed(_logger, ApiName, ex);
                pause = TimeSpan.FromTicks(Math.Clamp(pause.Ticks * 2, TimeSpan.TicksPerMillisecond * 100, TimeSpan.TicksPerSecond * 5));
            }
            finally
            {
                for (; places > 0; places--)
                {
                    _queued.Untake();
                }
            }

            if (pause > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(pause, _time, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    // The most requests the feed takes from the shared queue in one call.
    private const int SharedTakeSize = 64;

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
            using (cancellationToken.UnsafeRegister(static state => ((AsyncApiLifecycle)state!).Hurry(), this))
            {
                await stop.ConfigureAwait(false);
            }
        }

        await stop.ConfigureAwait(false);
    }

    /// <summary>The stop sequence, begun by the first caller.</summary>
    private Task BeginStop()
    {
        lock (_gate)
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
        Log.ApiStopping(_logger, ApiName, _queued.Depth);
        _queue.Writer.TryComplete();
        await _expiryStop.CancelAsync().ConfigureAwait(false);
        _workers = Task.WhenAll([.. _lanes.Tasks, _expiryLoop, _recovery, _feed]);
        if (await Task.WhenAny(_workers, _hurry.Task).ConfigureAwait(false) == _workers)
        {
            return;
        }

        // Out of time: cancel the handlers; queued requests are abandoned (kept for recovery by a durable store).
        await _lanes.HardStopAsync().ConfigureAwait(false);
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
            await _lanes.AbandonAsync(request, request.IsStarted ? "it was running" : "it was queued", graceOver: true).ConfigureAwait(false);
        }
    }

    /// <summary>Stops at once (cancelling what runs, see <see cref="StopAsync"/>), then disposes the handler and the store once no lane runs.</summary>
    /// <remarks>Idempotent; concurrent callers await the same disposal. A lane whose handler ignores cancellation delays the disposal until it returns (logged), never the caller.</remarks>
    public ValueTask DisposeAsync()
    {
        lock (_gate)
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

        Log.DisposalDeferred(_logger, ApiName, _lanes.Alive);
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
        _lanes.Dispose();
        _expiryStop.Dispose();
    }

    private object CreateHandler()
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

        return ActivatorUtilities.CreateInstance(_services, _handlerType, [.. args]);
    }

    /// <summary>Queues the rest of the recovered requests, from <paramref name="page"/>[<paramref name="from"/>] on, a page at a time, each once the queue has room; ends at a stop (what is left stays in the store).</summary>
    private async Task RecoverRestAsync(IReadOnlyList<LiveRequest> page, int from, string? next, int pageSize, CancellationToken stop)
    {
        int recovered = from;
        try
        {
            while (true)
            {
                for (; from < page.Count; from++)
                {
                    await _queued.TakeAsync(stop).ConfigureAwait(false);
                    if (!_queue.Writer.TryWrite(page[from]))
                    {
                        _queued.Untake();
                        return; // stopping
                    }

                    recovered++;
                }

                if (next is null)
                {
                    return;
                }

                (page, next) = await _table.RecoverPageAsync(next, pageSize, stop).ConfigureAwait(false);
                from = 0;
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
        }
#pragma warning disable CA1031 // Recovery ends; what it did not queue stays in the store for the next start.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            Log.StoreFailed(_logger, ApiName, ex);
        }
        finally
        {
            // What was read but not queued is not held by this process: the store keeps it for the next start.
            for (; from < page.Count; from++)
            {
                _table.Release(page[from]);
            }

            if (recovered > 0)
            {
                Log.RequestsRecovered(_logger, ApiName, recovered);
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
}
