using System.Text;
using static TorchSharp.torch;

namespace Servables.Torch;

/// <summary>One call of <see cref="TorchServable.ForwardAsync(Tensor, bool, CancellationToken)"/> waiting in a batch: its inputs, and the output it gets back.</summary>
/// <remarks>Made by the servable; the type is public only so that a <see cref="BatchScheduler{TTask}"/> of them can be shared between versions.</remarks>
public sealed class TorchBatchTask : IBatchTask
{
    private TorchBatchTask(Tensor[] inputs, bool outputOnCpu, int rows, string key)
    {
        Inputs = inputs;
        OutputOnCpu = outputOnCpu;
        Size = rows;
        Key = key;
    }

    /// <summary>The rows the call brings: the first dimension of its inputs.</summary>
    public int Size { get; }

    /// <summary>The caller's inputs, in <c>forward</c>'s order; the caller keeps them alive until the call completes.</summary>
    internal Tensor[] Inputs { get; }

    /// <summary>Whether the caller wants its output on the CPU.</summary>
    internal bool OutputOnCpu { get; }

    /// <summary>Count, element types, devices and trailing dimensions of the inputs: calls with equal keys run together.</summary>
    internal string Key { get; }

    /// <summary>The call's rows of the output, set by the batch run; the caller owns it.</summary>
    internal Tensor? Output { get; set; }

    /// <summary>Why the call's group failed (the output is then null).</summary>
    internal Exception? Failure { get; set; }

    /// <summary>The task for a call; throws <see cref="ArgumentException"/> for inputs that cannot be batched.</summary>
    internal static TorchBatchTask Create(ServableId id, Tensor[] inputs, bool outputOnCpu)
    {
        if (inputs.Length == 0)
        {
            throw new ArgumentException($"A batched call of {id} needs at least one input.", nameof(inputs));
        }

        var key = new StringBuilder();
        long rows = -1;
        for (int i = 0; i < inputs.Length; i++)
        {
            Tensor input = inputs[i];
            long[] shape = input.shape;
            if (shape.Length == 0 || shape[0] < 1 || (rows >= 0 && shape[0] != rows))
            {
                throw new ArgumentException(
                    $"Input {i} of a batched call of {id} is {input.dtype}[{string.Join(", ", shape)}]: batching takes tensors whose first dimension is the rows of the call, the same for every input{(rows >= 0 ? $" ({rows} here)" : string.Empty)}. Call Forward for anything else.",
                    nameof(inputs));
            }

            rows = shape[0];
            key.Append((int)input.dtype).Append('@').Append((int)input.device_type).Append(':').Append(input.device_index).Append('[').AppendJoin(',', shape.Skip(1)).Append("];");
        }

        return new TorchBatchTask(inputs, outputOnCpu, checked((int)rows), key.ToString());
    }
}
