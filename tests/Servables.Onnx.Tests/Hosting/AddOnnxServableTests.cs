using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Servables.Testing;

namespace Servables.Onnx.Tests.Hosting;

public sealed class AddOnnxServableTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempFolder _folder = new();
    private readonly CapturingLoggerProvider _logs = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task HotSwap_NewVersionMovedInWhileReadersRun_LatestMovesWithNoFailedRun_OldSessionDisposedAfterItsLastHandle()
    {
        string basePath = _folder.Combine("linear");
        TestModels.WriteVersion(basePath, 1, TestModels.Linear(1));
        using IHost host = BuildHost(basePath);
        await host.StartAsync();
        var manager = host.Services.GetRequiredService<IServableManager>();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("linear")], Patience)).IsAvailable);

        // A caller that holds v1 across the swap.
        ServableHandle<OnnxServable> held = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("linear"));
        Assert.Equal(1, held.Id.Version);
        OnnxServable v1 = held.Value;

        using var stop = new CancellationTokenSource();
        long failures = 0;
        var runsPerVersion = new long[3];
        string? firstFailure = null;
        Task[] readers = [.. Enumerable.Range(0, 2).Select(r => Task.Run(() =>
        {
            float[] x = TestModels.Inputs(2, 4, seed: r);
            float[][] expected = [[], TestModels.ExpectedLinear(1, x), TestModels.ExpectedLinear(2, x)];
            var y = new float[4];
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [2, 4]);
            using OrtValue output = OrtValue.CreateTensorValueFromMemory(y, [2, 2]);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (!manager.TryGetServableHandle(ServableRequest.Latest("linear"), out ServableHandle<OnnxServable> handle))
                    {
                        throw new InvalidOperationException("Latest did not resolve.");
                    }

                    using (handle)
                    {
                        handle.Value.Run(["X"], [input], ["Y"], [output]);
                        TestModels.AssertClose(expected[handle.Id.Version], y);
                        Interlocked.Increment(ref runsPerVersion[handle.Id.Version]);
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

        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref runsPerVersion[1]) > 50);
        TestModels.MoveVersionIn(basePath, 2, TestModels.Linear(2));
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("linear", 2)], Patience)).IsAvailable);
        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref runsPerVersion[2]) > 50);
        await Eventually.WaitUntilAsync(() => manager.TryGetServableHandle(ServableRequest.Latest("linear"), out ServableHandle<OnnxServable> h) && DisposeAndGetVersion(h) == 2);

        // v1 has left the serving set but its session lives while the handle is held, and still runs.
        Assert.DoesNotContain(new ServableId("linear", 1), manager.ListAvailableServableIds());
        Assert.False(v1.IsSessionReleased);
        float[] probe = TestModels.Inputs(1, 4, seed: 5);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, probe), TestModels.RunFloat(v1, probe, 4));

        held.Dispose();
        await Eventually.WaitUntilAsync(() => monitor.GetState(new ServableId("linear", 1))?.State == ServableManagerState.End);
        Assert.True(v1.IsSessionReleased);
        Assert.Throws<ObjectDisposedException>(() => TestModels.RunFloat(v1, probe, 4));

        await stop.CancelAsync();
        await Task.WhenAll(readers).WaitAsync(Patience);
        await host.StopAsync();
        Assert.True(failures == 0, $"{failures} failed run(s); first: {firstFailure}");
        Assert.True(runsPerVersion[1] > 0 && runsPerVersion[2] > 0);
    }

    [Fact]
    public async Task Warmup_VersionBecomesAvailableOnlyAfterItsWarmupRan()
    {
        string basePath = _folder.Combine("mlp");
        TestModels.WriteVersion(basePath, 1, TestModels.Mlp());
        bool? warmedUpWhenAvailable = null;
        using IHost host = BuildHost(basePath, "mlp", o => o.WarmupRequests.Add(new Dictionary<string, OnnxWarmupTensor> { ["X"] = OnnxWarmupTensor.Zeros(TensorElementType.Float, 4, 8) }));
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        monitor.StateChanged += (_, state) =>
        {
            if (state.State == ServableManagerState.Available)
            {
                warmedUpWhenAvailable = _logs.Entries.Any(e => e.EventId.Id == 303 && e.Message.Contains("mlp:1", StringComparison.Ordinal));
            }
        };

        await host.StartAsync();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("mlp")], Patience)).IsAvailable);

        Assert.True(warmedUpWhenAvailable);
        var manager = host.Services.GetRequiredService<IServableManager>();
        using ServableHandle<OnnxServable> handle = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("mlp"));
        float[] x = TestModels.Inputs(3, 8);
        TestModels.AssertClose(TestModels.ExpectedMlp(x), TestModels.RunFloat(handle.Value, x, 8));
        await host.StopAsync();
    }

    [Fact]
    public async Task StartAsync_InvalidOptions_FailsNamingTheServableAndTheProblem()
    {
        using IHost host = BuildHost(_folder.Path, "bad", o => o.IntraOpThreads = -1);

        OptionsValidationException ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains("OnnxServableOptions 'bad'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("IntraOpThreads", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddOnnxServable_TwoServables_EachGetsItsOwnOptions()
    {
        var services = new ServiceCollection();
        services.AddServables()
            .AddOnnxServable("a", _folder.Combine("a"), o => o.ModelFileName = "a.onnx")
            .AddOnnxServable("b", _folder.Combine("b"), o => o.ExecutionProvider = OnnxExecutionProvider.Auto);
        using ServiceProvider provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptionsMonitor<OnnxServableOptions>>();
        Assert.Equal("a.onnx", options.Get("a").ModelFileName);
        Assert.Equal(OnnxExecutionProvider.Cpu, options.Get("a").ExecutionProvider);
        Assert.Equal("model.onnx", options.Get("b").ModelFileName);
        Assert.Equal(OnnxExecutionProvider.Auto, options.Get("b").ExecutionProvider);
    }

    private static int DisposeAndGetVersion(ServableHandle<OnnxServable> handle)
    {
        using (handle)
        {
            return (int)handle.Id.Version;
        }
    }

    [Fact]
    public async Task BareServiceProvider_DisposedSynchronously_WithABatchedServable_ThrowsNothing()
    {
        string basePath = _folder.Combine("bare");
        TestModels.WriteVersion(basePath, 1, TestModels.Linear(1));
        var services = new ServiceCollection().AddLogging();
        services.AddServables(o => o.ManageStateInterval = TimeSpan.FromMilliseconds(20))
            .AddOnnxServable("bare", basePath, o => o.Batching = new OnnxBatchingOptions());
        ServiceProvider provider = services.BuildServiceProvider();
        foreach (IHostedService service in provider.GetServices<IHostedService>())
        {
            await service.StartAsync(CancellationToken.None); // waits for the first version
        }

        var manager = provider.GetRequiredService<IServableManager>();
        float[] x = TestModels.Inputs(1, 4, seed: 1);
        using (OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 4]))
        using (ServableHandle<OnnxServable> handle = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("bare")))
        using (IDisposableReadOnlyCollection<OrtValue> outputs = await handle.Value.RunAsync(new Dictionary<string, OrtValue> { ["X"] = input }))
        {
            TestModels.AssertClose(TestModels.ExpectedLinear(1, x), outputs[0].GetTensorDataAsSpan<float>());
        }

        provider.Dispose(); // the per-servable batch schedulers and the manager, synchronously

        Assert.Empty(manager.ListAvailableServableIds());
    }

    [Fact]
    public async Task Batching_HotSwapUnderBatchedLoad_NoFailedCall_VersionsShareTheScheduler()
    {
        string basePath = _folder.Combine("batched");
        TestModels.WriteVersion(basePath, 1, TestModels.Linear(1));
        using IHost host = BuildHost(basePath, "batched", o =>
        {
            o.Batching = new OnnxBatchingOptions();
            (o.Batching.Queue.MaxBatchSize, o.Batching.Queue.BatchTimeout) = (8, TimeSpan.FromMilliseconds(2));
        });
        await host.StartAsync();
        var manager = host.Services.GetRequiredService<IServableManager>();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("batched")], Patience)).IsAvailable);

        using var stop = new CancellationTokenSource();
        long failures = 0;
        var callsPerVersion = new long[3];
        string? firstFailure = null;
        Task[] callers = [.. Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            float[] x = TestModels.Inputs(1, 4, seed: c);
            float[][] expected = [[], TestModels.ExpectedLinear(1, x), TestModels.ExpectedLinear(2, x)];
            using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [1, 4]);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using ServableHandle<OnnxServable> handle = manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("batched"));
                    using IDisposableReadOnlyCollection<OrtValue> outputs = await handle.Value.RunAsync(new Dictionary<string, OrtValue> { ["X"] = input });
                    TestModels.AssertClose(expected[handle.Id.Version], outputs[0].GetTensorDataAsSpan<float>());
                    Interlocked.Increment(ref callsPerVersion[handle.Id.Version]);
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

        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[1]) > 100, Patience);
        TestModels.MoveVersionIn(basePath, 2, TestModels.Linear(2));
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("batched", 2)], Patience)).IsAvailable);
        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[2]) > 100, Patience);
        await Eventually.WaitUntilAsync(() => !manager.ListAvailableServableIds().Contains(new ServableId("batched", 1)), Patience);
        stop.Cancel();
        await Task.WhenAll(callers).WaitAsync(Patience);
        await host.StopAsync();

        Assert.True(failures == 0, $"{failures} failed call(s); the first: {firstFailure}");
    }

    private IHost BuildHost(string basePath, string name = "linear", Action<OnnxServableOptions>? configure = null)
    {
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(_logs);
        builder.Services
            .AddServables(o =>
            {
                o.ManageStateInterval = TimeSpan.FromMilliseconds(20);
                o.MaxLoadRetries = 0;
            })
            .AddOnnxServable(name, basePath, o =>
            {
                o.IntraOpThreads = 1;
                configure?.Invoke(o);
            })
            .ConfigureStorage(s => s.PollPeriod = TimeSpan.FromMilliseconds(50));
        return builder.Build();
    }
}
