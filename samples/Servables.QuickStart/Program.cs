// Servables quick start: an ONNX and a Torch model served from a versioned model repository, an async API whose
// handler calls GetServableHandle, in process and over HTTP, a hot swap under load, and a graceful shutdown.
// Runs on embedded defaults (CPU; the SQLite store in a temporary folder): `dotnet run --project samples/Servables.QuickStart`.
// Exits non-zero if any step does not do what it says.
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Servables;
using Servables.AspNetCore;
using Servables.Async;
using Servables.Onnx;
using Servables.QuickStart;
using Servables.Torch;
using TorchSharp;

var ui = new Ui(plain: Console.IsOutputRedirected || Environment.GetEnvironmentVariable("CI") == "true");
string root = Directory.CreateTempSubdirectory("servables-quickstart-").FullName;
string onnxPath = Path.Combine(root, "models", "iris");
string torchPath = Path.Combine(root, "models", "iris-torch");
var problems = new List<string>();
var total = Stopwatch.StartNew();
WebApplication? app = null;
try
{
    // 1. A model repository: version 1 of each model, written by this program.
    await ui.StepAsync("Writing the model repository: an ONNX model and a TorchSharp module, version 1", () =>
    {
        IrisModels.WriteOnnx(onnxPath, 1);
        IrisModels.WriteTorch(torchPath, 1);
        return Task.CompletedTask;
    });

    // 2. The host: servables, an async API on the SQLite store, health checks, HTTP endpoints on a loopback port.
    app = await ui.StepAsync("Starting the host: servables, async API, health checks, HTTP on 127.0.0.1", async () =>
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services
            .AddServables(o => o.ManageStateInterval = TimeSpan.FromMilliseconds(50))
            .AddOnnxServable("iris", onnxPath)
            .AddOnnxServable("iris-batched", onnxPath, o => o.Batching = new OnnxBatchingOptions())
            .AddTorchServable("iris-torch", torchPath, o =>
            {
                o.ModelKind = TorchModelKind.TorchSharpWeights;
                o.ModuleFactory = _ => IrisModels.NewTorchModule();
                o.Inputs.Add(new TensorMetadata("input", "FP32", [-1, 4]));
                o.Outputs.Add(new TensorMetadata("scores", "FP32", [-1, 3]));
            })
            .ConfigureStorage(storage => storage.PollPeriod = TimeSpan.FromMilliseconds(100));
        builder.Services.AddAsyncHandler<ClassifierHandler>("classify", o =>
        {
            o.UseSqliteStore(Path.Combine(root, "requests.db"));
            o.MaxConcurrencyPerWorker = 2;
        });
        builder.Services.AddHealthChecks().AddServables().AddAsyncApis();
        WebApplication web = builder.Build();
        web.MapAsyncApi("/classify", "classify");
        web.MapServableMetadata();
        web.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });
        await web.StartAsync();
        return web;
    });

    var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()) };
    IAsyncApiClient client = app.Services.GetRequiredKeyedService<IAsyncApiClient>("classify");
    IServableManager manager = app.Services.GetRequiredService<IServableManager>();
    Check((await http.GetAsync("/health/ready")).IsSuccessStatusCode, "GET /health/ready is not healthy");
    using (JsonDocument metadata = JsonDocument.Parse(await http.GetStringAsync("/v2/models/iris")))
    {
        Check(metadata.RootElement.GetProperty("platform").GetString() == "onnxruntime_onnx", "GET /v2/models/iris does not describe the ONNX model");
    }

    // 3. Requests as JSON, as text in a charset, as bytes; in process and over HTTP; polled to completion.
    var results = await ui.StepAsync("Classifying flowers: JSON, text (ISO-8859-1), bytes; in process and over HTTP", async () =>
    {
        var rows = new List<string[]>();
        for (int i = 0; i < 3; i++)
        {
            float[] x = IrisModels.Samples[i];
            (string Kind, ReadOnlyMemory<byte> Body, string ContentType) payload = i switch
            {
                0 => ("JSON", JsonSerializer.SerializeToUtf8Bytes(new { features = x }), "application/json"),
                1 => ("text", Encoding.Latin1.GetBytes("pétales et sépales: " + string.Join(' ', x.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)))), "text/plain; charset=ISO-8859-1"),
                _ => ("bytes", x.SelectMany(BitConverter.GetBytes).ToArray(), "application/octet-stream"),
            };
            string expected = IrisModels.Labels[IrisModels.ArgMax(IrisModels.Expected(1, x))];

            AsyncRequestStatus inProcess = await client.WaitForCompletionAsync(await client.SubmitAsync(payload.Body, payload.ContentType), TimeSpan.FromSeconds(30));
            rows.Add(["in process", payload.Kind, inProcess.Status, Label(inProcess.ResultJson), expected]);
            Check(inProcess.State == AsyncRequestState.Completed && Label(inProcess.ResultJson) == expected, $"in process, {payload.Kind}: {inProcess.Status} {inProcess.ResultJson ?? inProcess.Error}");

            var content = new ByteArrayContent(payload.Body.ToArray());
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(payload.ContentType);
            using HttpResponseMessage posted = await http.PostAsync("/classify", content);
            using JsonDocument submitted = JsonDocument.Parse(await posted.Content.ReadAsStringAsync());
            string id = submitted.RootElement.GetProperty("id").GetString()!;
            JsonElement status = default;
            for (var wait = Stopwatch.StartNew(); wait.Elapsed < TimeSpan.FromSeconds(30); await Task.Delay(10))
            {
                status = JsonDocument.Parse(await http.GetStringAsync($"/classify/{id}")).RootElement;
                if (status.GetProperty("status").GetString() is "completed" or "failed")
                {
                    break;
                }
            }

            string overHttp = status.TryGetProperty("result", out JsonElement result) ? result.GetProperty("label").GetString()! : "-";
            rows.Add(["HTTP", payload.Kind, status.GetProperty("status").GetString()!, overHttp, expected]);
            Check(overHttp == expected, $"over HTTP, {payload.Kind}: {status}");
        }

        return rows;
    });
    ui.Table("Async API \"classify\" (handler → GetServableHandle → ONNX)", ["via", "payload", "status", "label", "expected"], results);

    // 4. A hot swap under load: version 2 dropped into the repository while callers run, batched and unbatched.
    var swap = await ui.StepAsync("Hot swap: version 2 of the ONNX model dropped in while 4 callers run (2 batched)", () => SwapUnderLoadAsync(manager, onnxPath));
    ui.Table("Calls before, during and after the swap", ["phase", "calls", "failed", "p50 ms", "p99 ms", "versions"], swap.Rows);
    Check(swap.Failed == 0, $"{swap.Failed} call(s) failed during the swap");
    Check(swap.SawVersion2, "no call reached version 2");

    // 5. A servable called directly from code.
    string direct = await ui.StepAsync("Calling the Torch servable directly with GetServableHandle", () =>
    {
        float[] x = IrisModels.Samples[3];
        using ServableHandle<TorchServable> torchModel = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("iris-torch"));
        using torch.Tensor input = torch.tensor(x, [1, 4]);
        using torch.Tensor output = torchModel.Value.Forward(input);
        float[] scores = output.data<float>().ToArray();
        Check(IrisModels.Close(scores, IrisModels.Expected(1, x)), $"the Torch servable answered [{string.Join(", ", scores)}]");
        return Task.FromResult($"{torchModel.Id}: [{string.Join(", ", x)}] → {IrisModels.Labels[IrisModels.ArgMax(scores)]} (scores {string.Join(", ", scores.Select(s => s.ToString("F2", System.Globalization.CultureInfo.InvariantCulture)))})");
    });
    ui.Line("  " + direct);

    // 6. A graceful shutdown: the async API drains, the manager unloads every version.
    await ui.StepAsync("Shutting down gracefully", async () =>
    {
        http.Dispose();
        await app.StopAsync();
    });
}
catch (Exception ex)
{
    problems.Add($"{ex.GetType().Name}: {ex.Message}");
}
finally
{
    if (app is not null)
    {
        await app.DisposeAsync();
    }

    try
    {
        Directory.Delete(root, recursive: true);
    }
    catch (IOException)
    {
    }
}

if (problems.Count > 0)
{
    foreach (string problem in problems)
    {
        Console.Error.WriteLine("FAILED: " + problem);
    }

    Console.Error.WriteLine($"Quick start FAILED ({problems.Count} problem(s)) after {total.Elapsed.TotalSeconds:F1} s.");
    return 1;
}

ui.Line($"Quick start OK in {total.Elapsed.TotalSeconds:F1} s: hot swap from version 1 to 2 with zero failed requests.");
return 0;

void Check(bool ok, string problem)
{
    if (!ok)
    {
        problems.Add(problem);
    }
}

static string Label(string? resultJson) => resultJson is null ? "-" : JsonDocument.Parse(resultJson).RootElement.GetProperty("label").GetString()!;

static async Task<SwapReport> SwapUnderLoadAsync(IServableManager manager, string onnxPath)
{
    var calls = new System.Collections.Concurrent.ConcurrentQueue<(long At, double Ms, bool Ok, long Version)>();
    using var stop = new CancellationTokenSource();
    Task[] callers = [.. Enumerable.Range(0, 4).Select(c => Task.Run(async () =>
    {
        string name = c < 2 ? "iris" : "iris-batched";
        for (int n = 0; !stop.IsCancellationRequested; n++)
        {
            float[] x = IrisModels.Samples[n % IrisModels.Samples.Length];
            long started = Stopwatch.GetTimestamp();
            bool ok = false;
            long version = 0;
            try
            {
                using ServableHandle<OnnxServable> model = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest(name));
                version = model.Id.Version;
                using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 4]);
                using IDisposableReadOnlyCollection<OrtValue> outputs = await model.Value.RunAsync(new Dictionary<string, OrtValue> { ["X"] = input });
                ok = IrisModels.Close(outputs[0].GetTensorDataAsSpan<float>(), IrisModels.Expected(version, x));
            }
#pragma warning disable CA1031 // A failed call is counted, and fails the quick start.
            catch (Exception)
#pragma warning restore CA1031
            {
            }

            calls.Enqueue((started, Stopwatch.GetElapsedTime(started).TotalMilliseconds, ok, version));
        }
    }))];

    await Task.Delay(1000);
    long dropped = Stopwatch.GetTimestamp();
    IrisModels.WriteOnnx(onnxPath, 2);
    var swapping = Stopwatch.StartNew();
    while (swapping.Elapsed < TimeSpan.FromSeconds(30) && manager.ListAvailableServableIds().Any(id => id.Name is "iris" or "iris-batched" && id.Version == 1))
    {
        await Task.Delay(10); // until both ONNX servables serve version 2 only
    }

    long swapped = Stopwatch.GetTimestamp();
    await Task.Delay(1000);
    await stop.CancelAsync();
    await Task.WhenAll(callers);

    var all = calls.ToArray();
    string[] Row(string phase, Func<long, bool> inPhase)
    {
        var these = all.Where(c => inPhase(c.At)).ToArray();
        double[] ms = [.. these.Select(c => c.Ms).Order()];
        return [phase, these.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), these.Count(c => !c.Ok).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ms.Length == 0 ? "-" : ms[ms.Length / 2].ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
            ms.Length == 0 ? "-" : ms[(int)(ms.Length * 0.99)].ToString("F3", System.Globalization.CultureInfo.InvariantCulture),
            string.Join(", ", these.Select(c => c.Version).Distinct().Order())];
    }

    return new SwapReport(
        [Row("before", at => at < dropped), Row("during", at => at >= dropped && at < swapped), Row("after", at => at >= swapped)],
        all.Count(c => !c.Ok),
        all.Any(c => c.Version == 2 && c.Ok));
}

internal sealed record SwapReport(List<string[]> Rows, int Failed, bool SawVersion2);
