using System.Collections;
using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>One batched call's outputs, in the order asked for; disposing the collection disposes every value.</summary>
/// <remarks>
/// The values are views of the call's rows in the batch run's own output tensors, which the calls of
/// one run share (<see cref="BatchRun"/>): the run's tensors are disposed when the last call disposes
/// its outputs. Dispose is idempotent and thread-safe.
/// </remarks>
internal sealed class OnnxOutputs(OrtValue[] values, OnnxOutputs.BatchRun run) : IDisposableReadOnlyCollection<OrtValue>
{
    private int _disposed;

    public int Count => values.Length;

    public OrtValue this[int index] => values[index];

    public IEnumerator<OrtValue> GetEnumerator() => ((IEnumerable<OrtValue>)values).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        foreach (OrtValue value in values)
        {
            value.Dispose(); // the views first: they point into the run's tensors
        }

        run.Release();
    }

    /// <summary>A batch run's output tensors, held until every call it answered has let go of its views.</summary>
    /// <param name="results">The session run's outputs.</param>
    /// <param name="holders">How many holders release it: the calls given views, plus one for the batch function while it makes them.</param>
    internal sealed class BatchRun(IDisposableReadOnlyCollection<OrtValue> results, int holders)
    {
        private int _holders = holders;

        public IDisposableReadOnlyCollection<OrtValue> Results => results;

        public void Release()
        {
            if (Interlocked.Decrement(ref _holders) == 0)
            {
                results.Dispose();
            }
        }
    }
}
