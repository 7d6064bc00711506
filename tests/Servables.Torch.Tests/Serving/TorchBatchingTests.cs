using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using Servables.Testing;
using Servables.Testing.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Servables.Torch.Tests.Serving;

/// <summary>
/// <see cref="TorchServable.ForwardAsync(Tensor, bool, CancellationToken)"/> with <see cref="TorchServableOptions.Batching"/> on,
/// on real TorchScript and TorchSharp modules: each call's result is an unbatched forward's.
/// </summary>
/// <remarks>
/// Exact comparisons use <see cref="TestModels.ExactMlpWeights"/>, whose arithmetic is exact in float32, so that any
/// batch size gives the same bits (libtorch's CPU kernels sum in other orders at other batch sizes, so ordinary
/// weights differ in the last bits between a batched and a one-row forward; the hot swap checks those to 1e-4).
/// </remarks>
public sealed class TorchBatchingTests : IDisposable
{
    private const int Features = TestModels.MlpInputs;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(60);
    private readonly TempFolder _folder = new();
    private readonly CapturingLoggerProvider _logs = new();
    private readonly ConcurrentBag<(string Queue, int Size, int Padding)> _batches = [];
    private readonly ConcurrentBag<(string Servable, string Outcome)> _forwards = [];
    private readonly MeterListener _listener = new();

    public TorchBatchingTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if ((instrument.Meter.Name == "Servables.Core" && instrument.Name is "servables.batch.size" or "servables.batch.padding")
                || (instrument.Meter.Name == "Servables.Torch" && instrument.Name == "servables.torch.forwards"))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
        {
            string queue = Tag(tags, "queue");
            _batches.Add(instrument.Name == "servables.batch.size" ? (queue, value, -1) : (queue, -1, value));
        });
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => _forwards.Add((Tag(tags, "servable"), Tag(tags, "outcome"))));
        _listener.Start();
    }

    public static TheoryData<string> Kinds => new() { "script", "module" };

    public void Dispose()
    {
        _listener.Dispose();
        _folder.Dispose();
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task SixteenConcurrentCallers_FiveFullBatches_EachCallGetsExactlyItsUnbatchedResult(string kind)
    {
        string name = "exact16" + kind;
        await using TorchServable mlp = await LoadAsync(name, kind, batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (16, TimeSpan.FromSeconds(10)));
        Assert.True(mlp.IsBatching);
        for (int round = 0; round < 5; round++)
        {
            float[][] rows = [.. Enumerable.Range(0, 16).Select(i => TestModels.ExactInputs(1, Features, seed: (round * 100) + i))];

            // Sixteen rows fill the batch: it runs at once, so no timeout is involved.
            float[][] batched = await Task.WhenAll(rows.Select(row => Task.Run(() => ForwardAsync(mlp, row)))).WaitAsync(Wait);

            for (int i = 0; i < rows.Length; i++)
            {
                Assert.Equal(Unbatched(mlp, row: rows[i]), batched[i]);
                Assert.Equal(TestModels.ExpectedExactMlp(1, rows[i]), batched[i]);
            }
        }

        Assert.Equal(Enumerable.Repeat(16, 5), _batches.Where(b => b.Queue == name + ":1" && b.Size > 0).Select(b => b.Size));
        Assert.Equal(80 + 5, _forwards.Count(f => f.Servable == name && f.Outcome == "success")); // the 80 unbatched forwards of the check, and one per batch
    }

    [Fact]
    public async Task CallsOfSeveralRows_AndPaddingToTheNextAllowedSize_PaddingNeverReachesAResult()
    {
        var time = new FakeTimeProvider();
        await using var scheduler = new BatchScheduler<TorchBatchTask>(new BatchSchedulerOptions { TimeProvider = time });
        await using TorchServable mlp = await LoadAsync("mlppad", "script", batching =>
        {
            (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout, batching.Scheduler) = (8, TimeSpan.FromSeconds(1), scheduler);
            batching.Queue.AllowedBatchSizes.Add(4);
            batching.Queue.AllowedBatchSizes.Add(8);
        });
        float[][] calls = [TestModels.ExactInputs(1, Features, 1), TestModels.ExactInputs(2, Features, 2)]; // 3 rows: padded to 4

        Task<Tensor>[] running = [.. calls.Select(x => ForwardTensorAsync(mlp, x))];
        await Eventually.WaitUntilAsync(
            () =>
            {
                time.Advance(TimeSpan.FromSeconds(1)); // the batch timeout, on the scheduler's clock
                return running.All(c => c.IsCompleted);
            },
            Wait);

        Assert.Contains(_batches, b => b.Queue == "mlppad:1" && b.Padding == 1);
        for (int i = 0; i < calls.Length; i++)
        {
            using Tensor output = await running[i];
            Assert.Equal([calls[i].Length / Features, TestModels.MlpOutputs], output.shape); // the call's rows, not the padding
            Assert.Equal(Unbatched(mlp, calls[i]), output.data<float>().ToArray());
            Assert.Equal(TestModels.ExpectedExactMlp(1, calls[i]), output.data<float>().ToArray());
        }
    }

    [Fact]
    public async Task CallsWithOtherTrailingShapesOrElementTypes_RunInSeparateForwards_InOneBatch_EachCorrect()
    {
        string path = _folder.Combine("relu.pt");
        File.WriteAllBytes(path, new TorchScriptWriter("Relu").Forward("return torch.relu(x)").ToArray());
        var loader = new TorchLoader(new ServableId("relu", 1), path, new TorchServableOptions { Batching = Batching(b => (b.Queue.MaxBatchSize, b.Queue.BatchTimeout) = (5, TimeSpan.FromSeconds(10))) });
        await loader.LoadAsync();
        await using TorchServable relu = loader.Value!;
        Tensor[] inputs =
        [
            torch.tensor(new float[] { -1, 2, -3 }, [1, 3]),
            torch.tensor(new float[] { 4, -5, 6, -7, 8 }, [1, 5]),
            torch.tensor(new float[] { 9, -10, 11 }, [1, 3]),
            torch.tensor(new float[] { -12, 13, -14, 15, -16 }, [1, 5]),
            torch.tensor(new double[] { -17, 18, -19 }, [1, 3]),
        ];
        try
        {
            Tensor[] outputs = await Task.WhenAll(inputs.Select(x => relu.ForwardAsync(x))).WaitAsync(Wait); // five rows fill the batch
            try
            {
                for (int i = 0; i < inputs.Length; i++)
                {
                    using Tensor expected = torch.nn.functional.relu(inputs[i]);
                    Assert.Equal(inputs[i].shape, outputs[i].shape);
                    Assert.Equal(inputs[i].dtype, outputs[i].dtype);
                    Assert.True(expected.allclose(outputs[i], rtol: 0, atol: 0), $"Call {i}: {outputs[i].ToString()}");
                }
            }
            finally
            {
                Array.ForEach(outputs, o => o.Dispose());
            }
        }
        finally
        {
            Array.ForEach(inputs, i => i.Dispose());
        }

        Assert.Equal(5, Assert.Single(_batches, b => b.Queue == "relu:1" && b.Size > 0).Size); // one batch ...
        Assert.Equal(3, _forwards.Count(f => f.Servable == "relu" && f.Outcome == "success")); // ... three forwards: float[·, 3], float[·, 5], double[·, 3]
    }

    [Fact]
    public async Task ModuleOfTwoInputs_EachInputConcatenatedWithItsOwnKind_EachCallCorrect_RowsMustAgree()
    {
        string path = _folder.Combine("scale.pt");
        File.WriteAllBytes(path, new TorchScriptWriter("ScaleAdd").Parameter("w", [0.5f, -2f, 4f], 3).ForwardParameters("x", "y").Forward("return x * self.w + y").ToArray());
        var loader = new TorchLoader(new ServableId("scale", 1), path, new TorchServableOptions { Batching = Batching(b => (b.Queue.MaxBatchSize, b.Queue.BatchTimeout) = (3, TimeSpan.FromSeconds(10))) });
        await loader.LoadAsync();
        await using TorchServable scale = loader.Value!;
        using Tensor x1 = torch.tensor(new float[] { 1, 2, 3 }, [1, 3]);
        using Tensor y1 = torch.tensor(new float[] { 10, 20, 30 }, [1, 3]);
        using Tensor x2 = torch.tensor(new float[] { -1, -2, -3, 4, 5, 6 }, [2, 3]);
        using Tensor y2 = torch.tensor(new float[] { 1, 1, 1, 2, 2, 2 }, [2, 3]);

        Tensor[] outputs = await Task.WhenAll(scale.ForwardAsync([x1, y1]), scale.ForwardAsync([x2, y2])).WaitAsync(Wait); // three rows fill the batch
        using Tensor first = outputs[0];
        using Tensor second = outputs[1];

        Assert.Equal(new float[] { 10.5f, 16, 42 }, first.data<float>().ToArray());
        Assert.Equal(new float[] { 0.5f, 5, -11, 4, -8, 26 }, second.data<float>().ToArray());
        Assert.Equal(3, Assert.Single(_batches, b => b.Queue == "scale:1" && b.Size > 0).Size);
        Assert.Contains("the same for every input (1 here)", (await Assert.ThrowsAsync<ArgumentException>(() => scale.ForwardAsync([x1, y2]))).Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task OneBadCallInABatch_FailsAlone_OthersGetTheirResults(string kind)
    {
        string name = "mlpbad" + kind;
        await using TorchServable mlp = await LoadAsync(name, kind, batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (4, TimeSpan.FromSeconds(10)));
        float[][] good = [.. Enumerable.Range(0, 3).Select(i => TestModels.ExactInputs(1, Features, seed: i + 1))];

        Task<float[]>[] goodCalls = [.. good.Select(row => ForwardAsync(mlp, row))];
        using Tensor wrongWidth = torch.tensor(TestModels.ExactInputs(1, Features - 1, seed: 9), [1, Features - 1]);
        Task<Tensor> bad = mlp.ForwardAsync(wrongWidth); // the fourth row fills the batch

        TorchInputException error = await Assert.ThrowsAsync<TorchInputException>(() => bad.WaitAsync(Wait));
        Assert.Contains("libtorch refused them", error.Problem, StringComparison.Ordinal);
        Assert.Contains($"[1, {Features - 1}]", error.Inputs, StringComparison.Ordinal);
        for (int i = 0; i < good.Length; i++)
        {
            Assert.Equal(TestModels.ExpectedExactMlp(1, good[i]), await goodCalls[i].WaitAsync(Wait));
        }

        Assert.Equal(4, Assert.Single(_batches, b => b.Queue == name + ":1" && b.Size > 0).Size);
        Assert.Equal(1, _forwards.Count(f => f.Servable == name && f.Outcome == "bad_input"));
    }

    [Fact]
    public async Task InputsTheModuleIsKnownNotToTake_FailAtOnce_WithoutWaitingForABatch()
    {
        await using TorchServable mlp = await LoadAsync("mlpearly", "script", batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (4, TimeSpan.FromSeconds(10)));
        using Tensor doubles = torch.zeros([1, Features], ScalarType.Float64);
        using Tensor scalar = torch.tensor(1f);
        using Tensor tooMany = torch.zeros([5, Features]);

        // Each fails before it is queued: with a 10 s timeout and nothing else queued, a queued call would still be waiting.
        Assert.Contains("parameters are Float32", (await Assert.ThrowsAsync<TorchInputException>(() => mlp.ForwardAsync(doubles))).Problem, StringComparison.Ordinal);
        Assert.Contains("first dimension is the rows", (await Assert.ThrowsAsync<ArgumentException>(() => mlp.ForwardAsync(scalar))).Message, StringComparison.Ordinal);
        Assert.Contains("MaxBatchSize 4", (await Assert.ThrowsAsync<ArgumentException>(() => mlp.ForwardAsync(tooMany))).Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_batches, b => b.Queue == "mlpearly:1");
    }

    [Fact]
    public async Task InputDisposedWhileWaiting_ThatCallFailsAlone()
    {
        var time = new FakeTimeProvider();
        await using var scheduler = new BatchScheduler<TorchBatchTask>(new BatchSchedulerOptions { TimeProvider = time });
        await using TorchServable mlp = await LoadAsync("mlpgone", "script", batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout, batching.Scheduler) = (8, TimeSpan.FromSeconds(1), scheduler));
        float[] row = TestModels.ExactInputs(1, Features, seed: 3);
        Task<float[]> good = ForwardAsync(mlp, row);
        Tensor gone = torch.tensor(row, [1, Features]);
        Task<Tensor> orphaned = mlp.ForwardAsync(gone);
        gone.Dispose(); // against the contract: the batch has not run yet

        await Eventually.WaitUntilAsync(
            () =>
            {
                time.Advance(TimeSpan.FromSeconds(1));
                return good.IsCompleted && orphaned.IsCompleted;
            },
            Wait);

        Assert.Contains("disposed before its batch ran", (await Assert.ThrowsAsync<TorchInputException>(() => orphaned)).Problem, StringComparison.Ordinal);
        Assert.Equal(TestModels.ExpectedExactMlp(1, row), await good);
    }

    [Fact]
    public async Task CancelledWhileWaiting_CompletesCancelled_TheOtherCallStillRuns()
    {
        var time = new FakeTimeProvider();
        await using var scheduler = new BatchScheduler<TorchBatchTask>(new BatchSchedulerOptions { TimeProvider = time });
        await using TorchServable mlp = await LoadAsync("mlpcancel", "script", batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout, batching.Scheduler) = (8, TimeSpan.FromSeconds(1), scheduler));
        float[] row = TestModels.ExactInputs(1, Features, seed: 4);
        using var cancel = new CancellationTokenSource();
        using Tensor x = torch.tensor(row, [1, Features]);
        Task<Tensor> leaving = mlp.ForwardAsync(x, cancellationToken: cancel.Token);
        Task<float[]> staying = ForwardAsync(mlp, row);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => leaving.WaitAsync(Wait));
        await Eventually.WaitUntilAsync(
            () =>
            {
                time.Advance(TimeSpan.FromSeconds(1));
                return staying.IsCompleted;
            },
            Wait);

        Assert.Equal(TestModels.ExpectedExactMlp(1, row), await staying);
        Assert.Equal(1, Assert.Single(_batches, b => b.Queue == "mlpcancel:1" && b.Size > 0).Size); // the cancelled call never ran
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => mlp.ForwardAsync(x, cancellationToken: cancel.Token)); // already cancelled: not queued
    }

    [Fact]
    public async Task DisposeAsync_RunsWhatIsQueued_WithoutWaitingForTheTimeout_ThenRefusesCalls()
    {
        TorchServable mlp = await LoadAsync("mlpdrain", "script", batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (8, TimeSpan.FromSeconds(10)));
        float[] row = TestModels.ExactInputs(1, Features, seed: 5);
        Task<float[]>[] queued = [ForwardAsync(mlp, row), ForwardAsync(mlp, row)];

        await mlp.DisposeAsync().AsTask().WaitAsync(Wait); // what an unload does: the queue drains, then the module goes

        foreach (Task<float[]> call in queued)
        {
            Assert.Equal(TestModels.ExpectedExactMlp(1, row), await call.WaitAsync(Wait)); // ran before the module was disposed (else ObjectDisposedException)
        }

        Assert.True(mlp.IsModuleReleased);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => ForwardAsync(mlp, row));
        Assert.Contains(_logs.Entries, e => e.EventId.Id == 410 && e.Message.Contains("mlpdrain:1", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task WithoutBatching_ForwardAsync_RunsTheCallOnTheCallersThread(string kind)
    {
        await using TorchServable mlp = await LoadAsync("plain" + kind, kind, configure: null);
        float[] x = TestModels.ExactInputs(3, Features, seed: 6);
        using Tensor input = torch.tensor(x, [3, Features]);

        Task<Tensor> call = mlp.ForwardAsync(input);

        Assert.False(mlp.IsBatching);
        Assert.True(call.IsCompletedSuccessfully); // no queue, no worker
        using Tensor output = await call;
        Assert.Equal(TestModels.ExpectedExactMlp(1, x), output.data<float>().ToArray());
    }

    [Fact]
    public void Options_InvalidBatching_ListsEveryProblem_AndTheLoaderRefusesThem()
    {
        var options = new TorchServableOptions { Batching = Batching(b => (b.BatchWorkers, b.Queue.MaxBatchSize) = (0, 8)) };
        options.Batching!.Queue.AllowedBatchSizes.Add(4);

        IReadOnlyList<string> errors = options.Validate();

        Assert.Contains(errors, e => e.Contains("Batching.BatchWorkers must be between 1 and 256", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("Batching.Queue: AllowedBatchSizes must end at MaxBatchSize (8)", StringComparison.Ordinal));
        ArgumentException thrown = Assert.Throws<ArgumentException>(() => new TorchLoader(new ServableId("bad", 1), _folder.Combine("model.pt"), options));
        Assert.Contains("BatchWorkers", thrown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Options_AreCopiedByTheLoader_LaterChangesDoNotReachIt()
    {
        string path = _folder.Combine("copied.pt");
        File.WriteAllBytes(path, TestModels.ExactMlpScript(1));
        await using var scheduler = new BatchScheduler<TorchBatchTask>(new BatchSchedulerOptions { TimeProvider = new FakeTimeProvider() }); // its clock never moves: only a full batch runs
        var options = new TorchServableOptions { Batching = Batching(b => (b.Queue.MaxBatchSize, b.Queue.BatchTimeout, b.Scheduler) = (2, TimeSpan.FromSeconds(1), scheduler)) };
        var loader = new TorchLoader(new ServableId("copied", 1), path, options);
        options.Batching!.Queue.MaxBatchSize = 64; // after the loader copied them
        await loader.LoadAsync();
        await using TorchServable mlp = loader.Value!;
        float[] row = TestModels.ExactInputs(1, Features, seed: 7);

        float[][] results = await Task.WhenAll(ForwardAsync(mlp, row), ForwardAsync(mlp, row)).WaitAsync(Wait); // two rows fill a batch of 2, not of 64

        Assert.All(results, r => Assert.Equal(TestModels.ExpectedExactMlp(1, row), r));
    }

    [Fact]
    public async Task HotSwap_UnderBatchedLoadThroughTheHost_NoFailedCall_VersionsShareOneScheduler_OldQueueDrainsBeforeUnload()
    {
        string basePath = _folder.Combine("batched");
        TestModels.WriteVersion(basePath, 1, TestModels.MlpScript(1));
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.AddProvider(_logs).SetMinimumLevel(LogLevel.Debug);
        builder.Services
            .AddServables(o =>
            {
                o.ManageStateInterval = TimeSpan.FromMilliseconds(20);
                o.MaxLoadRetries = 0;
            })
            .AddTorchServable("batched", basePath, o => o.Batching = Batching(b => (b.Queue.MaxBatchSize, b.Queue.BatchTimeout) = (8, TimeSpan.FromMilliseconds(2))))
            .ConfigureStorage(s => s.PollPeriod = TimeSpan.FromMilliseconds(50));
        using IHost host = builder.Build();
        await host.StartAsync();
        var manager = host.Services.GetRequiredService<IServableManager>();
        var monitor = host.Services.GetRequiredService<ServableStateMonitor>();
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Latest("batched")], Wait)).IsAvailable);
        TorchServable v1;
        using (ServableHandle<TorchServable> first = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("batched")))
        {
            v1 = first.Value;
        }

        using var stop = new CancellationTokenSource();
        long failures = 0;
        var callsPerVersion = new long[3];
        string? firstFailure = null;
        Task[] callers = [.. Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            float[] x = TestModels.Inputs(1, Features, seed: c);
            float[][] expected = [[], TestModels.ExpectedMlp(1, x), TestModels.ExpectedMlp(2, x)];
            using Tensor input = torch.tensor(x, [1, Features]);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using ServableHandle<TorchServable> handle = manager.GetServableHandle<TorchServable>(ServableRequest.Latest("batched"));
                    using Tensor output = await handle.Value.ForwardAsync(input);
                    TestModels.AssertClose(expected[handle.Id.Version], output.data<float>().ToArray());
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

        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[1]) > 100, Wait);
        TestModels.MoveVersionIn(basePath, 2, TestModels.MlpScript(2));
        Assert.True((await monitor.WaitUntilAvailableAsync([ServableRequest.Specific("batched", 2)], Wait)).IsAvailable);
        using (ServableHandle<TorchServable> second = manager.GetServableHandle<TorchServable>(ServableRequest.Specific("batched", 2)))
        {
            Assert.True(second.Value.IsBatching);
            Assert.Same(v1.BatchScheduler, second.Value.BatchScheduler);
        }

        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref callsPerVersion[2]) > 100, Wait);
        await Eventually.WaitUntilAsync(() => monitor.GetState(new ServableId("batched", 1))?.State == ServableManagerState.End, Wait, "version 1 unloaded");
        await stop.CancelAsync();
        await Task.WhenAll(callers).WaitAsync(Wait);
        await host.StopAsync();

        Assert.True(failures == 0, $"{failures} failed call(s); the first: {firstFailure}");
        Assert.True(v1.IsModuleReleased);
        Assert.Contains(_batches, b => b.Queue is "batched:1" or "batched:2" && b.Size > 1); // calls did share forwards
        List<int> v1Events = [.. _logs.Entries.Where(e => e.Message.Contains("batched:1", StringComparison.Ordinal)).Select(e => e.EventId.Id)];
        Assert.Contains(408, v1Events);
        Assert.True(v1Events.IndexOf(410) >= 0 && v1Events.IndexOf(410) < v1Events.IndexOf(406), "version 1's queue drained (410) before its module was disposed (406)");
    }

    private static string Tag(ReadOnlySpan<KeyValuePair<string, object?>> tags, string key)
    {
        foreach (KeyValuePair<string, object?> tag in tags)
        {
            if (tag.Key == key)
            {
                return tag.Value as string ?? string.Empty;
            }
        }

        return string.Empty;
    }

    private static TorchBatchingOptions Batching(Action<TorchBatchingOptions> configure)
    {
        var batching = new TorchBatchingOptions();
        configure(batching);
        return batching;
    }

    private static async Task<float[]> ForwardAsync(TorchServable servable, float[] x)
    {
        using Tensor input = torch.tensor(x, [x.Length / Features, Features]);
        using Tensor output = await servable.ForwardAsync(input);
        return output.data<float>().ToArray();
    }

    private static async Task<Tensor> ForwardTensorAsync(TorchServable servable, float[] x)
    {
        using Tensor input = torch.tensor(x, [x.Length / Features, Features]);
        return await servable.ForwardAsync(input);
    }

    private static float[] Unbatched(TorchServable servable, float[] row) => TestModels.RunFloat(servable, row, Features);

    private async Task<TorchServable> LoadAsync(string name, string kind, Action<TorchBatchingOptions>? configure)
    {
        TorchServableOptions options;
        string path;
        if (kind == "script")
        {
            path = _folder.Combine(name + ".pt");
            File.WriteAllBytes(path, TestModels.ExactMlpScript(1));
            options = new TorchServableOptions();
        }
        else
        {
            path = _folder.Combine(name + ".dat");
            using (TestModels.MlpModule source = TestModels.ExactMlp(1))
            {
                source.save(path);
            }

            options = new TorchServableOptions { ModelKind = TorchModelKind.TorchSharpWeights, ModuleFactory = _ => TestModels.Mlp() };
        }

        options.Batching = configure is null ? null : Batching(configure);
        var loader = new TorchLoader(new ServableId(name, 1), path, options, _logs);
        await loader.LoadAsync();
        return loader.Value!;
    }
}
