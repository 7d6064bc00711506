namespace Servables.Benchmarks.Core;

/// <summary>
/// What the baseline leases: a servable and a reference count, the least a hand-written
/// "dictionary of models with a count" needs.
/// </summary>
public sealed class LeaseEntry(StubModel model)
{
    /// <summary>Leases held now; incremented and decremented with <see cref="Interlocked"/>.</summary>
#pragma warning disable CA1051 // The baseline needs a field to pass by ref to Interlocked.
    public int Count;
#pragma warning restore CA1051

    /// <summary>The leased servable.</summary>
    public StubModel Model { get; } = model;
}
