using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.Async.Tests.Queue;

public sealed class AsyncMetricsTests
{
    [Fact]
    public async Task Meters_RecordOutcomesDurationsAndHandlerCounters()
    {
        string api = $"m{Guid.NewGuid():N}";
        var seen = new List<(string Meter, string Name, double Value, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name.StartsWith("Servables.Async", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument i, double v, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var bag = new Dictionary<string, object?>();
            foreach (KeyValuePair<string, object?> t in tags)
            {
                bag[t.Key] = t.Value;
            }

            if (Equals(bag.GetValueOrDefault("api"), api))
            {
                lock (seen)
                {
                    seen.Add((i.Meter.Name, i.Name, v, bag));
                }
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();

        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(api, o => o.QueueCapacity = 1));
        IAsyncApiClient client = host.Client(api);
        await client.WaitForCompletionAsync(await client.SubmitTextAsync("ok"), TimeSpan.FromSeconds(10));
        await client.WaitForCompletionAsync(await client.SubmitTextAsync("throw"), TimeSpan.FromSeconds(10));
        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitAsync(Array.Empty<byte>(), "text/plain"));
        listener.RecordObservableInstruments();

        lock (seen)
        {
            Assert.Single(seen, m => m.Name == "servables.async.requests" && Equals(m.Tags["status"], "completed"));
            Assert.Single(seen, m => m.Name == "servables.async.requests" && Equals(m.Tags["status"], "failed"));
            Assert.Single(seen, m => m.Name == "servables.async.rejections" && Equals(m.Tags["reason"], "invalid"));
            Assert.Equal(2, seen.Count(m => m.Name == "servables.async.handle.duration"));
            Assert.Equal(2, seen.Count(m => m.Name == "servables.async.queue.wait"));
            Assert.Equal(0, seen.Where(m => m.Name == "servables.async.in_flight").Sum(m => m.Value));
            Assert.Contains(seen, m => m.Name == "servables.async.queue.depth" && m.Value == 0);
            Assert.Equal(2, seen.Count(m => m.Meter == "Servables.Async.Handlers" && m.Name == "echo.calls"));
        }
    }
}
