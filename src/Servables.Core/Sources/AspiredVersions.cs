namespace Servables;

/// <summary>Wires sources, adapters and targets together.</summary>
public static class AspiredVersions
{
    /// <summary>Connects <paramref name="source"/> to <paramref name="target"/>: every aspired set the source produces goes there.</summary>
    /// <exception cref="InvalidOperationException">The source is already connected.</exception>
    public static void ConnectSourceToTarget<T>(IAspiredVersionsSource<T> source, IAspiredVersionsTarget<T> target)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        source.SetAspiredVersionsTarget(target);
    }
}
