using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Async;

/// <summary>Serves an async API from several host processes through Redis.</summary>
/// <remarks>In the namespace of <see cref="AsyncApiOptions"/>, so that <c>o.UseRedis(…)</c> needs no other using.</remarks>
public static class RedisAsyncApiOptionsExtensions
{
    /// <summary>
    /// Keeps the API's queue and results in Redis (a <see cref="RedisAsyncResultStore"/>), shared by every host that registers
    /// the same API with the same Redis and <see cref="RedisAsyncResultStoreOptions.KeyPrefix"/>: a submit on any host is run by
    /// whichever host has a free lane, and any host answers its status, waits for it and cancels it.
    /// </summary>
    /// <remarks>
    /// Sets <see cref="AsyncApiOptions.StoreFactory"/>, replacing any store chosen before. The store is created when the API is,
    /// with the API's name, its <see cref="AsyncApiOptions.QueueCapacity"/> (now counted across all hosts), its retention and
    /// clock, and the host's logger factory; the API disposes it. Delivery is at least once: a request whose host dies is run
    /// again by another after <see cref="RedisAsyncResultStoreOptions.VisibilityTimeout"/>, so handlers should be safe to run twice.
    /// </remarks>
    /// <param name="options">The API's options.</param>
    /// <param name="configuration">How to reach Redis: a StackExchange.Redis configuration string, such as <c>localhost:6379</c>.</param>
    /// <param name="configure">Sets the store's other options, such as <see cref="RedisAsyncResultStoreOptions.KeyPrefix"/>; null for the defaults. Its <see cref="RedisAsyncResultStoreOptions.ApiName"/> and <see cref="RedisAsyncResultStoreOptions.QueueCapacity"/> are replaced by the API's.</param>
    /// <returns><paramref name="options"/>, for chaining.</returns>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is empty, or the options <paramref name="configure"/> set are invalid (the message names them).</exception>
    public static AsyncApiOptions UseRedis(this AsyncApiOptions options, string configuration, Action<RedisAsyncResultStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(configuration);
        var template = new RedisAsyncResultStoreOptions { Configuration = configuration };
        configure?.Invoke(template);
        IReadOnlyList<string> errors = template.Validate();
        if (errors.Count > 0)
        {
            throw new ArgumentException("Invalid Redis result store options: " + string.Join(" ", errors), nameof(configure));
        }

        options.StoreFactory = (services, storeOptions) => new RedisAsyncResultStore(
            template.CopyFor(storeOptions.ApiName, options.QueueCapacity),
            storeOptions,
            services.GetService<ILoggerFactory>()?.CreateLogger<RedisAsyncResultStore>());
        return options;
    }
}
