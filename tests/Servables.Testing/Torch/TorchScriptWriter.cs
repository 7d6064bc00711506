using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace Servables.Testing.Torch;

/// <summary>
/// Writes small, real TorchScript archives (what <c>torch.jit.save</c> writes) without Python, so
/// that tests and benchmarks can load them with <c>torch.jit.load</c>: a module class with float
/// tensor attributes (its parameters), optional submodules, and a <c>forward</c> written in TorchScript.
/// </summary>
/// <remarks>
/// The archive is a zip of stored (uncompressed) entries under <c>archive/</c>: <c>code/__torch__.py</c>
/// (the class source), <c>data.pkl</c> (the module object, pickle protocol 2, with each tensor a
/// <c>torch._utils._rebuild_tensor_v2</c> call over a persistent storage id), <c>data/&lt;key&gt;</c>
/// (the raw little-endian floats of each storage), <c>constants.pkl</c> (an empty tuple),
/// <c>version</c> and <c>byteorder</c>. libtorch 2.10 loads it. Not thread-safe.
/// </remarks>
public sealed class TorchScriptWriter
{
    private readonly string _className;
    private readonly List<(string Name, float[] Values, long[] Shape)> _parameters = [];
    private readonly List<(string Name, TorchScriptWriter Module)> _children = [];
    private string _forward = string.Empty;
    private string[] _forwardParameters = ["x"];

    /// <summary>Starts a module whose class is <c>__torch__.<paramref name="className"/></c>.</summary>
    public TorchScriptWriter(string className)
    {
        ArgumentException.ThrowIfNullOrEmpty(className);
        _className = className;
    }

    /// <summary>Adds a float parameter with <paramref name="shape"/>; <paramref name="values"/> is row-major.</summary>
    public TorchScriptWriter Parameter(string name, float[] values, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        long count = shape.Aggregate(1L, (a, d) => a * d);
        if (count != values.Length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] holds {count} values; {values.Length} were given.", nameof(values));
        }

        _parameters.Add((name, values, shape));
        return this;
    }

    /// <summary>Adds a submodule attribute <paramref name="name"/> (its class must differ from this one's); its forward is callable as <c>self.name.forward(x)</c>.</summary>
    public TorchScriptWriter Submodule(string name, TorchScriptWriter module)
    {
        ArgumentNullException.ThrowIfNull(module);
        _children.Add((name, module));
        return this;
    }

    /// <summary>Sets the body of <c>forward(self, x: Tensor) -&gt; Tensor</c>, one statement a line, indented by the writer.</summary>
    public TorchScriptWriter Forward(params string[] lines)
    {
        _forward = string.Concat(lines.Select(l => "    " + l + "\n"));
        return this;
    }

    /// <summary>Names the tensor parameters of <c>forward</c> (after <c>self</c>), <c>x</c> alone by default.</summary>
    public TorchScriptWriter ForwardParameters(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Length == 0 || names.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("forward needs at least one parameter, each named.", nameof(names));
        }

        _forwardParameters = names;
        return this;
    }

    /// <summary>An affine module: <c>forward(x) = x·W + b</c> with <c>W</c> of shape [in, out].</summary>
    public static byte[] Affine(float[,] w, float[] b)
    {
        ArgumentNullException.ThrowIfNull(w);
        return new TorchScriptWriter("Affine")
            .Parameter("weight", Flatten(w), w.GetLength(0), w.GetLength(1))
            .Parameter("bias", b, b.Length)
            .Forward("return torch.addmm(self.bias, x, self.weight)")
            .ToArray();
    }

    /// <summary>A 2-layer MLP: <c>forward(x) = relu(x·W1 + b1)·W2 + b2</c>.</summary>
    public static byte[] Mlp(float[,] w1, float[] b1, float[,] w2, float[] b2)
    {
        ArgumentNullException.ThrowIfNull(w1);
        ArgumentNullException.ThrowIfNull(w2);
        return new TorchScriptWriter("Mlp")
            .Parameter("w1", Flatten(w1), w1.GetLength(0), w1.GetLength(1))
            .Parameter("b1", b1, b1.Length)
            .Parameter("w2", Flatten(w2), w2.GetLength(0), w2.GetLength(1))
            .Parameter("b2", b2, b2.Length)
            .Forward("h = torch.relu(torch.addmm(self.b1, x, self.w1))", "return torch.addmm(self.b2, h, self.w2)")
            .ToArray();
    }

    /// <summary>The same MLP as <see cref="Mlp"/>, as a module with two affine submodules (<c>hidden</c>, <c>output</c>): parameters <c>hidden.weight</c>, <c>hidden.bias</c>, <c>output.weight</c>, <c>output.bias</c>.</summary>
    public static byte[] NestedMlp(float[,] w1, float[] b1, float[,] w2, float[] b2)
    {
        ArgumentNullException.ThrowIfNull(w1);
        ArgumentNullException.ThrowIfNull(w2);
        TorchScriptWriter Layer(string className, float[,] w, float[] b) => new TorchScriptWriter(className)
            .Parameter("weight", Flatten(w), w.GetLength(0), w.GetLength(1))
            .Parameter("bias", b, b.Length)
            .Forward("return torch.addmm(self.bias, x, self.weight)");
        return new TorchScriptWriter("NestedMlp")
            .Submodule("hidden", Layer("Hidden", w1, b1))
            .Submodule("output", Layer("Output", w2, b2))
            .Forward("h = torch.relu(self.hidden.forward(x))", "return self.output.forward(h)")
            .ToArray();
    }

    /// <summary>The archive's bytes.</summary>
    public byte[] ToArray()
    {
        var modules = new List<TorchScriptWriter>();
        Collect(modules);
        if (modules.Any(m => m._forward.Length == 0))
        {
            throw new InvalidOperationException("Call Forward on every module first: a module needs a forward method.");
        }

        var storages = new List<float[]>();
        byte[] data = DataPickle(storages);
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, "archive/data.pkl", data);
            // Classes a module uses come before it, as torch.jit.save orders them.
            Add(zip, "archive/code/__torch__.py", Encoding.UTF8.GetBytes(string.Concat(modules.AsEnumerable().Reverse().Select(m => m.Source()))));
            Add(zip, "archive/constants.pkl", [0x80, 0x02, (byte)')', (byte)'.']);
            for (int i = 0; i < storages.Count; i++)
            {
                float[] values = storages[i];
                var raw = new byte[values.Length * sizeof(float)];
                for (int j = 0; j < values.Length; j++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(j * sizeof(float)), values[j]);
                }

                Add(zip, "archive/data/" + i.ToString(CultureInfo.InvariantCulture), raw);
            }

            Add(zip, "archive/version", "3\n"u8.ToArray());
            Add(zip, "archive/byteorder", "little"u8.ToArray());
        }

        return stream.ToArray();
    }

    /// <summary>This module and every submodule, parents first.</summary>
    private void Collect(List<TorchScriptWriter> modules)
    {
        modules.Add(this);
        foreach ((_, TorchScriptWriter child) in _children)
        {
            child.Collect(modules);
        }
    }

    private static void Add(ZipArchive zip, string name, byte[] content)
    {
        ZipArchiveEntry entry = zip.CreateEntry(name, CompressionLevel.NoCompression);
        using Stream s = entry.Open();
        s.Write(content);
    }

    private string Source()
    {
        var text = new StringBuilder();
        text.Append("class ").Append(_className).Append("(Module):\n");
        text.Append("  __parameters__ = [").Append(string.Concat(_parameters.Select(p => $"\"{p.Name}\", "))).Append("]\n");
        text.Append("  __buffers__ = []\n");
        text.Append("  training : bool\n");
        foreach ((string name, _, _) in _parameters)
        {
            text.Append("  ").Append(name).Append(" : Tensor\n");
        }

        foreach ((string name, TorchScriptWriter child) in _children)
        {
            text.Append("  ").Append(name).Append(" : __torch__.").Append(child._className).Append('\n');
        }

        text.Append("  def forward(self: __torch__.").Append(_className).Append(",\n    ").AppendJoin(",\n    ", _forwardParameters.Select(p => p + ": Tensor")).Append(") -> Tensor:\n");
        text.Append(_forward);
        return text.ToString();
    }

    /// <summary>The module object: <c>__torch__.Class</c> built from a dict of its attributes, in declaration order; storages are numbered across the whole tree.</summary>
    private byte[] DataPickle(List<float[]> storages)
    {
        var p = new Pickle();
        p.Op(0x80).Op(0x02); // PROTO 2
        WriteObject(p, storages);
        p.Op('.'); // STOP
        return p.ToArray();
    }

    private void WriteObject(Pickle p, List<float[]> storages)
    {
        p.Global("__torch__", _className).Op(')').Op(0x81); // EMPTY_TUPLE, NEWOBJ
        p.Op('}').Op('('); // EMPTY_DICT, MARK
        p.String("training").Op(0x89); // NEWFALSE: eval mode
        foreach ((string name, float[] values, long[] shape) in _parameters)
        {
            string key = storages.Count.ToString(CultureInfo.InvariantCulture);
            storages.Add(values);
            p.String(name);
            p.Global("torch._utils", "_rebuild_tensor_v2").Op('('); // MARK of the argument tuple
            p.Op('(').String("storage").Global("torch", "FloatStorage").String(key).String("cpu").Int(values.Length).Op('t').Op('Q'); // persistent id
            p.Int(0); // storage offset
            p.Op('(');
            foreach (long d in shape)
            {
                p.Int(d);
            }

            p.Op('t').Op('(');
            long stride = 1;
            var strides = new long[shape.Length];
            for (int d = shape.Length - 1; d >= 0; d--)
            {
                strides[d] = stride;
                stride *= shape[d];
            }

            foreach (long st in strides)
            {
                p.Int(st);
            }

            p.Op('t');
            p.Op(0x89); // requires_grad False
            p.Global("collections", "OrderedDict").Op(')').Op('R'); // backward hooks
            p.Op('t').Op('R');
        }

        foreach ((string name, TorchScriptWriter child) in _children)
        {
            p.String(name);
            child.WriteObject(p, storages);
        }

        p.Op('u').Op('b'); // SETITEMS, BUILD
    }

    private static float[] Flatten(float[,] m)
    {
        var flat = new float[m.Length];
        int k = 0;
        foreach (float v in m)
        {
            flat[k++] = v;
        }

        return flat;
    }

    /// <summary>The handful of pickle protocol 2 opcodes a module needs.</summary>
    private sealed class Pickle
    {
        private readonly MemoryStream _bytes = new();

        public Pickle Op(int op)
        {
            _bytes.WriteByte((byte)op);
            return this;
        }

        public Pickle Global(string module, string name)
        {
            Op('c');
            _bytes.Write(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
            return this;
        }

        public Pickle String(string value)
        {
            byte[] utf8 = Encoding.UTF8.GetBytes(value);
            Op('X');
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(length, utf8.Length);
            _bytes.Write(length);
            _bytes.Write(utf8);
            return this;
        }

        public Pickle Int(long value)
        {
            if (value is >= 0 and <= 255)
            {
                return Op('K').Op((int)value);
            }

            Op('J'); // BININT: a signed 32-bit value
            Span<byte> v = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(v, checked((int)value));
            _bytes.Write(v);
            return this;
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}
