using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Servables;
using Servables.Async;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers async APIs (Cortex's AsyncAPI, in process) in a service collection.</summary>
public static class AsyncHandlerServiceCollectionExtensions
{
    /// <summary>Registers the async API named <see cref="AsyncApiOptions.DefaultName"/> with handler <typeparamref name="THandler"/>.</summary>
    /// <inheritdoc cref="AddAsyncHandler{THandler}(IServiceCollection, string, Action{AsyncApiOptions}?)" />
    public static IServiceCollection AddAsyncHandler<THandler>(this IServiceCollection services, Action<AsyncApiOptions>? configure = null)
        where THandler : class =>
        services.AddAsyncHandler<THandler>(AsyncApiOptions.DefaultName, configure);

    /// <summary>
    /// Registers an async API: its queue, result store and workers (a hosted service), its handler
    /// (an <see cref="IAsyncHandler"/>, called once per request, or an <see cref="IBatchAsyncHandler"/>, called
    /// with batches as <see cref="AsyncApiOptions.Batching"/> says; constructed once at start) and its client — a keyed <see cref="IAsyncApiClient"/> under
    /// <paramref name="apiName"/>, the unkeyed <see cref="IAsyncApiClient"/> for the first API
    /// registered, and <see cref="IAsyncApiClientFactory"/>. Options are validated when the host starts.
    /// Calling it again with the same name and handler only adds configuration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="apiName">The API's name (1 to 128 of <c>A-Z a-z 0-9 - _ . ~</c>).</param>
    /// <param name="configure">Configures the API; null for the defaults.</param>
    /// <typeparam name="THandler">The handler class: it implements <see cref="IAsyncHandler"/> or <see cref="IBatchAsyncHandler"/>, not both.</typeparam>
    /// <returns>The service collection, for chaining.</returns>
    /// <exception cref="ArgumentException">The name is malformed.</exception>
    /// <exception cref="InvalidOperationException">
    /// <typeparamref name="THandler"/> implements both <see cref="IAsyncHandler"/> and <see cref="IBatchAsyncHandler"/>, or neither;
    /// or the name is already registered with another handler type.
    /// </exception>
    public static IServiceCollection AddAsyncHandler<THandler>(this IServiceCollection services, string apiName, Action<AsyncApiOptions>? configure = null)
        where THandler : class
    {
        ArgumentNullException.ThrowIfNull(services);
        if (!AsyncRequestIds.IsWellFormed(apiName))
        {
            throw new ArgumentException($"The API name '{apiName}' is malformed; use 1 to 128 of A-Z a-z 0-9 - _ . ~.", nameof(apiName));
        }

        AsyncHandlerKind.CheckOne(typeof(THandler), apiName);

        OptionsBuilder<AsyncApiOptions> options = services.AddOptions<AsyncApiOptions>(apiName);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        AsyncApiRegistry registry = GetOrAddRegistry(services);
        if (registry.Handlers.TryGetValue(apiName, out Type? existing))
        {
            return existing == typeof(THandler)
                ? services
                : throw new InvalidOperationException($"Async API '{apiName}' is already registered with handler {TypeNames.Qualified(existing)}; it cannot also use {TypeNames.Qualified(typeof(THandler))}. Give the second API another name.");
        }

        registry.Handlers.Add(apiName, typeof(THandler));
        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AsyncApiOptions>, NamedAsyncApiOptionsValidator>());
        services.TryAddSingleton<AsyncMetrics>();
        services.TryAddSingleton<IAsyncApiClientFactory, AsyncApiClientFactory>();
        services.AddKeyedSingleton(apiName, (sp, _) => new AsyncApi(
            apiName,
            sp.GetRequiredService<IOptionsMonitor<AsyncApiOptions>>().Get(apiName),
            sp,
            typeof(THandler),
            sp.GetRequiredService<AsyncMetrics>(),
            sp.GetService<ILoggerFactory>(),
            sp.GetService<TimeProvider>()));
        services.AddKeyedSingleton<IAsyncApiClient>(apiName, (sp, _) => sp.GetRequiredKeyedService<AsyncApi>(apiName));
        services.TryAddSingleton<IAsyncApiClient>(sp => sp.GetRequiredKeyedService<AsyncApi>(apiName));
        services.AddSingleton<IHostedService>(sp => new AsyncApiHostedService(sp.GetRequiredKeyedService<AsyncApi>(apiName)));
        return services;
    }

    private static AsyncApiRegistry GetOrAddRegistry(IServiceCollection services)
    {
        foreach (ServiceDescriptor descriptor in services)
        {
            if (descriptor.ServiceType == typeof(AsyncApiRegistry) && descriptor.ImplementationInstance is AsyncApiRegistry found)
            {
                return found;
            }
        }

        var registry = new AsyncApiRegistry();
        services.AddSingleton(registry);
        return registry;
    }
}
