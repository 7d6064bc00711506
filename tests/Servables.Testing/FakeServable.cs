namespace Servables.Testing;

/// <summary>A servable that knows its version and detects use after it was disposed.</summary>
public sealed class FakeServable : IDisposable
{
    private int _disposed;
    private long _uses;

    public FakeServable(ServableId id) => Id = id;

    public ServableId Id { get; }

    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public long Uses => Interlocked.Read(ref _uses);

    /// <summary>Does a unit of "inference"; throws if the servable was disposed (a use-after-dispose bug).</summary>
    public long Use()
    {
        if (IsDisposed)
        {
            throw new ObjectDisposedException(nameof(FakeServable), $"Servable {Id} was used after it was disposed.");
        }

        return Interlocked.Increment(ref _uses) + Id.Version;
    }

    public void Dispose() => Interlocked.Exchange(ref _disposed, 1);
}
