using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async;

/// <summary>Resolves API clients by name from the container.</summary>
internal sealed class AsyncApiClientFactory(IServiceProvider services, AsyncApiRegistry registry) : IAsyncApiClientFactory
{
    public IReadOnlyCollection<string> ApiNames => registry.Handlers.Keys;

    public IAsyncApiClient GetClient(string apiName)
    {
        ArgumentException.ThrowIfNullOrEmpty(apiName);
        if (!registry.Handlers.ContainsKey(apiName))
        {
            throw new InvalidOperationException($"No async API is named '{apiName}'. Registered: {string.Join(", ", registry.Handlers.Keys)}.");
        }

        return services.GetRequiredKeyedService<AsyncApi>(apiName);
    }
}
