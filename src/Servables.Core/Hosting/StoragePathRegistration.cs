namespace Servables;

/// <summary>One servable registered with <c>AddStoragePathServable</c>: where its versions are and how to load one.</summary>
internal sealed record StoragePathRegistration(StoragePathServable Servable, Func<IServiceProvider, ServableId, string, Loader> CreateLoader);
