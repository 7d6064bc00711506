using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Servables.Onnx;

/// <summary>One input tensor of a warm-up request (<see cref="OnnxServableOptions.WarmupRequests"/>): its element type, shape and values.</summary>
/// <remarks>
/// Immutable once created; the array given to <see cref="Create{T}"/> is used as is (not copied), so
/// it must not change while loads run. Thread-safe: every warm-up run creates its own
/// <see cref="OrtValue"/> over the data.
/// </remarks>
public sealed class OnnxWarmupTensor
{
    private readonly Func<long[], OrtValue> _create;
    private readonly long[] _shape;

    private OnnxWarmupTensor(TensorElementType elementType, long[] shape, Func<long[], OrtValue> create)
    {
        ElementType = elementType;
        _shape = shape;
        _create = create;
    }

    /// <summary>The tensor's element type.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The tensor's shape.</summary>
    public IReadOnlyList<long> Shape => _shape;

    /// <summary>A tensor over <paramref name="data"/> (row-major) with <paramref name="shape"/>.</summary>
    /// <typeparam name="T">A numeric element type ONNX Runtime supports, such as <see cref="float"/> or <see cref="long"/>.</typeparam>
    /// <param name="data">The values; used as is, not copied.</param>
    /// <param name="shape">The dimensions; their product must equal the length of <paramref name="data"/>.</param>
    /// <exception cref="ArgumentException">The shape does not match the data, or <typeparamref name="T"/> is not an ONNX element type.</exception>
    public static OnnxWarmupTensor Create<T>(T[] data, params long[] shape)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        TensorElementType elementType = TensorBase.GetTypeInfo(typeof(T))?.ElementType
            ?? throw new ArgumentException($"{typeof(T).Name} is not an ONNX tensor element type.", nameof(data));
        long count = CountElements(shape);
        if (count != data.Length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} elements; the data has {data.Length}.", nameof(shape));
        }

        long[] copy = [.. shape];
        return new OnnxWarmupTensor(elementType, copy, s => OrtValue.CreateTensorValueFromMemory(data, s));
    }

    /// <summary>A tensor of zeros of <paramref name="elementType"/> with <paramref name="shape"/>.</summary>
    /// <param name="elementType">A numeric element type (not string).</param>
    /// <param name="shape">The dimensions, each at least zero.</param>
    /// <exception cref="ArgumentException">The element type is string or undefined, or a dimension is negative.</exception>
    public static OnnxWarmupTensor Zeros(TensorElementType elementType, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (elementType is TensorElementType.String or TensorElementType.DataTypeMax || !Enum.IsDefined(elementType))
        {
            throw new ArgumentException($"Zeros needs a numeric element type; {elementType} is not one.", nameof(elementType));
        }

        CountElements(shape);
        long[] copy = [.. shape];
        return new OnnxWarmupTensor(elementType, copy, s =>
        {
            OrtValue value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, elementType, s);
            value.GetTensorMutableRawData().Clear();
            return value;
        });
    }

    /// <summary>Creates the value to feed; the caller disposes it.</summary>
    internal OrtValue CreateValue() => _create(_shape);

    /// <summary>Describes the tensor, such as <c>float[1, 4]</c>.</summary>
    public override string ToString() => $"{OnnxTensorInfo.ElementTypeName(ElementType)}[{string.Join(", ", _shape)}]";

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
