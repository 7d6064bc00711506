namespace Servables.Async;

/// <summary>Where a <see cref="RedisAsyncResultStore"/> keeps an async API's queue and results, and how it shares them between hosts.</summary>
public sealed class RedisAsyncResultStoreOptions
{
    /// <summary>How to reach Redis: a StackExchange.Redis configuration string, such as <c>localhost:6379</c> or <c>redis1:6379,password=…,ssl=true</c>.</summary>
    /// <remarks>
    /// Unless the string says otherwise, the store connects in the background (a host starts while Redis is down),
    /// fails a command at once while it is disconnected instead of queueing it (so a submit is refused with
    /// <see cref="AsyncStoreUnavailableException"/> rather than held), and reconnects every 500 ms.
    /// </remarks>
    /// <value>Required; no default.</value>
    [OptionRequired]
    public string Configuration { get; set; } = "";

    /// <summary>The application's namespace: every key and channel of the store begins with <c>{KeyPrefix:ApiName}</c>, so that several apps and APIs can share one Redis.</summary>
    /// <remarks>The braces make it a Redis Cluster hash tag: all of one API's keys live on one shard, as its scripts need.</remarks>
    /// <value>1 to 100 characters, without <c>{</c>, <c>}</c> or white space. Defaults to <c>servables</c>.</value>
    public string KeyPrefix { get; set; } = "servables";

    /// <summary>The API whose requests this store keeps (the second part of the key namespace).</summary>
    /// <value>1 to 200 characters. Defaults to <c>default</c>; <c>UseRedis</c> sets the API's name.</value>
    public string ApiName { get; set; } = AsyncApiOptions.DefaultName;

    /// <summary>How many requests may wait in the shared queue, across every host (those a lane runs do not count); a submit beyond it fails with <see cref="AsyncQueueFullException"/>.</summary>
    /// <value>1 to 10,000,000. Defaults to 1024; <c>UseRedis</c> sets the API's <see cref="AsyncApiOptions.QueueCapacity"/>.</value>
    [OptionRange(1, 10_000_000)]
    public int QueueCapacity { get; set; } = 1024;

    /// <summary>How long a host may hold a request without a sign of life before another host takes it over (the host is taken to have died).</summary>
    /// <remarks>
    /// A host that runs a request renews its hold every third of this, so a long-running request is not taken
    /// over while its host lives; a host that dies (or loses Redis for longer than this) loses its requests to
    /// the other hosts, which run them again (delivery is at least once).
    /// </remarks>
    /// <value>100 milliseconds to 1 day. Defaults to 1 minute.</value>
    [TimeSpanRange("00:00:00.100", "1.00:00:00")]
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How many times a request may be handed to a host without an outcome being stored; at the next delivery it fails instead, with an error saying so (a poison request that kills its hosts never loops forever). A delivery a stopping host handed back counts too.</summary>
    /// <value>1 to 100. Defaults to 5.</value>
    [OptionRange(1, 100)]
    public int MaxDeliveries { get; set; } = 5;

    /// <summary>How often a host with idle lanes looks at the shared queue when no submit has told it of new work (the notifications are not durable).</summary>
    /// <value>10 milliseconds to 1 minute. Defaults to 1 second.</value>
    [TimeSpanRange("00:00:00.010", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Whether this host's lanes run requests from the shared queue; false for a host that only submits, reads statuses and waits (a front end), whose API then never constructs its handler, so that it needs none of the handler's services (its models).</summary>
    /// <value>Defaults to true.</value>
    public bool RunsRequests { get; set; } = true;

    /// <summary>This host's name in the stream's consumer group; null for one made from the machine name, the process id and a random part.</summary>
    /// <value>Null, or 1 to 200 characters. Defaults to null.</value>
    public string? ConsumerName { get; set; }

    /// <summary>A copy of these options for the API named <paramref name="apiName"/> with <paramref name="queueCapacity"/>.</summary>
    internal RedisAsyncResultStoreOptions CopyFor(string apiName, int queueCapacity) => new()
    {
        Configuration = Configuration,
        KeyPrefix = KeyPrefix,
        ApiName = apiName,
        QueueCapacity = queueCapacity,
        VisibilityTimeout = VisibilityTimeout,
        MaxDeliveries = MaxDeliveries,
        PollInterval = PollInterval,
        ConsumerName = ConsumerName,
        RunsRequests = RunsRequests,
    };

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    /// <remarks>
    /// The ranges are the attributes on the properties, checked by a validator that <c>[OptionsValidator]</c> generates;
    /// the names (their characters and lengths) are checked here.
    /// </remarks>
    public IReadOnlyList<string> Validate()
    {
        List<string> errors = RedisAsyncResultStoreOptionsValidator.Instance.Validate(null, this).Problems();
        if (string.IsNullOrEmpty(KeyPrefix) || KeyPrefix.Length > 100 || KeyPrefix.Any(c => c is '{' or '}' || char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            errors.Add($"{nameof(KeyPrefix)} must be 1 to 100 characters without braces or white space; it is '{KeyPrefix}'.");
        }

        if (string.IsNullOrEmpty(ApiName) || ApiName.Length > 200 || ApiName.Any(c => c is '{' or '}' || char.IsControl(c)))
        {
            errors.Add($"{nameof(ApiName)} must be 1 to 200 characters without braces; it is '{ApiName}'.");
        }

        if (ConsumerName is { } consumer && (consumer.Length is 0 or > 200 || consumer.Any(char.IsControl)))
        {
            errors.Add($"{nameof(ConsumerName)} must be null or 1 to 200 characters; it is '{consumer}'.");
        }

        return errors;
    }
}
