namespace Servables.Async;

/// <summary>Finds the client of an async API by name; handlers use it to chain to other APIs.</summary>
public interface IAsyncApiClientFactory
{
    /// <summary>The names of the registered APIs.</summary>
    IReadOnlyCollection<string> ApiNames { get; }

    /// <summary>The client of the API named <paramref name="apiName"/>.</summary>
    /// <exception cref="InvalidOperationException">No API has that name; the message lists the registered ones.</exception>
    IAsyncApiClient GetClient(string apiName);
}
