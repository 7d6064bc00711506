using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Servables.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch.Tests.Hosting;

public sealed class AddTorchServableTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempFolder _folder = new();
    private readonly CapturingLoggerProvider _logs = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task HotSwap_NewVersionMovedInWhileCallersRun_LatestMovesWithNoFailedCall_OldModuleDisposedAfterItsLastHandle()
    {
        string basePath = _folder.Combine("mlp");
        TestModels.WriteVersion(basePath, 1, TestModels.MlpScript(1));
        using IHost host = BuildHost(basePath);
        await host.StartAsync();
        var manager = host.Services.GetRequiredService<IServableManager>();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("mlp")], Patience)).IsAvailable);

        // A caller that holds v1 across the swap.
        ServableHandle<TorchServable> held = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("mlp"));
        Assert.Equal(1, held.Id.Version);
        TorchServable v1 = held.Value;

        using var stop = new CancellationTokenSource();
        long failures = 0;
        var callsPerVersion = new long[3];
        string? firstFailure = null;
        Task[] callers = [.. Enumerable.Range(0, 2).Select(r => Task.Run(() =>
        {
            float[] x = TestModels.Inputs(2, TestModels.MlpInputs, seed: r);
            float[][] expected = [[], TestModels.ExpectedMlp(1, x), TestModels.ExpectedMlp(2, x)];
            using Tensor input = torch.tensor(x, [2, TestModels.MlpInputs]);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (!manager.TryGetServableHandle(ServableRequest.Latest("mlp"), out ServableHandle<TorchServable> handle))
                    {
                        throw new InvalidOperationException("Latest did not resolve.");
                    }

                    using (handle)
                    using (Tensor output = handle.Value.Forward(input))
                    {
                        TestModels.AssertClose(expected[handle.Id.Version], output.data<float>().ToArray());
                        Interlocked.Increment(ref callsPerVersion[handle.Id.Version]);
                    }
                }
#pragma warning disable CA1031 // Every failure is counted and the first reported.
                catch (Exception ex)
#pragma warning restore CA1031
                {
                    Interlocked.CompareExchange(ref firstFailure, ex.ToString(), null);
                    Interlocked.Increment(ref failures);
                }
            }
        }))];

        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[1]) > 50);
        TestModels.MoveVersionIn(basePath, 2, TestModels.MlpScript(2));
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("mlp", 2)], Patience)).IsAvailable);
        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[2]) > 50);
        await Eventually.WaitUntilAsync(() => manager.TryGetServableHandle(ServableRequest.Latest("mlp"), out ServableHandle<TorchServable> h) && DisposeAndGetVersion(h) == 2);

        // v1 has left the serving set but its module lives while the handle is held, and still runs.
        Assert.DoesNotContain(new ServableId("mlp", 1), manager.ListAvailableServableIds());
        Assert.False(v1.IsModuleReleased);
        float[] probe = TestModels.Inputs(1, TestModels.MlpInputs, seed: 5);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, probe), TestModels.RunFloat(v1, probe, TestModels.MlpInputs));

        held.Dispose();
        await Eventually.WaitUntilAsync(() => monitor.GetState(new ServableId("mlp", 1))?.State == ServableManagerState.End);
        Assert.True(v1.IsModuleReleased);
        Assert.Throws<ObjectDisposedException>(() => TestModels.RunFloat(v1, probe, TestModels.MlpInputs));

        await stop.CancelAsync();
        await Task.WhenAll(callers).WaitAsync(Patience);
        await host.StopAsync();
        Assert.True(failures == 0, $"{failures} failed call(s); first: {firstFailure}");
        Assert.True(callsPerVersion[1] > 0 && callsPerVersion[2] > 0);
    }

    [Theory]
    [InlineData("corrupt")]
    [InlineData("truncated")]
    [InlineData("missing")]
    public async Task BadNewVersion_EndsInErrorWithTheReason_ServingVersionKeepsServing(string defect)
    {
        string basePath = _folder.Combine("mlp");
        TestModels.WriteVersion(basePath, 1, TestModels.MlpScript(1));
        using IHost host = BuildHost(basePath);
        await host.StartAsync();
        var manager = host.Services.GetRequiredService<IServableManager>();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("mlp")], Patience)).IsAvailable);

        byte[] good = TestModels.MlpScript(2);
        byte[] bad = defect switch
        {
            "corrupt" => [.. Enumerable.Range(0, 300).Select(i => (byte)((i * 37) + 11))],
            "truncated" => good[..(good.Length / 2)],
            _ => good,
        };
        TestModels.MoveVersionIn(basePath, 2, bad, fileName: defect == "missing" ? "weights.bin" : "model.pt");
        await Eventually.WaitUntilAsync(() => monitor.GetState(new ServableId("mlp", 2)) is { IsError: true }, Patience, "version 2 in error");

        ServableState state = monitor.GetState(new ServableId("mlp", 2))!;
        Assert.Contains(defect == "missing" ? "holds weights.bin" : "zip archive", state.Error!.Message, StringComparison.Ordinal);
        using ServableHandle<TorchServable> handle = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("mlp"));
        Assert.Equal(1, handle.Id.Version);
        float[] x = TestModels.Inputs(3, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(handle.Value, x, TestModels.MlpInputs));
        await host.StopAsync();
    }

    [Fact]
    public async Task BareServiceProvider_DisposedSynchronously_WithABatchedServable_ThrowsNothing()
    {
        string basePath = _folder.Combine("bare");
        TestModels.WriteVersion(basePath, 1, TestModels.MlpScript(1));
        var services = new ServiceCollection().AddLogging();
        services.AddServables(o => o.ManageStateInterval = TimeSpan.FromMilliseconds(20))
            .AddTorchServable("bare", basePath, o => o.Batching = new TorchBatchingOptions());
        ServiceProvider provider = services.BuildServiceProvider();
        foreach (IHostedService service in provider.GetServices<IHostedService>())
        {
            await service.StartAsync(CancellationToken.None); // waits for the first version
        }

        var manager = provider.GetRequiredService<IServableManager>();
        float[] x = TestModels.Inputs(1, TestModels.MlpInputs, seed: 1);
        using (Tensor input = torch.tensor(x, [1, TestModels.MlpInputs]))
        using (ServableHandle<TorchServable> handle = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("bare")))
        using (Tensor output = await handle.Value.ForwardAsync(input))
        {
            TestModels.AssertClose(TestModels.ExpectedMlp(1, x), output.data<float>().ToArray());
        }

        provider.Dispose(); // the per-servable batch schedulers and the manager, synchronously

        Assert.Empty(manager.ListAvailableServableIds());
    }

    [Fact]
    public async Task Warmup_VersionBecomesAvailableOnlyAfterItsWarmupRan()
    {
        string basePath = _folder.Combine("mlp");
        TestModels.WriteVersion(basePath, 1, TestModels.MlpScript(1));
        bool? warmedUpWhenAvailable = null;
        using IHost host = BuildHost(basePath, o => o.WarmupRequests.Add([TorchWarmupTensor.Zeros(ScalarType.Float32, 4, 8)]));
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        monitor.StateChanged += (_, state) =>
        {
            if (state.State == ServableManagerState.Available)
            {
                warmedUpWhenAvailable = _logs.Entries.Any(e => e.EventId.Id == 403 && e.Message.Contains("mlp:1", StringComparison.Ordinal));
            }
        };

        await host.StartAsync();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("mlp")], Patience)).IsAvailable);

        Assert.True(warmedUpWhenAvailable);
        await host.StopAsync();
    }

    [Fact]
    public async Task ModuleWithSafetensorsWeights_ServedFromVersionFolders_ComputesTheFilesWeights()
    {
        string basePath = _folder.Combine("mlp");
        string folder = Path.Combine(basePath, "7");
        Directory.CreateDirectory(folder);
        using (TestModels.MlpModule source = TestModels.Mlp(7))
        {
            TorchSharp.PyBridge.PyBridgeModuleExtensions.save_safetensors(source, Path.Combine(folder, "model.safetensors"));
        }

        using IHost host = BuildHost(basePath, o =>
        {
            o.ModelKind = TorchModelKind.Safetensors;
            o.ModuleFactory = _ => TestModels.Mlp();
        });
        await host.StartAsync();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("mlp")], Patience)).IsAvailable);

        using ServableHandle<TorchServable> handle = host.Services.GetRequiredService<IServableManager>().GetServableHandle<TorchServable>(ServableRequest.Latest("mlp"));
        float[] x = TestModels.Inputs(2, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(7, x), TestModels.RunFloat(handle.Value, x, TestModels.MlpInputs));
        await host.StopAsync();
    }

    [Fact]
    public async Task StartAsync_InvalidOptions_FailsNamingTheServableAndTheProblem()
    {
        using IHost host = BuildHost(_folder.Path, o => o.ModelKind = TorchModelKind.PyTorchStateDict, name: "bad");

        OptionsValidationException ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("TorchServableOptions 'bad'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("ModuleFactory is required", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddTorchServable_TwoServables_EachGetsItsOwnOptions()
    {
        var services = new ServiceCollection();
        services.AddServables()
            .AddTorchServable("a", _folder.Combine("a"), o => o.ModelFileName = "a.pt")
            .AddTorchServable("b", _folder.Combine("b"), o => o.Device = TorchDevice.Auto);
        using ServiceProvider provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptionsMonitor<TorchServableOptions>>();
        Assert.Equal("a.pt", options.Get("a").EffectiveModelFileName);
        Assert.Equal(TorchDevice.Cpu, options.Get("a").Device);
        Assert.Equal("model.pt", options.Get("b").EffectiveModelFileName);
        Assert.Equal(TorchDevice.Auto, options.Get("b").Device);
    }

    private static int DisposeAndGetVersion(ServableHandle<TorchServable> handle)
    {
        using (handle)
        {
            return (int)handle.Id.Version;
        }
    }

    private IHost BuildHost(string basePath, Action<TorchServableOptions>? configure = null, string name = "mlp")
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(_logs);
        builder.Services
            .AddServables(o =>
            {
                o.ManageStateInterval = TimeSpan.FromMilliseconds(20);
                o.MaxLoadRetries = 0;
            })
            .AddTorchServable(name, basePath, configure)
            .ConfigureStorage(s => s.PollPeriod = TimeSpan.FromMilliseconds(50));
        return builder.Build();
    }
}
