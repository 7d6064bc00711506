namespace Servables.Benchmarks.Core;

/// <summary>The servable the handle benchmarks lease: one field to read, so that every benchmark touches the servable.</summary>
public sealed class StubModel
{
    /// <summary>Read once per operation by every benchmark, baseline included.</summary>
    public int Width { get; } = 42;
}
