namespace Servables.Benchmarks.Core;

/// <summary>Starts an <see cref="AspiredVersionsManager"/> in manual mode with one servable, "model" version 1, loaded.</summary>
internal static class SingleModelManager
{
    public const string Name = "model";

    /// <summary>Aspires version 1 of <see cref="Name"/> serving <paramref name="model"/>, turns the state loop once, and checks it is available. The caller disposes the manager.</summary>
    public static AspiredVersionsManager Start(StubModel model)
    {
        var manager = new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan });
        try
        {
            var id = new ServableId(Name, 1);
            var loader = new SimpleLoader<StubModel>(() => model);
            manager.SetAspiredVersions(Name, new[] { ServableData.Create<Loader>(id, loader) });
            manager.ManageStateAsync().GetAwaiter().GetResult();
            if (!manager.ListAvailableServableIds().Contains(id))
            {
                throw new InvalidOperationException($"{id} is not available after one turn of the state loop; the benchmark would measure the failure path.");
            }

            return manager;
        }
        catch
        {
            manager.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }
}
