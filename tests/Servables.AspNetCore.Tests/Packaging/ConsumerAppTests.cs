using System.Text.Json;
using Servables.Testing;
using Servables.Testing.Onnx;
using Servables.Testing.Torch;
using Xunit.Abstractions;

namespace Servables.AspNetCore.Tests.Packaging;

/// <summary>
/// The packages as a user gets them, all together: with every package packed into a folder, builds a throw-away
/// console app outside the repository that references them from there (as <c>dotnet add package</c> does) with the CPU
/// native runtimes, and runs <c>AddAsyncHandler&lt;T&gt;()</c> whose handler calls <c>GetServableHandle</c> on an ONNX and a
/// Torch model.
/// </summary>
[Collection(nameof(PackedPackages))]
public sealed class ConsumerAppTests(PackedPackages packages, ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan StepTimeout = PackedPackages.StepTimeout;
    private static readonly float[,] Weights = { { 1, 0 }, { 0, 1 }, { 1, 1 }, { 0.5f, -1 } };
    private static readonly float[] Bias = [0.25f, -0.5f];
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task PackedPackages_AnAsyncHandlerCallsAnOnnxAndATorchModel()
    {
        string onnx = _folder.Combine("models", "linear");
        ModelRepository.WriteVersion(onnx, 1, OnnxModelWriter.Linear(Weights, Bias).ToArray(), "model.onnx");
        string torch = _folder.Combine("models", "affine");
        ModelRepository.WriteVersion(torch, 1, TorchScriptWriter.Affine(Weights, Bias), "model.pt");
        string app = WriteApp(packages.Feed, packages.Version);

        await ChildProcess.RunAsync("dotnet", "build -c Release -nologo", app, StepTimeout, output.WriteLine);
        (string ran, int code) = await ChildProcess.RunAsync("dotnet", $"bin/Release/net10.0/linux-x64/Consumer.dll {onnx} {torch}", app, StepTimeout, output.WriteLine, allowFailure: true);

        Assert.True(code == 0, ran);
        string line = ran.Split('\n').Single(l => l.StartsWith("RESULT ", StringComparison.Ordinal));
        using JsonDocument result = JsonDocument.Parse(line["RESULT ".Length..]);
        float[] expected = [1 * 1 + 3 * 1 + 4 * 0.5f + 0.25f, 2 * 1 + 3 * 1 + 4 * -1 - 0.5f]; // x·W + b for x = 1 2 3 4
        foreach (string model in new[] { "onnx", "torch" })
        {
            float[] got = [.. result.RootElement.GetProperty(model).EnumerateArray().Select(v => v.GetSingle())];
            Assert.Equal(expected.Length, got.Length);
            Assert.All(expected.Zip(got), p => Assert.True(Math.Abs(p.First - p.Second) < 1e-4, $"{model}: {string.Join(", ", got)}"));
        }
    }

    private string WriteApp(string feed, string version)
    {
        string app = ConsumerApp.Write(_folder.Combine("app"), feed, $"""
                <PackageReference Include="Servables.Async" Version="{version}" />
                <PackageReference Include="Servables.Onnx" Version="{version}" />
                <PackageReference Include="Servables.Torch" Version="{version}" />
                <PackageReference Include="Microsoft.ML.OnnxRuntime" Version="1.31.1" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />
                <PackageReference Include="Microsoft.Extensions.Hosting" Version="11.0.0" />
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Hosting;
            using Microsoft.ML.OnnxRuntime;
            using Servables;
            using Servables.Async;
            using Servables.Onnx;
            using Servables.Torch;
            using TorchSharp;

            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddServables().AddOnnxServable("linear", args[0]).AddTorchServable("affine", args[1]);
            builder.Services.AddAsyncHandler<BothModels>();
            using IHost host = builder.Build();
            await host.StartAsync(); // waits until both models are loaded
            IAsyncApiClient api = host.Services.GetRequiredService<IAsyncApiClient>();
            AsyncRequestStatus done = await api.WaitForCompletionAsync(await api.SubmitJsonAsync(new { x = new float[] { 1, 2, 3, 4 } }), TimeSpan.FromSeconds(60));
            Console.WriteLine(done.State == AsyncRequestState.Completed ? "RESULT " + done.ResultJson : "FAILED " + done.Error);
            await host.StopAsync();
            return done.State == AsyncRequestState.Completed ? 0 : 1;

            public sealed class BothModels(IServableManager models) : IAsyncHandler
            {
                public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
                {
                    float[] x = payload.Kind == AsyncPayloadKind.Json ? [.. payload.Json.GetProperty("x").EnumerateArray().Select(v => v.GetSingle())] : throw new ArgumentException("JSON please");
                    float[] fromOnnx = new float[2];
                    using (ServableHandle<OnnxServable> onnx = models.GetServableHandle<OnnxServable>(ServableRequest.Latest("linear")))
                    using (OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 4]))
                    using (OrtValue output = OrtValue.CreateTensorValueFromMemory(fromOnnx, [1, 2]))
                    {
                        onnx.Value.Run(["X"], [input], ["Y"], [output]);
                    }

                    float[] fromTorch;
                    using (ServableHandle<TorchServable> model = models.GetServableHandle<TorchServable>(ServableRequest.Latest("affine")))
                    using (torch.Tensor input = torch.tensor(x, [1, 4]))
                    using (torch.Tensor output = model.Value.Forward(input))
                    {
                        fromTorch = output.data<float>().ToArray();
                    }

                    return ValueTask.FromResult<object?>(new { onnx = fromOnnx, torch = fromTorch });
                }
            }
            """);
        return app;
    }
}
