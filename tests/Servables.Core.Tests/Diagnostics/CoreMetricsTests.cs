using System.Diagnostics.Metrics;
using Servables.Testing;

namespace Servables.Core.Tests.Diagnostics;

public sealed class CoreMetricsTests
{
    [Fact]
    public async Task Meter_RecordsLoadsUnloadsAndHandleAcquisitions()
    {
        string name = $"metrics-{Guid.NewGuid():N}";
        var measurements = new List<(string Instrument, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Servables.Core")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var bag = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                bag[tag.Key] = tag.Value;
            }

            if (Equals(bag.GetValueOrDefault("servable"), name))
            {
                lock (measurements)
                {
                    measurements.Add((instrument.Name, value, bag));
                }
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        await using var driver = new ManagerDriver(o => o.MaxLoadRetries = 0);
        driver.Aspire(name, [1]);
        await driver.SettleAsync();
        for (int i = 0; i < 3; i++)
        {
            using ServableHandle<FakeServable> handle = driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest(name));
        }

        driver.Aspire(name, [2], l => l.FailLoads(1));
        await driver.SettleAsync();
        driver.Aspire(name, []);
        await driver.SettleAsync();
        await Eventually.WaitUntilAsync(() => driver.StateOf(name, 1) == ServableManagerState.End);

        lock (measurements)
        {
            Assert.Equal(3, measurements.Count(m => m.Instrument == "servables.handle.acquisitions"));
            Assert.Single(measurements, m => m.Instrument == "servables.loads" && Equals(m.Tags["outcome"], "success"));
            Assert.Single(measurements, m => m.Instrument == "servables.loads" && Equals(m.Tags["outcome"], "error"));
            Assert.Single(measurements, m => m.Instrument == "servables.unloads" && Equals(m.Tags["outcome"], "success"));
            Assert.Equal(2, measurements.Count(m => m.Instrument == "servables.load.duration"));
            Assert.Single(measurements, m => m.Instrument == "servables.unload.duration");
        }
    }
}
