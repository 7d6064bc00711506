namespace Servables;

/// <summary>Produces aspired-version sets and sends them to one target.</summary>
/// <typeparam name="T">What each version carries.</typeparam>
/// <remarks>A source is connected once; implementations are thread-safe.</remarks>
public interface IAspiredVersionsSource<T>
{
    /// <summary>Connects the source to <paramref name="target"/>; it sends every later aspired set there.</summary>
    /// <exception cref="InvalidOperationException">The source is already connected.</exception>
    void SetAspiredVersionsTarget(IAspiredVersionsTarget<T> target);
}
