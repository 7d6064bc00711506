using System.Collections;
using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>One batched call's outputs, in the order asked for; disposing the collection disposes every value.</summary>
internal sealed class OnnxOutputs(OrtValue[] values) : IDisposableReadOnlyCollection<OrtValue>
{
    public int Count => values.Length;

    public OrtValue this[int index] => values[index];

    public IEnumerator<OrtValue> GetEnumerator() => ((IEnumerable<OrtValue>)values).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public void Dispose()
    {
        foreach (OrtValue value in values)
        {
            value?.Dispose();
        }
    }
}
