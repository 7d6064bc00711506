using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Servables.Async;
using Servables.Onnx;

namespace Servables.QuickStart;

/// <summary>The async API's handler: reads 4 features from a JSON, text or binary payload and classifies them with the newest version of the ONNX model.</summary>
/// <remarks>JSON <c>{"features": [4 numbers]}</c>; text with the 4 numbers after a colon, in any charset; bytes: 4 little-endian floats.</remarks>
public sealed class ClassifierHandler(IServableManager models) : IAsyncHandler
{
    public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        float[] x = payload.Kind switch
        {
            AsyncPayloadKind.Json => [.. payload.Json.GetProperty("features").EnumerateArray().Select(v => v.GetSingle())],
            AsyncPayloadKind.Text => [.. payload.Text[(payload.Text.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(t => float.Parse(t, CultureInfo.InvariantCulture))],
            _ => MemoryMarshal.Cast<byte, float>(payload.Bytes.Span).ToArray(),
        };
        if (x.Length != 4)
        {
            throw new ArgumentException($"A flower has 4 features; this {payload.Kind} payload has {x.Length}.");
        }

        using ServableHandle<OnnxServable> model = models.GetServableHandle<OnnxServable>(ServableRequest.Latest("iris"));
        var scores = new float[3];
        using (OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 4]))
        using (OrtValue output = OrtValue.CreateTensorValueFromMemory(scores, [1, 3]))
        {
            model.Value.Run(["X"], [input], ["Y"], [output]);
        }

        return ValueTask.FromResult<object?>(new { label = IrisModels.Labels[IrisModels.ArgMax(scores)], scores, version = model.Id.Version, kind = payload.Kind.ToString() });
    }
}
