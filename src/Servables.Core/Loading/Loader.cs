namespace Servables;

/// <summary>Knows how to load and unload one version of a servable, and what it costs.</summary>
/// <remarks>
/// <para>
/// Lifecycle: the constructor is cheap (sources create loaders for versions that may never load);
/// <see cref="LoadAsync"/> does the heavy work (read files, build sessions, run warm-up requests);
/// <see cref="Servable"/> is valid from a successful load until <see cref="UnloadAsync"/> starts;
/// <see cref="UnloadAsync"/> releases everything the load acquired.
/// </para>
/// <para>
/// The framework guarantees: it never calls <see cref="LoadAsync"/> and <see cref="UnloadAsync"/>
/// concurrently on one loader; it loads a loader successfully at most once (after a failed
/// <see cref="LoadAsync"/> it may call it again: that is a retry); it calls <see cref="UnloadAsync"/>
/// only after a successful load and only once the version's last handle has been released.
/// </para>
/// <para>
/// Implementers guarantee: a <see cref="LoadAsync"/> that throws leaves nothing behind (it
/// releases what it acquired before throwing); <see cref="EstimateResources"/> is an upper bound
/// on what the loaded servable uses and never grows over the loader's life (it may shrink after
/// the load, once the real cost is known); a version becomes available only after
/// <see cref="LoadAsync"/> returns, so warm-up belongs inside it.
/// </para>
/// <para>A loader is driven by one manager; its members need not be thread-safe beyond that.</para>
/// </remarks>
public abstract class Loader
{
    /// <summary>Loads the servable; it must be usable through <see cref="Servable"/> when this completes.</summary>
    /// <param name="cancellationToken">Cancelled when the version stops being aspired or the manager shuts down.</param>
    public abstract Task LoadAsync(CancellationToken cancellationToken = default);

    /// <summary>Releases everything the load acquired; called once, after the last handle was released.</summary>
    /// <param name="cancellationToken">Cancelled when the manager is disposed and stops waiting.</param>
    public abstract Task UnloadAsync(CancellationToken cancellationToken = default);

    /// <summary>An upper bound on the resources the loaded servable uses; never grows. Defaults to none.</summary>
    public virtual ResourceAllocation EstimateResources() => ResourceAllocation.None;

    /// <summary>The loaded servable; valid only between a successful load and the start of unload, null otherwise.</summary>
    public abstract object? Servable { get; }
}
