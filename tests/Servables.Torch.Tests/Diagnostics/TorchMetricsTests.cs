using Servables.Testing;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch.Tests.Diagnostics;

public sealed class TorchMetricsTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Forward_WhileListened_CountsCallsByOutcomeAndRecordsDurationsOnce()
    {
        string servableName = $"metered-{Guid.NewGuid():N}";
        var forwards = new ConcurrentDictionary<string, long>();
        int durations = 0;
        int loads = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Servables.Torch")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            if (instrument.Name == "servables.torch.forwards" && Tag(tags, "servable") == servableName)
            {
                forwards.AddOrUpdate(Tag(tags, "outcome")!, value, (_, v) => v + value);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) =>
        {
            if (Tag(tags, "servable") != servableName)
            {
                return;
            }

            if (instrument.Name == "servables.torch.forward.duration")
            {
                Interlocked.Increment(ref durations);
            }
            else if (instrument.Name == "servables.torch.load.duration")
            {
                Interlocked.Increment(ref loads);
            }
        });
        listener.Start();
        string folder = TestModels.WriteVersion(_folder.Path, 1, TestModels.MlpScript(1));
        var loader = new TorchLoader(new ServableId(servableName, 1), Path.Combine(folder, "model.pt"));
        await loader.LoadAsync();

        TestModels.RunFloat(loader.Value!, new float[16], TestModels.MlpInputs);
        TestModels.RunFloat(loader.Value!, new float[16], TestModels.MlpInputs);
        using (Tensor wrongShape = torch.zeros(1, 3))
        using (Tensor wrongType = torch.zeros([1, 8], ScalarType.Float64))
        {
            Assert.Throws<TorchInputException>(() => loader.Value!.Forward(wrongShape));
            Assert.Throws<TorchInputException>(() => loader.Value!.Forward(wrongType));
        }

        await loader.UnloadAsync();
        Assert.Equal(2, forwards.GetValueOrDefault("success"));
        Assert.Equal(2, forwards.GetValueOrDefault("bad_input"));
        Assert.Equal(0, forwards.GetValueOrDefault("error"));
        Assert.Equal(4, durations);
        Assert.Equal(1, loads);
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
