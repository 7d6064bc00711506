using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Servables.Async.Tests.Queue;
using Servables.Testing;

namespace Servables.Async.Tests.Diagnostics;

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

        // A lane counts an outcome just after the store write that wakes the waiter: wait for both counts.
        await Eventually.WaitUntilAsync(
            () =>
            {
                lock (seen)
                {
                    return seen.Count(m => m.Name == "servables.async.requests") >= 2;
                }
            },
            what: "both outcomes counted");
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

    [Fact]
    public async Task Durations_QueueWaitAndHandlerTime_FromSubmitStartAndFinish()
    {
        // With a listener the queue wait and the handler's time are measured with the precise clock (TimeProvider.GetTimestamp).
        string api = $"d{Guid.NewGuid():N}";
        var durations = new List<(string Name, double Seconds)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "Servables.Async" && instrument.Name is "servables.async.queue.wait" or "servables.async.handle.duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "api" && Equals(tag.Value, api))
                {
                    lock (durations)
                    {
                        durations.Add((i.Name, v));
                    }
                }
            }
        });
        listener.Start();
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(api), time);
        IAsyncApiClient client = host.Client(api);
        string gated = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(gated)).State == AsyncRequestState.InProgress);

        string queued = await client.SubmitTextAsync("behind");
        time.Advance(TimeSpan.FromSeconds(30));
        host.Probe.Gate.SetResult();
        await client.WaitForCompletionAsync(queued, TimeSpan.FromSeconds(10));

        lock (durations)
        {
            Assert.Equal([0, 30], durations.Where(d => d.Name == "servables.async.queue.wait").Select(d => d.Seconds).Order());
            Assert.Equal([0, 30], durations.Where(d => d.Name == "servables.async.handle.duration").Select(d => d.Seconds).Order());
        }
    }
}
