using Servables.Testing;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Xunit.Abstractions;

namespace Servables.Torch.Tests.Packaging;

[CollectionDefinition(nameof(ConsumerAppTests), DisableParallelization = true)]
public sealed class ConsumerAppTestsRunAlone;

/// <summary>
/// The packages as a user gets them: packs Servables.Core and Servables.Torch into a folder, builds a
/// throw-away app that references Servables.Torch and the CPU libtorch package from there (nothing from
/// this repository's build), and runs a TorchScript model through <c>AddTorchServable</c>.
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
    public async Task PackedPackagePlusCpuNatives_BuildsAndRunsTorch_AndTheOptOutGivesTheClearError()
    {
        string feed = _folder.Combine("feed");
        string version = _version = await ChildProcess.PackAsync(feed, StepTimeout, output.WriteLine, "src/Servables.Core/Servables.Core.csproj", "src/Servables.Torch/Servables.Torch.csproj");

        string app = WriteApp(feed, version);
        string models = _folder.Combine("models", "affine");
        TestModels.WriteVersion(models, 1, TestModels.AffineScript(1));

        (string build, _) = await RunAsync("dotnet", "build -c Debug -nologo -v n", app);
        Assert.Contains("Servables.Torch: ", build, StringComparison.Ordinal); // the package's targets ran (patched, or said why not)

        (string run, int code) = await RunAsync("dotnet", $"bin/Debug/net10.0/linux-x64/Consumer.dll {models}", app, allowFailure: true);
        Assert.True(code == 0, run);
        float[] expected = TestModels.ExpectedAffine(1, [1, 2, 3, 4]);
        string line = run.Split('\n').Single(l => l.StartsWith("OUTPUT ", StringComparison.Ordinal));
        TestModels.AssertClose(expected, line["OUTPUT ".Length..].Trim().Split(' ').Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray());

        if (NativeLibraryPatchTests.SystemLibStdCxx() is { } lib && !File.ReadAllText(lib, Encoding.Latin1).Contains("GLIBCXX_3.4.32\0", StringComparison.Ordinal))
        {
            // Where the fix is needed, turning it off meets the old wall, now with an error that says what to do.
            await RunAsync("dotnet", "build -c Release -nologo -p:ServablesTorchPatchLibStdCxx=false", app);
            (string failed, int failedCode) = await RunAsync("dotnet", $"bin/Release/net10.0/linux-x64/Consumer.dll {models}", app, allowFailure: true);
            Assert.NotEqual(0, failedCode);
            Assert.Contains("libtorch-cpu-linux-x64", failed, StringComparison.Ordinal);
            Assert.Contains("GLIBCXX_3.4.32", failed, StringComparison.Ordinal);
            Assert.Contains("ServablesTorchPatchLibStdCxx", failed, StringComparison.Ordinal);
        }
    }

    private string WriteApp(string feed, string version)
    {
        string app = ConsumerApp.Write(_folder.Combine("app"), feed, $"""
                <PackageReference Include="Servables.Torch" Version="{version}" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />
                <PackageReference Include="Microsoft.Extensions.Hosting" Version="11.0.0" />
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using System.Globalization;
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Hosting;
            using Servables;
            using Servables.Torch;
            using TorchSharp;

            var builder = Host.CreateApplicationBuilder();
            builder.Services.AddServables(o => o.MaxLoadRetries = 0).AddTorchServable("affine", args[0]);
            using IHost host = builder.Build();
            await host.StartAsync();
            var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
            ServableAvailability availability = await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("affine")], TimeSpan.FromSeconds(60));
            if (!availability.IsAvailable)
            {
                Console.WriteLine("ERROR " + (monitor.GetState(new ServableId("affine", 1))?.Error?.ToString() ?? availability.DescribeUnavailable()));
                await host.StopAsync();
                return 2;
            }

            var manager = host.Services.GetRequiredService<IServableManager>();
            using (ServableHandle<TorchServable> handle = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("affine")))
            using (torch.Tensor x = torch.tensor(new float[] { 1, 2, 3, 4 }, [1, 4]))
            using (torch.Tensor y = handle.Value.Forward(x))
            {
                Console.WriteLine("OUTPUT " + string.Join(" ", y.data<float>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture))));
            }

            await host.StopAsync();
            return 0;
            """);
        return app;
    }

    private Task<(string Output, int ExitCode)> RunAsync(string file, string arguments, string workingDirectory, bool allowFailure = false) =>
        ChildProcess.RunAsync(file, arguments, workingDirectory, StepTimeout, output.WriteLine, allowFailure);
}
