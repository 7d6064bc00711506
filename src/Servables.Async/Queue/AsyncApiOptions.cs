using System.Text.Json;
using Microsoft.Extensions.Configuration;

namespace Servables.Async;

/// <summary>Configures one async API: its queue, workers, limits, result store and handler config.</summary>
public sealed class AsyncApiOptions
{
    /// <summary>The name of the API registered without a name.</summary>
    public const string DefaultName = "default";

    /// <summary>The longest Content-Type a submit accepts, in characters; a longer one is refused with <see cref="AsyncRequestRejectedException"/>.</summary>
    /// <remarks>
    /// The Content-Type is stored with the request and written to logs, so it is bounded like the body.
    /// A Content-Type with a control character (CR, LF, NUL, …; a tab is allowed) is refused too, and
    /// what a rejection message or a log echoes of a refused value is cut short and has its control
    /// characters escaped.
    /// </remarks>
    public const int MaxContentTypeLength = 256;

    /// <summary>How many requests may wait in the queue; a submit beyond it fails with <see cref="AsyncQueueFullException"/>.</summary>
    /// <value>1 to 10,000,000. Defaults to 1024.</value>
    [OptionRange(1, 10_000_000)]
    public int QueueCapacity { get; set; } = 1024;

    /// <summary>How many workers take requests from the queue; each runs <see cref="MaxConcurrencyPerWorker"/> lanes, and a lane runs one request at a time.</summary>
    /// <remarks>For an <see cref="IBatchAsyncHandler"/>, <see cref="WorkerCount"/> × <see cref="MaxConcurrencyPerWorker"/> (at most 256) is how many batches run at once (see <see cref="Batching"/>).</remarks>
    /// <value>1 to 256. Defaults to 1.</value>
    [OptionRange(1, 256)]
    public int WorkerCount { get; set; } = 1;

    /// <summary>How many requests each worker runs at once: its lanes, each an idle async loop of a few hundred bytes until a request arrives.</summary>
    /// <remarks>For an <see cref="IBatchAsyncHandler"/>, how many batches each worker runs at once (see <see cref="WorkerCount"/>).</remarks>
    /// <value>1 to 1024. Defaults to 1.</value>
    [OptionRange(1, 1024)]
    public int MaxConcurrencyPerWorker { get; set; } = 1;

    /// <summary>How long a request may run in the handler before it is cancelled and fails.</summary>
    /// <value>1 millisecond to 1 day, or <see cref="Timeout.InfiniteTimeSpan"/>. Defaults to infinite.</value>
    [TimeSpanRange("00:00:00.001", "1.00:00:00", AllowInfinite = true)]
    public TimeSpan RequestTimeout { get; set; } = Timeout.InfiniteTimeSpan;

    /// <summary>How long stopping waits, after the host's shutdown timeout has cancelled the running handlers, for them to return.</summary>
    /// <remarks>
    /// Stopping drains the queue until the host's shutdown timeout (the token of
    /// <c>IHostedService.StopAsync</c>), then cancels the running handlers and waits this long more.
    /// Requests still held after that are abandoned and logged by request id: the in-memory store fails
    /// them, a durable store keeps them for the next start. A handler that ignores its token may still
    /// run then; the handler and the store are disposed only after it returns.
    /// </remarks>
    /// <value><see cref="TimeSpan.Zero"/> to 10 minutes. Defaults to 5 seconds.</value>
    public TimeSpan AbandonTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How many times a worker lane retries storing a request's outcome (its result or error) when the result store fails, before it gives up on storing it.</summary>
    /// <remarks>
    /// Retries wait <see cref="StoreRetryDelay"/>, doubling each time. A lane that still cannot store a
    /// request's outcome then tries to store a failure saying so, and if even that fails, fails the request
    /// in this process: <see cref="IAsyncApiClient.GetStatusAsync"/> and <see cref="IAsyncApiClient.WaitForCompletionAsync"/>
    /// report it failed with an error saying its outcome could not be stored (a durable store still holds
    /// it unfinished, so it runs again at the next start).
    /// </remarks>
    /// <value>0 to 10. Defaults to 3.</value>
    [OptionRange(0, 10)]
    public int StoreRetries { get; set; } = 3;

    /// <summary>How long a lane waits before its first retry of a failing store call; each further retry waits twice as long.</summary>
    /// <value>1 millisecond to 1 minute. Defaults to 200 milliseconds (so 200, 400 and 800 ms with 3 retries).</value>
    [TimeSpanRange("00:00:00.001", "00:01:00")]
    public TimeSpan StoreRetryDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>The largest body a submit accepts.</summary>
    /// <value>1 byte to 1 GiB. Defaults to 10 MiB.</value>
    [OptionRange(1, 1 << 30)]
    public int MaxPayloadBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>How long finished results stay queryable, counted from completion.</summary>
    /// <value>1 second to 365 days. Defaults to 7 days.</value>
    [TimeSpanRange("00:00:01", "365.00:00:00")]
    public TimeSpan ResultRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>The most requests the in-memory store keeps (expired results are evicted first).</summary>
    /// <value>1 to 100,000,000. Defaults to 100,000.</value>
    [OptionRange(1, 100_000_000)]
    public int MaxStoredRequests { get; set; } = 100_000;

    /// <summary>Creates the API's result store; null for the in-memory store (<see cref="InMemoryAsyncResultStore"/>).</summary>
    /// <remarks>
    /// The hook every other store plugs in through: the Servables.Sqlite package's <c>UseSqliteStore(path)</c>
    /// sets it, as a custom store may. It runs once per API, when the API is created; the API owns the store
    /// it returns and disposes it after its last lane ends. <see cref="AsyncResultStoreOptions.ApiName"/> names
    /// the API, so that a store shared by several APIs can keep their requests apart.
    /// </remarks>
    public Func<IServiceProvider, AsyncResultStoreOptions, IAsyncResultStore>? StoreFactory { get; set; }

    /// <summary>How often expired results are deleted from the store; the in-memory store also moves in, then, the outcomes of requests nobody has read since they finished.</summary>
    /// <value>1 second to 1 day. Defaults to 10 minutes.</value>
    [TimeSpanRange("00:00:01", "1.00:00:00")]
    public TimeSpan ExpiryScanInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The handler's <c>config</c>, handed to it as <see cref="AsyncHandlerConfig"/>.</summary>
    public IDictionary<string, string?> Config { get; } = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);

    /// <summary>How the queue forms batches for an <see cref="IBatchAsyncHandler"/>; null for the defaults of <see cref="BatchQueueOptions"/>.</summary>
    /// <remarks>
    /// <para>
    /// Only for an API whose handler implements <see cref="IBatchAsyncHandler"/>: set for a one-request
    /// <see cref="IAsyncHandler"/>, it fails validation. Null (the default) gives a batched handler
    /// <see cref="BatchQueueOptions"/>' defaults: batches of up to 32 requests, no batch timeout (a batch runs
    /// as soon as a worker is free, and fills while every worker is busy), and 10 batches' worth of requests
    /// taken from the queue at most.
    /// </para>
    /// <para>
    /// Requests wait in the API's queue (<see cref="QueueCapacity"/>); up to
    /// <see cref="BatchQueueOptions.MaxEnqueuedBatches"/> × <see cref="BatchQueueOptions.MaxBatchSize"/> of them
    /// are taken from it at a time, to wait for a batch or to run in one (those no longer count against
    /// <see cref="QueueCapacity"/>, as a request a lane runs does not). <see cref="WorkerCount"/> ×
    /// <see cref="MaxConcurrencyPerWorker"/> (at most 256 for a batched API) is how many batches run at once.
    /// <see cref="BatchQueueOptions.AllowedBatchSizes"/> only shows in the <c>servables.batch.padding</c> metric:
    /// the handler receives the requests themselves and pads where its model needs it. Copied when the API starts.
    /// </para>
    /// </remarks>
    /// <value>Defaults to null.</value>
#pragma warning disable SYSLIB1212 // Checked by Validate() with BatchQueueOptions.Validate(), which also checks AllowedBatchSizes (no attribute can).
    public BatchQueueOptions? Batching { get; set; }
#pragma warning restore SYSLIB1212

    /// <summary>How handler results are serialised; null for the defaults (web casing not applied).</summary>
    public JsonSerializerOptions? JsonSerializerOptions { get; set; }

    /// <summary>Copies every value under <paramref name="section"/> into <see cref="Config"/> (nested keys joined with ':').</summary>
    public AsyncApiOptions BindConfig(IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        string prefix = section is IConfigurationSection s ? s.Path + ":" : string.Empty;
        foreach (KeyValuePair<string, string?> pair in section.AsEnumerable())
        {
            if (pair.Value is not null && pair.Key.Length > prefix.Length)
            {
                Config[pair.Key[prefix.Length..]] = pair.Value;
            }
        }

        return this;
    }

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>
    /// The ranges are the attributes on the properties, checked by a validator that <c>[OptionsValidator]</c>
    /// generates. Checked here: <see cref="AbandonTimeout"/> (its message says "between 0 and 10 minutes", where
    /// the shared <see cref="TimeSpan"/> range attribute would say "zero").
    /// </remarks>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = AsyncApiOptionsValidator.Instance.Validate(null, this).Problems();
        if (AbandonTimeout < TimeSpan.Zero || AbandonTimeout > TimeSpan.FromMinutes(10))
        {
            errors.Add($"{nameof(AbandonTimeout)} must be between 0 and 10 minutes; it is {AbandonTimeout}.");
        }

        if (Batching is not null)
        {
            errors.AddRange(Batching.Validate().Select(e => $"{nameof(Batching)}: {e}"));
        }

        return errors;
    }

    /// <summary>Lists what is wrong with these options for an API whose handler is <paramref name="handlerType"/>: <see cref="Validate()"/>'s problems, and those that depend on the handler.</summary>
    internal List<string> ValidateFor(Type handlerType)
    {
        List<string> errors = [.. Validate()];
        if (AsyncHandlerKind.IsBatched(handlerType))
        {
            if ((long)WorkerCount * MaxConcurrencyPerWorker > MaxBatchWorkers)
            {
                errors.Add($"{nameof(WorkerCount)} × {nameof(MaxConcurrencyPerWorker)} is how many batches a batched handler runs at once, at most {MaxBatchWorkers}; it is {WorkerCount} × {MaxConcurrencyPerWorker}.");
            }
        }
        else if (Batching is not null)
        {
            errors.Add($"{nameof(Batching)} is set, but handler {TypeNames.Qualified(handlerType)} implements {nameof(IAsyncHandler)}, which takes one request per call. Implement {nameof(IBatchAsyncHandler)} to be called with batches, or leave {nameof(Batching)} null.");
        }

        return errors;
    }

    /// <summary>The most batches a batched API runs at once (the Core scheduler's most workers).</summary>
    internal const int MaxBatchWorkers = 256;
}
