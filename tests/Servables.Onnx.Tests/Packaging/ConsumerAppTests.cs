using Servables.Testing;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Servables.Onnx.Tests.Packaging;

[CollectionDefinition(nameof(ConsumerAppTests), DisableParallelization = true)]
public sealed class ConsumerAppTestsRunAlone;

/// <summary>
/// The packages as a user gets them: packs Servables.Core and Servables.Onnx into a folder, builds a
/// throw-away app that references Servables.Onnx and the CPU ONNX Runtime package from there (nothing
/// from this repository's build), and runs a model through <c>AddOnnxServable</c>; without a native
/// package the load fails naming the packages to add.
/// </summary>
[Collection(nameof(ConsumerAppTests))]
public sealed class ConsumerAppTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);
    private readonly TempFolder _folder = new();

    private string? _version;

    public void Dispose()
    {
        _folder.Dispose();
        ChildProcess.RemoveFromGlobalPackages(_version);
    }

    [Fact]
    public async Task PackedPackagePlusCpuNatives_BuildsAndRuns_AndWithoutNativesTheLoadNamesThePackages()
    {
        string feed = _folder.Combine("feed");
        string version = _version = await ChildProcess.PackAsync(feed, StepTimeout, output.WriteLine, "src/Servables.Core/Servables.Core.csproj", "src/Servables.Onnx/Servables.Onnx.csproj");

        string nuspec = await ReadNuspecAsync(Path.Combine(feed, $"Servables.Onnx.{version}.nupkg"));
        Assert.Contains("id=\"Microsoft.ML.OnnxRuntime.Managed\"", nuspec, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"Microsoft.ML.OnnxRuntime\"", nuspec, StringComparison.Ordinal);
        Assert.DoesNotContain("id=\"Microsoft.ML.OnnxRuntime.Gpu\"", nuspec, StringComparison.Ordinal);

        string app = WriteApp(feed, version);
        string models = _folder.Combine("models", "linear");
        TestModels.WriteVersion(models, 1, TestModels.Linear(1));

        await RunAsync("dotnet", "build -c Debug -nologo", app);
        (string run, int code) = await RunAsync("dotnet", $"bin/Debug/net10.0/linux-x64/Consumer.dll {models}", app, allowFailure: true);
        Assert.True(code == 0, run);
        string line = run.Split('\n').Single(l => l.StartsWith("OUTPUT ", StringComparison.Ordinal));
        TestModels.AssertClose(TestModels.ExpectedLinear(1, [1, 2, 3, 4]), line["OUTPUT ".Length..].Trim().Split(' ').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray());

        await RunAsync("dotnet", "build -c Release -nologo -p:WithNatives=false", app);
        Assert.False(File.Exists(Path.Combine(app, "bin/Release/net10.0/linux-x64/libonnxruntime.so")));
        (string failed, int failedCode) = await RunAsync("dotnet", $"bin/Release/net10.0/linux-x64/Consumer.dll {models}", app, allowFailure: true);
        Assert.NotEqual(0, failedCode);
        Assert.Contains("add one native package to the app, Microsoft.ML.OnnxRuntime for the CPU or Microsoft.ML.OnnxRuntime.Gpu for CUDA", failed, StringComparison.Ordinal);
    }

    private static async Task<string> ReadNuspecAsync(string package)
    {
        using System.IO.Compression.ZipArchive zip = System.IO.Compression.ZipFile.OpenRead(package);
        System.IO.Compression.ZipArchiveEntry entry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var reader = new StreamReader(entry.Open());
        return await reader.ReadToEndAsync();
    }

    private string WriteApp(string feed, string version)
    {
        string app = ConsumerApp.Write(_folder.Combine("app"), feed, $"""
                <PackageReference Include="Servables.Onnx" Version="{version}" />
                <PackageReference Include="Microsoft.ML.OnnxRuntime" Version="1.31.1" Condition="'$(WithNatives)' != 'false'" />
                <PackageReference Include="Microsoft.Extensions.Hosting" Version="11.0.0" />
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using System.Globalization;
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Hosting;
            using Microsoft.ML.OnnxRuntime;
            using Servables;
            using Servables.Onnx;

            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddServables(o => o.MaxLoadRetries = 0).AddOnnxServable("linear", args[0]);
            using IHost host = builder.Build();
            await host.StartAsync();
            var manager = host.Services.GetRequiredService<IServableManager>();
            using (ServableHandle<OnnxServable> handle = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("linear")))
            using (OrtValue x = OrtValue.CreateTensorValueFromMemory(new float[] { 1, 2, 3, 4 }, new long[] { 1, 4 }))
            using (var outputs = handle.Value.Run(new Dictionary<string, OrtValue> { ["X"] = x }))
            {
                Console.WriteLine("OUTPUT " + string.Join(" ", outputs[0].GetTensorDataAsSpan<float>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
            }

            await host.StopAsync();
            return 0;
            """);
        return app;
    }

    private Task<(string Output, int ExitCode)> RunAsync(string file, string arguments, string workingDirectory, bool allowFailure = false) =>
        ChildProcess.RunAsync(file, arguments, workingDirectory, StepTimeout, output.WriteLine, allowFailure);
}
