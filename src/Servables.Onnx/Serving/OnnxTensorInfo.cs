using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Servables.Onnx;

/// <summary>One input or output of a model: its name, element type and shape, with symbolic dimensions.</summary>
/// <remarks>Immutable. Thread-safe.</remarks>
public sealed class OnnxTensorInfo
{
    private readonly long[] _dimensions;
    private readonly string[] _symbolicDimensions;

    internal OnnxTensorInfo(string name, NodeMetadata metadata)
    {
        Name = name;
        ValueType = metadata.OnnxValueType;
        if (metadata.IsTensor)
        {
            ElementType = metadata.ElementDataType;
            _dimensions = Array.ConvertAll(metadata.Dimensions, d => (long)d);
            _symbolicDimensions = metadata.SymbolicDimensions.Length == _dimensions.Length
                ? [.. metadata.SymbolicDimensions]
                : new string[_dimensions.Length];
            for (int i = 0; i < _symbolicDimensions.Length; i++)
            {
                _symbolicDimensions[i] ??= string.Empty;
            }
        }
        else
        {
            ElementType = TensorElementType.DataTypeMax;
            _dimensions = [];
            _symbolicDimensions = [];
        }
    }

    /// <summary>The name to feed or fetch it by.</summary>
    public string Name { get; }

    /// <summary>What kind of value it is; <see cref="OnnxValueType.ONNX_TYPE_TENSOR"/> for tensors.</summary>
    public OnnxValueType ValueType { get; }

    /// <summary>True for a tensor (the only kind whose element type and shape are described here).</summary>
    public bool IsTensor => ValueType == OnnxValueType.ONNX_TYPE_TENSOR;

    /// <summary>The element type; <see cref="TensorElementType.DataTypeMax"/> when it is not a tensor.</summary>
    public TensorElementType ElementType { get; }

    /// <summary>The dimensions: a size, or -1 where the model leaves it open (see <see cref="SymbolicDimensions"/>).</summary>
    public IReadOnlyList<long> Dimensions => _dimensions;

    /// <summary>Per dimension, its symbolic name (such as <c>batch</c>), or empty where the size is fixed or unnamed.</summary>
    public IReadOnlyList<string> SymbolicDimensions => _symbolicDimensions;

    /// <summary>The number of dimensions.</summary>
    public int Rank => _dimensions.Length;

    /// <summary>Describes it the way error messages do, such as <c>X: float[batch, 4]</c>.</summary>
    public override string ToString()
    {
        if (!IsTensor)
        {
            return $"{Name}: {ValueType}";
        }

        var dims = new string[_dimensions.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = _dimensions[i] >= 0
                ? _dimensions[i].ToString(CultureInfo.InvariantCulture)
                : _symbolicDimensions[i].Length > 0 ? _symbolicDimensions[i] : "?";
        }

        return $"{Name}: {ElementTypeName(ElementType)}[{string.Join(", ", dims)}]";
    }

    /// <summary>True when a tensor of <paramref name="shape"/> fits this one's fixed dimensions and rank.</summary>
    internal bool Accepts(ReadOnlySpan<long> shape)
    {
        if (shape.Length != _dimensions.Length)
        {
            return false;
        }

        for (int i = 0; i < shape.Length; i++)
        {
            if (_dimensions[i] >= 0 && _dimensions[i] != shape[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>ONNX's name of an element type, such as <c>float</c> or <c>int64</c>.</summary>
    internal static string ElementTypeName(TensorElementType type) => type switch
    {
        TensorElementType.Float => "float",
        TensorElementType.Double => "double",
        TensorElementType.Float16 => "float16",
        TensorElementType.BFloat16 => "bfloat16",
        TensorElementType.Bool => "bool",
        TensorElementType.String => "string",
        _ => type.ToString().ToLowerInvariant(),
    };

    /// <summary>The tensors of <paramref name="infos"/> in KServe V2's terms (element types as its datatypes, symbolic dimensions as -1).</summary>
    internal static TensorMetadata[] ToMetadata(IEnumerable<OnnxTensorInfo> infos) =>
        [.. infos.Where(i => i.IsTensor).Select(i => new TensorMetadata(i.Name, KServeDatatype(i.ElementType), [.. i.Dimensions.Select(d => d < 0 ? -1L : d)]))];

    private static string KServeDatatype(TensorElementType type) => type switch
    {
        TensorElementType.Bool => "BOOL",
        TensorElementType.UInt8 => "UINT8",
        TensorElementType.UInt16 => "UINT16",
        TensorElementType.UInt32 => "UINT32",
        TensorElementType.UInt64 => "UINT64",
        TensorElementType.Int8 => "INT8",
        TensorElementType.Int16 => "INT16",
        TensorElementType.Int32 => "INT32",
        TensorElementType.Int64 => "INT64",
        TensorElementType.Float16 => "FP16",
        TensorElementType.BFloat16 => "BF16",
        TensorElementType.Float => "FP32",
        TensorElementType.Double => "FP64",
        TensorElementType.String => "BYTES",
        _ => type.ToString().ToUpperInvariant(),
    };
}
