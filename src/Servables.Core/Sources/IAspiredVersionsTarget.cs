namespace Servables;

/// <summary>Receives, per servable, the full set of versions a source wants loaded.</summary>
/// <typeparam name="T">What each version carries: a storage path, a <see cref="Loader"/>, …</typeparam>
/// <remarks>
/// Each call replaces the previous set for that servable: versions left out are to be unloaded,
/// and an empty list asks for no versions at all. Implementations are thread-safe and return
/// quickly (they record the request and act on it later).
/// </remarks>
public interface IAspiredVersionsTarget<T>
{
    /// <summary>Sets the versions of <paramref name="servableName"/> that should be loaded.</summary>
    /// <param name="servableName">The servable; every item's id must carry this name.</param>
    /// <param name="versions">The full desired set; at most one item per version.</param>
    void SetAspiredVersions(string servableName, IReadOnlyList<ServableData<T>> versions);
}
