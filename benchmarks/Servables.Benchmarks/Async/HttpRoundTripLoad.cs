using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Servables.AspNetCore;
using Servables.Async;

namespace Servables.Benchmarks.Async;

/// <summary>
/// <c>--http [--seconds N]</c>: round trips of one async API with a no-op handler, submitted and polled to completion over HTTP
/// (<see cref="AsyncApiEndpointRouteBuilderExtensions.MapAsyncApi"/> on Kestrel, loopback, HttpClient) against the same
/// through <see cref="IAsyncApiClient"/> (submit, wait for completion) in the same process, with 1 and with 16 callers.
/// </summary>
/// <remarks>
/// The rounds alternate in process, HTTP, in process, HTTP for each caller count, N seconds each (5 by default) after a
/// 2-second warm-up. An HTTP round trip is a POST and then GETs until the status is completed (with a no-op handler,
/// usually the first GET). The difference of the mean round-trip times with one caller is HTTP's own cost per request.
/// </remarks>
public static class HttpRoundTripLoad
{
    private static readonly byte[] Body = "{\"x\":1}"u8.ToArray();

    public static async Task<int> RunAsync(string[] args)
    {
        TimeSpan round = LoadOptions.Seconds(args, 5);
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddAsyncHandler<AsyncRoundTripBenchmarks.NoOpHandler>("work", o => (o.MaxConcurrencyPerWorker, o.QueueCapacity) = (16, 100_000));
        await using WebApplication app = builder.Build();
        app.MapAsyncApi("/work", "work");
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single());
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = address };
        IAsyncApiClient client = app.Services.GetRequiredKeyedService<IAsyncApiClient>("work");

        await RoundTrips.RunAsync(client, 4, TimeSpan.FromSeconds(1)); // warm-up
        await HttpRoundTripsAsync(http, 4, TimeSpan.FromSeconds(2));
        foreach (int callers in new[] { 1, 16 })
        {
            var inProcess = new List<double>();
            var overHttp = new List<double>();
            for (int r = 0; r < 2; r++)
            {
                (long trips, TimeSpan elapsed, double p50, double p99) = await RoundTrips.RunAsync(client, callers, round);
                inProcess.Add(trips / elapsed.TotalSeconds);
                Console.WriteLine($"{callers,2} caller(s), in process: {trips / elapsed.TotalSeconds,9:N0} round trips/s  p50 {p50 * 1000:F1} µs  p99 {p99 * 1000:F1} µs");
                (trips, elapsed, p50, p99, double gets) = await HttpRoundTripsAsync(http, callers, round);
                overHttp.Add(trips / elapsed.TotalSeconds);
                Console.WriteLine($"{callers,2} caller(s), over HTTP:   {trips / elapsed.TotalSeconds,9:N0} round trips/s  p50 {p50 * 1000:F1} µs  p99 {p99 * 1000:F1} µs  ({gets:F2} GETs per round trip)");
            }

            double a = inProcess.Average(), b = overHttp.Average();
            Console.WriteLine($"{callers,2} caller(s): in process {a:N0}/s, over HTTP {b:N0}/s ({a / b:F1}x); per round trip {callers * 1e6 / a:F1} µs against {callers * 1e6 / b:F1} µs: HTTP adds {(callers * 1e6 / b) - (callers * 1e6 / a):F1} µs");
        }

        await app.StopAsync();
        return 0;
    }

    /// <summary>One round trip over HTTP: POST <paramref name="body"/> as JSON to <paramref name="route"/>, then GET its status until it is completed.</summary>
    /// <returns>How many GETs it took.</returns>
    /// <exception cref="InvalidOperationException">The request failed or was not found.</exception>
    internal static async Task<int> RoundTripAsync(HttpClient http, string route, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using HttpResponseMessage posted = await http.PostAsync(route, content);
        posted.EnsureSuccessStatusCode();
        string id;
        using (JsonDocument submitted = JsonDocument.Parse(await posted.Content.ReadAsStreamAsync()))
        {
            id = submitted.RootElement.GetProperty("id").GetString()!;
        }

        for (int gets = 1; ; gets++)
        {
            using JsonDocument status = JsonDocument.Parse(await http.GetStreamAsync($"{route}/{id}"));
            string? state = status.RootElement.GetProperty("status").GetString();
            if (state == "completed")
            {
                return gets;
            }

            if (state is "failed" or "not_found")
            {
                throw new InvalidOperationException($"Round trip {id} ended {state}.");
            }
        }
    }

    private static async Task<(long Trips, TimeSpan Elapsed, double P50Ms, double P99Ms, double GetsPerTrip)> HttpRoundTripsAsync(HttpClient http, int callers, TimeSpan duration)
    {
        var latencies = new List<double>[callers];
        long gets = 0;
        long end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long started = Stopwatch.GetTimestamp();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var mine = latencies[c] = new List<double>(4096);
            while (Stopwatch.GetTimestamp() < end)
            {
                long t0 = Stopwatch.GetTimestamp();
                Interlocked.Add(ref gets, await RoundTripAsync(http, "/work", Body));
                mine.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        })));
        TimeSpan elapsed = Stopwatch.GetElapsedTime(started);
        double[] all = [.. latencies.SelectMany(l => l).Order()];
        return (all.Length, elapsed, all[all.Length / 2], all[(int)(all.Length * 0.99)], gets / (double)all.Length);
    }
}
