using System.Buffers.Binary;
using System.Text;

namespace Servables.Testing.Onnx;

/// <summary>
/// Writes small, real ONNX models (a protobuf <c>ModelProto</c>) byte by byte, so that tests and
/// benchmarks need neither Python nor ONNX Runtime to make them. Supports float tensors, graph
/// inputs and outputs with fixed or symbolic dimensions, float initializers and nodes without attributes.
/// </summary>
/// <remarks>
/// Field numbers follow onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto).
/// The default IR version (8) and opset (17) are within what ONNX Runtime 1.31 accepts. Not thread-safe.
/// </remarks>
public sealed class OnnxModelWriter
{
    /// <summary>TensorProto.DataType FLOAT.</summary>
    public const int FloatType = 1;

    /// <summary>TensorProto.DataType INT64.</summary>
    public const int Int64Type = 7;

    private readonly List<byte[]> _nodes = [];
    private readonly List<byte[]> _initializers = [];
    private readonly List<byte[]> _inputs = [];
    private readonly List<byte[]> _outputs = [];

    /// <summary>The graph's name.</summary>
    public string GraphName { get; set; } = "graph";

    /// <summary>ModelProto.ir_version.</summary>
    public long IrVersion { get; set; } = 8;

    /// <summary>The version of the default ("ai.onnx") opset.</summary>
    public long Opset { get; set; } = 17;

    /// <summary>ModelProto.producer_name.</summary>
    public string ProducerName { get; set; } = "Servables.Testing";

    /// <summary>Declares a graph input; each dimension is a <see cref="long"/> (fixed) or a <see cref="string"/> (symbolic, such as "batch").</summary>
    public OnnxModelWriter Input(string name, int elementType, params object[] dims)
    {
        _inputs.Add(ValueInfo(name, elementType, dims));
        return this;
    }

    /// <summary>Declares a graph output; dimensions as for <see cref="Input"/>.</summary>
    public OnnxModelWriter Output(string name, int elementType, params object[] dims)
    {
        _outputs.Add(ValueInfo(name, elementType, dims));
        return this;
    }

    /// <summary>Adds a float constant (initializer) with the given dimensions; <paramref name="values"/> is row-major.</summary>
    public OnnxModelWriter Initializer(string name, float[] values, params long[] dims)
    {
        ArgumentNullException.ThrowIfNull(values);
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length)
        {
            throw new ArgumentException($"Initializer {name} has {values.Length} values for dimensions [{string.Join(", ", dims)}].", nameof(values));
        }

        var tensor = new ProtoBuffer();
        tensor.PackedInt64s(1, dims);
        tensor.Varint(2, FloatType);
        tensor.PackedFloats(4, values);
        tensor.String(8, name);
        _initializers.Add(tensor.ToArray());
        return this;
    }

    /// <summary>Adds a node (an operator without attributes) of the default domain.</summary>
    public OnnxModelWriter Node(string opType, string[] inputs, string[] outputs, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        var node = new ProtoBuffer();
        foreach (string input in inputs)
        {
            node.String(1, input);
        }

        foreach (string output in outputs)
        {
            node.String(2, output);
        }

        node.String(3, name ?? $"{opType}_{_nodes.Count}");
        node.String(4, opType);
        _nodes.Add(node.ToArray());
        return this;
    }

    /// <summary>The serialized model.</summary>
    public byte[] ToArray()
    {
        var graph = new ProtoBuffer();
        foreach (byte[] node in _nodes)
        {
            graph.Bytes(1, node);
        }

        graph.String(2, GraphName);
        foreach (byte[] initializer in _initializers)
        {
            graph.Bytes(5, initializer);
        }

        foreach (byte[] input in _inputs)
        {
            graph.Bytes(11, input);
        }

        foreach (byte[] output in _outputs)
        {
            graph.Bytes(12, output);
        }

        var opset = new ProtoBuffer();
        opset.String(1, string.Empty);
        opset.Varint(2, Opset);

        var model = new ProtoBuffer();
        model.Varint(1, IrVersion);
        model.String(2, ProducerName);
        model.Bytes(7, graph.ToArray());
        model.Bytes(8, opset.ToArray());
        return model.ToArray();
    }

    /// <summary>Writes the model to <paramref name="path"/>, creating its folder.</summary>
    public void WriteTo(string path)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }

        File.WriteAllBytes(path, ToArray());
    }

    /// <summary>
    /// <c>Y = X·W + B</c>: input <c>X</c> float[batch, in] (batch symbolic), output <c>Y</c> float[batch, out];
    /// <paramref name="weights"/> is [in, out], <paramref name="bias"/> has <c>out</c> values.
    /// </summary>
    public static OnnxModelWriter Linear(float[,] weights, float[] bias)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(bias);
        int inputs = weights.GetLength(0), outputs = weights.GetLength(1);
        return new OnnxModelWriter { GraphName = "linear" }
            .Input("X", FloatType, "batch", (long)inputs)
            .Output("Y", FloatType, "batch", (long)outputs)
            .Initializer("W", Flatten(weights), inputs, outputs)
            .Initializer("B", bias, outputs)
            .Node("MatMul", ["X", "W"], ["XW"])
            .Node("Add", ["XW", "B"], ["Y"]);
    }

    /// <summary>
    /// A two-layer perceptron, <c>Y = Relu(X·W1 + B1)·W2 + B2</c>: input <c>X</c> float[batch, in], output <c>Y</c> float[batch, out].
    /// </summary>
    public static OnnxModelWriter Mlp(float[,] w1, float[] b1, float[,] w2, float[] b2)
    {
        ArgumentNullException.ThrowIfNull(w1);
        ArgumentNullException.ThrowIfNull(w2);
        ArgumentNullException.ThrowIfNull(b1);
        ArgumentNullException.ThrowIfNull(b2);
        int inputs = w1.GetLength(0), hidden = w1.GetLength(1), outputs = w2.GetLength(1);
        if (w2.GetLength(0) != hidden)
        {
            throw new ArgumentException($"W2 has {w2.GetLength(0)} rows; the hidden layer has {hidden} units.", nameof(w2));
        }

        return new OnnxModelWriter { GraphName = "mlp" }
            .Input("X", FloatType, "batch", (long)inputs)
            .Output("Y", FloatType, "batch", (long)outputs)
            .Initializer("W1", Flatten(w1), inputs, hidden)
            .Initializer("B1", b1, hidden)
            .Initializer("W2", Flatten(w2), hidden, outputs)
            .Initializer("B2", b2, outputs)
            .Node("MatMul", ["X", "W1"], ["XW1"])
            .Node("Add", ["XW1", "B1"], ["H0"])
            .Node("Relu", ["H0"], ["H"])
            .Node("MatMul", ["H", "W2"], ["HW2"])
            .Node("Add", ["HW2", "B2"], ["Y"]);
    }

    /// <summary>Row-major values of <paramref name="matrix"/>.</summary>
    public static float[] Flatten(float[,] matrix)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        var values = new float[matrix.Length];
        int columns = matrix.GetLength(1);
        for (int r = 0; r < matrix.GetLength(0); r++)
        {
            for (int c = 0; c < columns; c++)
            {
                values[(r * columns) + c] = matrix[r, c];
            }
        }

        return values;
    }

    private static byte[] ValueInfo(string name, int elementType, object[] dims)
    {
        var shape = new ProtoBuffer();
        foreach (object dim in dims)
        {
            var d = new ProtoBuffer();
            switch (dim)
            {
                case string symbol:
                    d.String(2, symbol);
                    break;
                case long value:
                    d.Varint(1, value);
                    break;
                case int value:
                    d.Varint(1, value);
                    break;
                default:
                    throw new ArgumentException($"Dimension {dim} of {name} is neither a long nor a string.", nameof(dims));
            }

            shape.Bytes(1, d.ToArray());
        }

        var tensorType = new ProtoBuffer();
        tensorType.Varint(1, elementType);
        tensorType.Bytes(2, shape.ToArray());

        var type = new ProtoBuffer();
        type.Bytes(1, tensorType.ToArray());

        var info = new ProtoBuffer();
        info.String(1, name);
        info.Bytes(2, type.ToArray());
        return info.ToArray();
    }

    /// <summary>The few protobuf wire-format writes a model needs.</summary>
    private sealed class ProtoBuffer
    {
        private readonly MemoryStream _stream = new();

        public void Varint(int field, long value)
        {
            Tag(field, 0);
            WriteVarint((ulong)value);
        }

        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public void Bytes(int field, byte[] value)
        {
            Tag(field, 2);
            WriteVarint((ulong)value.Length);
            _stream.Write(value);
        }

        public void PackedInt64s(int field, long[] values)
        {
            var packed = new ProtoBuffer();
            foreach (long v in values)
            {
                packed.WriteVarint((ulong)v);
            }

            Bytes(field, packed.ToArray());
        }

        public void PackedFloats(int field, float[] values)
        {
            var packed = new byte[values.Length * sizeof(float)];
            for (int i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(packed.AsSpan(i * sizeof(float)), values[i]);
            }

            Bytes(field, packed);
        }

        public byte[] ToArray() => _stream.ToArray();

        private void Tag(int field, int wireType) => WriteVarint((ulong)((field << 3) | wireType));

        private void WriteVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _stream.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }

            _stream.WriteByte((byte)value);
        }
    }
}
