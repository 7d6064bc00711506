using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch;

/// <summary>One input tensor of a warm-up request (<see cref="TorchServableOptions.WarmupRequests"/>): its element type, shape and values.</summary>
/// <remarks>
/// Immutable once created; the array given to <see cref="FromFloats"/> is copied. Every warm-up run
/// creates its own tensor (on the CPU; the servable moves it to the module's device like any input).
/// Thread-safe.
/// </remarks>
public sealed class TorchWarmupTensor
{
    private readonly long[] _shape;
    private readonly float[]? _values;

    private TorchWarmupTensor(ScalarType elementType, long[] shape, float[]? values)
    {
        ElementType = elementType;
        _shape = shape;
        _values = values;
    }

    /// <summary>The tensor's element type.</summary>
    public ScalarType ElementType { get; }

    /// <summary>The tensor's shape.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>A tensor of zeros of <paramref name="elementType"/> with <paramref name="shape"/>.</summary>
    /// <param name="elementType">The element type, such as <see cref="ScalarType.Float32"/>.</param>
    /// <param name="shape">The dimensions, each at least zero.</param>
    /// <exception cref="ArgumentException">A dimension is negative or the element type is not defined.</exception>
    public static TorchWarmupTensor Zeros(ScalarType elementType, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (!Enum.IsDefined(elementType))
        {
            throw new ArgumentException($"{(int)elementType} is not a defined element type.", nameof(elementType));
        }

        CountElements(shape);
        return new TorchWarmupTensor(elementType, [.. shape], null);
    }

    /// <summary>A float32 tensor over a copy of <paramref name="data"/> (row-major) with <paramref name="shape"/>.</summary>
    /// <param name="data">The values; copied.</param>
    /// <param name="shape">The dimensions; their product must equal the length of <paramref name="data"/>.</param>
    /// <exception cref="ArgumentException">The shape does not match the data.</exception>
    public static TorchWarmupTensor FromFloats(float[] data, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        long count = CountElements(shape);
        if (count != data.Length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} elements; the data has {data.Length}.", nameof(shape));
        }

        return new TorchWarmupTensor(ScalarType.Float32, [.. shape], [.. data]);
    }

    /// <summary>Creates the tensor on the CPU; the caller disposes it.</summary>
    internal Tensor CreateTensor() => _values is null
        ? torch.zeros(_shape, ElementType)
        : torch.tensor(_values, _shape);

    /// <summary>Describes the tensor, such as <c>Float32[1, 4]</c>.</summary>
    public override string ToString() => $"{ElementType}[{string.Join(", ", _shape)}]";

    private static long CountElements(long[] shape)
    {
        long count = 1;
        foreach (long d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Shape [{string.Join(", ", shape)}] has a negative dimension; warm-up tensors need concrete sizes.", nameof(shape));
            }

            count = checked(count * d);
        }

        return count;
    }
}
