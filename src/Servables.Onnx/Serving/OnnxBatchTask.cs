using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Servables.Onnx;

/// <summary>One call of <see cref="OnnxServable.RunAsync"/> waiting in a batch: its inputs, the outputs it asks for, and the outputs it gets back.</summary>
/// <remarks>Made by the servable; the type is public only so that a <see cref="BatchScheduler{TTask}"/> of them can be shared between versions.</remarks>
public sealed class OnnxBatchTask : IBatchTask
{
    internal OnnxBatchTask(string[] inputNames, OrtValue[] inputs, string[] outputNames, int rows, string key)
    {
        InputNames = inputNames;
        Inputs = inputs;
        OutputNames = outputNames;
        Size = rows;
        Key = key;
    }

    /// <summary>The rows the call brings: the first dimension of its inputs.</summary>
    public int Size { get; }

    internal string[] InputNames { get; }

    internal OrtValue[] Inputs { get; }

    internal string[] OutputNames { get; }

    /// <summary>Names, element types and trailing dimensions of the inputs, and the outputs asked for: calls with equal keys run together.</summary>
    internal string Key { get; }

    /// <summary>The call's rows of every output, set by the batch run; the caller owns them.</summary>
    internal OnnxOutputs? Outputs { get; set; }

    /// <summary>Why the call's group failed (its outputs are then null).</summary>
    internal Exception? Failure { get; set; }

    /// <summary>The task for a call; throws <see cref="ArgumentException"/> for inputs that cannot be batched.</summary>
    internal static OnnxBatchTask Create(ServableId id, IReadOnlyDictionary<string, OrtValue> inputs, string[] outputNames)
    {
        if (inputs.Count == 0)
        {
            throw new ArgumentException($"A batched call of {id} needs at least one input.", nameof(inputs));
        }

        var names = new string[inputs.Count];
        int named = 0;
        foreach (KeyValuePair<string, OrtValue> input in inputs)
        {
            names[named++] = input.Key;
        }

        if (names.Length > 1)
        {
            Array.Sort(names, StringComparer.Ordinal);
        }

        var values = new OrtValue[names.Length];
        var key = new StringBuilder();
        long rows = -1;
        for (int i = 0; i < names.Length; i++)
        {
            OrtValue value = values[i] = inputs[names[i]] ?? throw new ArgumentException($"Input '{names[i]}' of a batched call of {id} is null.", nameof(inputs));
            OrtTensorTypeAndShapeInfo info = value.GetTensorTypeAndShape();
            long[] shape = info.Shape;
            if (info.IsString || shape.Length == 0 || shape[0] < 1 || (rows >= 0 && shape[0] != rows))
            {
                throw new ArgumentException(
                    $"Input '{names[i]}' of a batched call of {id} is {info.ElementDataType}[{string.Join(", ", shape)}]: batching takes numeric tensors whose first dimension is the rows of the call, the same for every input{(rows >= 0 ? $" ({rows} here)" : string.Empty)}. Call Run for anything else.",
                    nameof(inputs));
            }

            rows = shape[0];
            key.Append(names[i]).Append(':').Append((int)info.ElementDataType).Append('[');
            for (int d = 1; d < shape.Length; d++)
            {
                key.Append(d > 1 ? "," : string.Empty).Append(shape[d]);
            }

            key.Append("];");
        }

        key.Append("->").AppendJoin(';', outputNames);
        return new OnnxBatchTask(names, values, outputNames, checked((int)rows), key.ToString());
    }

    /// <summary>The element type and size in bytes of one row of a tensor whose first dimension is <paramref name="rows"/>.</summary>
    internal static (TensorElementType Type, long[] Trailing, long RowBytes) RowLayout(OrtValue value, long rows)
    {
        OrtTensorTypeAndShapeInfo info = value.GetTensorTypeAndShape();
        return (info.ElementDataType, info.Shape[1..], value.GetTensorSizeInBytes() / rows);
    }
}
