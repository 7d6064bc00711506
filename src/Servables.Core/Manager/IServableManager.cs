namespace Servables;

/// <summary>Hands out leases on loaded servable versions.</summary>
/// <remarks>
/// The calls here are the hot path of a serving app: implementations resolve a request against an
/// immutable snapshot, without locks. Every handle returned is owned by the caller, who disposes it.
/// Implementations are thread-safe.
/// </remarks>
public interface IServableManager
{
    /// <summary>Leases the version <paramref name="request"/> resolves to.</summary>
    /// <returns>A handle the caller disposes; the version stays loaded until then.</returns>
    /// <exception cref="ServableNotAvailableException">No available version matches; the message says what the manager knows of the servable.</exception>
    /// <exception cref="InvalidCastException">The servable is not a <typeparamref name="T"/>.</exception>
    ServableHandle<T> GetServableHandle<T>(ServableRequest request)
        where T : class;

    /// <summary>Leases the version <paramref name="request"/> resolves to, if one is available; never throws for an unavailable one.</summary>
    /// <param name="request">The servable and how to pick its version.</param>
    /// <param name="handle">The handle, which the caller disposes; default when the method returns false.</param>
    /// <returns>True when a version was leased.</returns>
    /// <exception cref="InvalidCastException">The servable is not a <typeparamref name="T"/> (a caller mistake, not a transient state).</exception>
    bool TryGetServableHandle<T>(ServableRequest request, out ServableHandle<T> handle)
        where T : class;

    /// <summary>Leases every available version whose servable is a <typeparamref name="T"/>.</summary>
    /// <returns>Handles by id; the caller disposes each of them.</returns>
    IReadOnlyDictionary<ServableId, ServableHandle<T>> GetAvailableServableHandles<T>()
        where T : class;

    /// <summary>The ids of every available version, in id order.</summary>
    IReadOnlyList<ServableId> ListAvailableServableIds();
}
