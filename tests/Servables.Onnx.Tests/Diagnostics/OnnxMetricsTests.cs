using Servables.Testing;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx.Tests.Diagnostics;

public sealed class OnnxMetricsTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Run_WhileListened_CountsRunsByOutcomeAndRecordsDurations()
    {
        string servableName = $"metered-{Guid.NewGuid():N}";
        var runs = new ConcurrentDictionary<string, long>();
        int durations = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Servables.Onnx")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "servables.onnx.runs" && Tag(tags, "servable") == servableName)
            {
                runs.AddOrUpdate(Tag(tags, "outcome")!, value, (_, v) => v + value);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) =>
        {
            if (instrument.Name == "servables.onnx.run.duration" && Tag(tags, "servable") == servableName)
            {
                Interlocked.Increment(ref durations);
            }
        });
        listener.Start();
        string path = _folder.Combine("model.onnx");
        File.WriteAllBytes(path, TestModels.Linear(1));
        var loader = new OnnxLoader(new ServableId(servableName, 1), path);
        await loader.LoadAsync();

        TestModels.RunFloat(loader.Value!, new float[8], 4);
        TestModels.RunFloat(loader.Value!, new float[8], 4);
        using (OrtValue wrong = OrtValue.CreateTensorValueFromMemory(new float[3], [1, 3]))
        {
            Assert.Throws<OnnxInputException>(() => loader.Value!.Run(new Dictionary<string, OrtValue> { ["X"] = wrong }));
        }

        await loader.UnloadAsync();
        Assert.Equal(2, runs.GetValueOrDefault("success"));
        Assert.Equal(1, runs.GetValueOrDefault("bad_input"));
        Assert.Equal(3, durations);
    }

    private static string? Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key)
    {
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == key)
            {
                return tag.Value as string;
            }
        }

        return null;
    }
}
