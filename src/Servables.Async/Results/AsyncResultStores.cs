namespace Servables.Async;

/// <summary>Creates the built-in result store an <see cref="AsyncApiOptions"/> selects.</summary>
internal static class AsyncResultStores
{
    public static IAsyncResultStore Create(AsyncApiOptions options, AsyncResultStoreOptions storeOptions, string apiName) => options.Store switch
    {
        AsyncStoreKind.Sqlite => throw new NotSupportedException($"The SQLite store of API '{apiName}' is not available in this build."),
        _ => new InMemoryAsyncResultStore(storeOptions),
    };
}
