namespace Servables.Async;

/// <summary>Creates the built-in result store an <see cref="AsyncApiOptions"/> selects.</summary>
internal static class AsyncResultStores
{
    public static IAsyncResultStore Create(AsyncApiOptions options, AsyncResultStoreOptions storeOptions, string apiName) => options.Store switch
    {
        AsyncStoreKind.Sqlite => new SqliteAsyncResultStore(new SqliteAsyncResultStoreOptions { DatabasePath = options.SqlitePath!, ApiName = apiName, MaxDatabaseBytes = options.SqliteMaxDatabaseBytes }, storeOptions),
        _ => new InMemoryAsyncResultStore(storeOptions),
    };
}
