using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>The batched part of an API's lanes: one lane feeds a Core batch queue, whose batch function calls the <see cref="IBatchAsyncHandler"/>.</summary>
/// <remarks>
/// <para>
/// The feeding lane takes a place in the batch stage (<see cref="BatchQueueOptions.MaxEnqueuedBatches"/> ×
/// <see cref="BatchQueueOptions.MaxBatchSize"/> places, so that the batch queue never refuses a request), reads
/// the next request, gives its queue slot back and schedules it; requests beyond the stage wait in the API's
/// queue. Each scheduled request has its own continuation, which stores its outcome (with the store retries of
/// the unbatched path) once its batch has run, and gives its place back.
/// </para>
/// <para>
/// The batch function starts each request of the batch (in progress now; one cancelled while queued is skipped
/// and never reaches the handler), hands each its own cancellation source (deadline, caller's cancel, hard stop),
/// decodes its payload (a bad one fails alone), calls the handler once with the rest, and leaves each request's
/// outcome on its <see cref="AsyncBatchTask"/>. It never throws: a throwing handler fails its batch's requests.
/// </para>
/// <para>
/// When the API's queue is completed and empty, the feeding lane closes the batch queue (what waits for a batch
/// runs at once, without its timeout), waits for every request's continuation, and stops the scheduler: the lane
/// ends last, as the unbatched lanes do, so the stop and the disposal wait for it.
/// </para>
/// </remarks>
internal sealed partial class AsyncLanes
{
    private readonly TaskCompletionSource _stageEmpty = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IBatchAsyncHandler? _batchHandler;
    private BatchScheduler<AsyncBatchTask>? _scheduler;
    private BatchQueue<AsyncBatchTask>? _batchQueue;
    private SemaphoreSlim? _stage;

    // Requests in the batch stage, plus one for the feeding lane while it reads: the last to leave ends the stage.
    private int _inStage = 1;

    /// <summary>Set for an <see cref="IBatchAsyncHandler"/>: where the batch scheduler logs and measures. Null for a one-request handler.</summary>
    public BatchingSetup? Batching { get; init; }

    /// <summary>The scheduler's timer for the batch timeout (a timestamp of the API's clock), or <see cref="long.MaxValue"/> when none is set; tests wait for it before moving a fake clock.</summary>
    internal long BatchTimerDue => _scheduler?.TimerDue ?? long.MaxValue;

    /// <summary>Requests waiting in the batch queue for their batch.</summary>
    internal int BatchQueuedSize => _batchQueue?.QueuedSize ?? 0;

    private void StartBatched(IBatchAsyncHandler handler)
    {
        BatchQueueOptions batching = _options.Batching ?? new BatchQueueOptions();
        int workers = _options.WorkerCount * _options.MaxConcurrencyPerWorker;
        int stage = (int)Math.Min(int.MaxValue, (long)batching.MaxEnqueuedBatches * batching.MaxBatchSize);
        _batchHandler = handler;
        _stage = new SemaphoreSlim(stage, stage);
        _scheduler = new BatchScheduler<AsyncBatchTask>(new BatchSchedulerOptions { BatchWorkers = workers, TimeProvider = _time }, Batching!.LoggerFactory, Batching.MeterFactory);
        _batchQueue = _scheduler.AddQueue("async:" + ApiName, RunBatchAsync, batching);
        Tasks = [Task.Run(RunFeederAsync, CancellationToken.None)];
        Log.BatchingStarted(_logger, ApiName, batching.MaxBatchSize, batching.BatchTimeout, workers, stage);
    }

    /// <summary>The one lane of a batched API: moves requests from the API's queue into the batch queue while the stage has room.</summary>
    private async Task RunFeederAsync()
    {
        ChannelReader<LiveRequest> reader = _queue.Reader;
        while (true)
        {
            await _stage!.WaitAsync().ConfigureAwait(false);
            if (!reader.TryRead(out LiveRequest? request))
            {
                try
                {
                    request = await reader.ReadAsync().ConfigureAwait(false);
                }
                catch (ChannelClosedException)
                {
                    _stage.Release();
                    break; // stopping, and the queue is empty
                }
            }

            if (!request.Recovered)
            {
                _queued.Return();
            }

            Interlocked.Increment(ref _inStage);
            _ = RunBatchedAsync(request); // runs to its schedule before returning; never throws
        }

        // Nothing more is scheduled: what waits for a batch runs now, then every request stores its outcome.
        await _batchQueue!.DisposeAsync().ConfigureAwait(false);
        if (Interlocked.Decrement(ref _inStage) != 0)
        {
            await _stageEmpty.Task.ConfigureAwait(false);
        }

        await _scheduler!.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>One request of a batched API, from its schedule to its stored outcome.</summary>
    private async Task RunBatchedAsync(LiveRequest request)
    {
        try
        {
            using (_logger.BeginScope(new RequestLogScope(ApiName, request.Id)))
            {
                await ProcessBatchedAsync(request).ConfigureAwait(false);
            }
        }
#pragma warning disable CA1031 // The stage outlives any one request; the failure is logged.
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

            _stage!.Release();
            if (Interlocked.Decrement(ref _inStage) == 0)
            {
                _stageEmpty.TrySetResult();
            }
        }
    }

    private async Task ProcessBatchedAsync(LiveRequest request)
    {
        if (_hardStop.IsCancellationRequested)
        {
            await AbandonAsync(request, "it never ran").ConfigureAwait(false);
            return;
        }

        var task = new AsyncBatchTask(request);
        try
        {
            await _batchQueue!.ScheduleAsync(task).ConfigureAwait(false);
        }
        catch (Exception ex) when (task.Phase is AsyncBatchTask.BatchPhase.Queued)
        {
            // Never expected: the stage keeps the batch queue from filling, it closes only after the last schedule, and the batch function does not throw.
            string error = $"The request could not run in a batch ({TypeNames.Readable(ex.GetType())}: {ex.Message}).";
            if (await FailOrReportAsync(request, error, _time.GetUtcNow()).ConfigureAwait(false))
            {
                _metrics.Outcomes.Add(1, _apiTag, new("status", "failed"));
                Log.RequestFailed(_logger, error);
            }

            return;
        }
#pragma warning disable CA1031 // The request has its outcome: store it, whatever else failed.
        catch (Exception)
#pragma warning restore CA1031
        {
            // The batch function failed after the request's outcome was set (the scheduler logged it): go on with that outcome.
        }

        switch (task.Phase)
        {
            case AsyncBatchTask.BatchPhase.Abandoned:
                await AbandonAsync(request, task.AbandonedWhat!).ConfigureAwait(false);
                return;
            case not AsyncBatchTask.BatchPhase.Finished:
                return; // cancelled while queued: the cancel stored its failure
        }

        string? failure = task.Failure;
        string? resultJson = failure is null ? Serialize(task.Result, out failure) : null;
        await FinishAsync(request, resultJson, failure, task.StartedAt, task.StartedTimestamp).ConfigureAwait(false);
    }

    /// <summary>The batch queue's batch function: starts the batch's requests, calls the handler once, and leaves each request's outcome on its task.</summary>
    private async ValueTask RunBatchAsync(Batch<AsyncBatchTask> batch, CancellationToken schedulerStop)
    {
        IReadOnlyList<AsyncBatchTask> tasks = batch.Tasks;
        List<AsyncBatchTask> running = await StartBatchAsync(tasks).ConfigureAwait(false);
        if (running.Count == 0)
        {
            return; // every request left while queued: the handler is not called
        }

        var requests = new List<AsyncBatchRequest>(running.Count);
        var decoded = new List<AsyncBatchTask>(running.Count);
        try
        {
            foreach (AsyncBatchTask task in running)
            {
                // One source per request, with the deadline's timer when there is one; the caller's cancel
                // and a hard stop reach it through the live request.
                CancellationTokenSource cancellation = _options.RequestTimeout == Timeout.InfiniteTimeSpan
                    ? new CancellationTokenSource()
                    : new CancellationTokenSource(_options.RequestTimeout, _time);
                task.Cancellation = cancellation;
                task.Phase = AsyncBatchTask.BatchPhase.Running;
                task.Request.Started(cancellation, _hardStop.Token);
                _metrics.InFlight.Add(1, _apiTag);
                try
                {
                    AsyncPayload payload = AsyncPayloadDecoder.Decode(task.Request.ContentType, task.Request.Payload);
                    requests.Add(new AsyncBatchRequest(payload, task.Request.Id, cancellation.Token));
                    decoded.Add(task);
                }
                catch (AsyncPayloadException ex)
                {
                    task.Finish(null, ex.Message); // a bad payload fails alone, before the handler
                }
            }

            if (requests.Count > 0)
            {
                await HandleBatchAsync(requests, decoded, schedulerStop).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (AsyncBatchTask task in running)
            {
                if (task.Cancellation is not { } cancellation)
                {
                    continue; // never ran (only if the code above threw): its continuation fails it
                }

                if (task.Request.Stopped())
                {
                    cancellation.Dispose(); // else a canceller took it, and it belongs to nobody now
                }

                task.Cancellation = null;
                _metrics.InFlight.Add(-1, _apiTag);
                if (task.Phase == AsyncBatchTask.BatchPhase.Running)
                {
                    task.Finish(null, "The request's batch ended without an outcome for it."); // only if the code above threw
                }
            }
        }
    }

    /// <summary>Starts the batch's requests (storing their in-progress marks together); those cancelled while queued stay out.</summary>
    /// <returns>The requests that started, in order.</returns>
    private async Task<List<AsyncBatchTask>> StartBatchAsync(IReadOnlyList<AsyncBatchTask> tasks)
    {
        var starting = new Task<bool>[tasks.Count]; // started together, so that a store that commits in groups takes them in one
        for (int i = 0; i < tasks.Count; i++)
        {
            AsyncBatchTask task = tasks[i];
            if (_hardStop.IsCancellationRequested)
            {
                task.Abandon("it never ran");
                starting[i] = Task.FromResult(false);
                continue;
            }

            task.StartedAt = StartStamp(task.Request);
            starting[i] = TryStartAsync(task.Request, task.StartedAt).AsTask();
        }

        var running = new List<AsyncBatchTask>(tasks.Count);
        for (int i = 0; i < tasks.Count; i++)
        {
            AsyncBatchTask task = tasks[i];
            bool started;
            try
            {
                started = await starting[i].ConfigureAwait(false);
            }
#pragma warning disable CA1031 // As in a lane: logged, and the request released (its continuation sees it not done).
            catch (Exception ex)
#pragma warning restore CA1031
            {
                Log.StoreFailed(_logger, ApiName, ex);
                started = false;
            }

            if (!started)
            {
                if (task.Phase == AsyncBatchTask.BatchPhase.Queued)
                {
                    task.Phase = AsyncBatchTask.BatchPhase.NotStarted;
                }

                continue;
            }

            if (_logger.IsEnabled(LogLevel.Debug))
            {
                using (_logger.BeginScope(new RequestLogScope(ApiName, task.Request.Id)))
                {
                    task.StartedTimestamp = RecordStart(task.Request, task.StartedAt);
                }
            }
            else
            {
                task.StartedTimestamp = RecordStart(task.Request, task.StartedAt);
            }

            running.Add(task);
        }

        return running;
    }

    /// <summary>Calls the handler with the batch's decoded requests and gives each of them its outcome.</summary>
    private async Task HandleBatchAsync(List<AsyncBatchRequest> requests, List<AsyncBatchTask> tasks, CancellationToken schedulerStop)
    {
        // The batch's token: cancelled once every request's own token is (or the scheduler is stopped out of time).
        using var batchCancellation = CancellationTokenSource.CreateLinkedTokenSource(schedulerStop);
        var countdown = new StrongBox<int>(requests.Count);
        var registrations = new CancellationTokenRegistration[requests.Count];
        IReadOnlyList<AsyncBatchResult>? results = null;
        Exception? thrown = null;
        try
        {
            for (int i = 0; i < requests.Count; i++)
            {
                registrations[i] = requests[i].CancellationToken.UnsafeRegister(
                    static state =>
                    {
                        var (left, source) = ((StrongBox<int>, CancellationTokenSource))state!;
                        if (Interlocked.Decrement(ref left.Value) == 0)
                        {
                            source.Cancel();
                        }
                    },
                    (countdown, batchCancellation));
            }

            results = await _batchHandler!.HandleBatchAsync(requests, batchCancellation.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // A throwing handler fails its own batch only.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            thrown = ex;
        }
        finally
        {
            foreach (CancellationTokenRegistration registration in registrations)
            {
                registration.Dispose(); // waits for a callback that runs now: the batch's source outlives it
            }
        }

        string? miscounted = null;
        if (thrown is null && (results is null || results.Count != requests.Count))
        {
            string count = results is null ? "null" : results.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Log.BatchResultsMiscounted(_logger, ApiName, count, requests.Count);
            miscounted = $"The batch handler {TypeNames.Readable(_batchHandler!.GetType())} returned {(results is null ? "null" : $"{count} result(s)")} for a batch of {requests.Count} request(s); return one AsyncBatchResult per request, in order.";
        }
        else if (thrown is not null && !(thrown is OperationCanceledException && batchCancellation.IsCancellationRequested))
        {
            Log.BatchHandlerThrew(_logger, ApiName, requests.Count, thrown);
        }

        for (int i = 0; i < tasks.Count; i++)
        {
            AsyncBatchTask task = tasks[i];
            Exception error;
            bool ownError = false;
            if (miscounted is not null)
            {
                task.Finish(null, miscounted);
                continue;
            }

            if (thrown is not null)
            {
                error = thrown;
            }
            else if (results![i] is not { } result)
            {
                task.Finish(null, $"The batch handler gave the request no result (a null entry at {i} of {tasks.Count}); give each request AsyncBatchResult.Success or AsyncBatchResult.Failure.");
                continue;
            }
            else if (result.Error is null)
            {
                task.Finish(result.Value, null);
                continue;
            }
            else
            {
                (error, ownError) = (result.Error, true);
            }

            if (error is OperationCanceledException && task.Cancellation!.IsCancellationRequested)
            {
                string? failure = CancelledFailure(task.Request, out bool abandoned);
                if (abandoned)
                {
                    task.Abandon("it was cancelled while running");
                }
                else
                {
                    task.Finish(null, failure);
                }
            }
            else if (ownError)
            {
                using (_logger.BeginScope(new RequestLogScope(ApiName, task.Request.Id)))
                {
                    Log.BatchRequestFailed(_logger, ApiName, task.Request.Id, error);
                }

                task.Finish(null, $"The handler failed the request with {TypeNames.Readable(error.GetType())}: {error.Message}");
            }
            else
            {
                task.Finish(null, $"The handler threw {TypeNames.Readable(error.GetType())}: {error.Message}");
            }
        }
    }

    /// <summary>Where the batch scheduler of a batched API logs and measures (the host's factories, when it has them).</summary>
    internal sealed record BatchingSetup(ILoggerFactory? LoggerFactory, IMeterFactory? MeterFactory);
}
