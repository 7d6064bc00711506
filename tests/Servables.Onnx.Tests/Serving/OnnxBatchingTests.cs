using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Time.Testing;
using Microsoft.ML.OnnxRuntime;
using Servables.Testing;
using Servables.Testing.Onnx;

namespace Servables.Onnx.Tests.Serving;

/// <summary><see cref="OnnxServable.RunAsync"/> with <see cref="OnnxServableOptions.Batching"/> on, on real models: each call's results are an unbatched run's.</summary>
public sealed class OnnxBatchingTests : IDisposable
{
    private const int Features = 8;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private readonly TempFolder _folder = new();
    private readonly ConcurrentBag<(string Queue, int Size, int Padding)> _batches = [];
    private readonly MeterListener _listener = new();

    public OnnxBatchingTests()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Servables.Core" && instrument.Name is "servables.batch.size" or "servables.batch.padding")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
        {
            string queue = tags.ToArray().Single(t => t.Key == "queue").Value as string ?? string.Empty;
            _batches.Add(instrument.Name == "servables.batch.size" ? (queue, value, -1) : (queue, -1, value));
        });
        _listener.Start();
    }

    public void Dispose()
    {
        _listener.Dispose();
        _folder.Dispose();
    }

    [Fact]
    public async Task SixteenCallers_FillOneBatch_EachGetsExactlyItsUnbatchedResult()
    {
        await using OnnxServable mlp = await LoadAsync("mlp16", TestModels.Mlp(), batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (16, TimeSpan.FromSeconds(10)));
        float[][] rows = [.. Enumerable.Range(0, 16).Select(i => TestModels.Inputs(1, Features, seed: i + 1))];

        float[][] batched = await Task.WhenAll(rows.Select(row => Task.Run(() => RunAsync(mlp, row, Features)))).WaitAsync(Wait); // full at 16 rows: no timeout needed

        Assert.True(mlp.IsBatching);
        Assert.Equal(16, Assert.Single(_batches, b => b.Queue == "mlp16:1" && b.Size > 0).Size);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(Unbatched(mlp, rows[i], Features), batched[i]);
            TestModels.AssertClose(TestModels.ExpectedMlp(rows[i]), batched[i]);
        }
    }

    [Fact]
    public async Task OutputsOfOneBatch_DisposedInAnyOrder_EachStaysReadableUntilItsOwnDispose()
    {
        await using OnnxServable mlp = await LoadAsync("mlpviews", TestModels.Mlp(), batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (4, TimeSpan.FromSeconds(10)));
        float[][] rows = [.. Enumerable.Range(0, 4).Select(i => TestModels.Inputs(1, Features, seed: i + 20))];
        var inputs = rows.Select(row => OrtValue.CreateTensorValueFromMemory(row, [1, Features])).ToArray();
        try
        {
            // Full at 4 calls: one run, whose output tensors the four calls' views share.
            IDisposableReadOnlyCollection<OrtValue>[] outputs = await Task.WhenAll(inputs.Select(x => mlp.RunAsync(new Dictionary<string, OrtValue> { ["X"] = x }))).WaitAsync(Wait);

            Assert.Equal(4, Assert.Single(_batches, b => b.Queue == "mlpviews:1" && b.Size > 0).Size);
            foreach (int i in new[] { 2, 0, 3, 1 })
            {
                Assert.Equal(new long[] { 1, 3 }, outputs[i][0].GetTensorTypeAndShape().Shape);
                Assert.Equal(Unbatched(mlp, rows[i], Features), outputs[i][0].GetTensorDataAsSpan<float>().ToArray()); // the others disposed before it
                outputs[i].Dispose();
                outputs[i].Dispose(); // idempotent: the shared run is released once per call
            }
        }
        finally
        {
            Array.ForEach(inputs, x => x.Dispose());
        }
    }

    [Fact]
    public async Task PaddedToTheNextAllowedSize_PaddingNeverReachesAResult()
    {
        var time = new FakeTimeProvider();
        await using var scheduler = new BatchScheduler<OnnxBatchTask>(new BatchSchedulerOptions { TimeProvider = time });
        await using OnnxServable mlp = await LoadAsync("mlppad", TestModels.Mlp(), batching =>
        {
            (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout, batching.Scheduler) = (8, TimeSpan.FromSeconds(1), scheduler);
            batching.Queue.AllowedBatchSizes.Add(4);
            batching.Queue.AllowedBatchSizes.Add(8);
        });
        float[][] rows = [TestModels.Inputs(1, Features, 1), TestModels.Inputs(2, Features, 2)]; // 3 rows: padded to 4

        Task<float[]>[] calls = [.. rows.Select(row => RunAsync(mlp, row, Features))];
        await Eventually.WaitUntilAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(1)); // the batch timeout, on the scheduler's clock
            return calls.All(c => c.IsCompleted);
        }, Wait);

        Assert.Contains(_batches, b => b.Queue == "mlppad:1" && b.Padding == 1);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(Unbatched(mlp, rows[i], Features), await calls[i]);
        }
    }

    [Fact]
    public async Task CallsWithOtherTrailingShapes_RunApart_InOneBatch_EachCorrect()
    {
        byte[] relu = new OnnxModelWriter().Input("X", OnnxModelWriter.FloatType, "n", "m").Output("Y", OnnxModelWriter.FloatType, "n", "m").Node("Relu", ["X"], ["Y"]).ToArray();
        await using OnnxServable model = await LoadAsync("relu", relu, batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (4, TimeSpan.FromSeconds(10)));
        float[][] rows = [[-1, 2, -3], [4, -5, 6, -7, 8], [9, -10, 11], [-12, 13, -14, 15, -16]];

        float[][] results = await Task.WhenAll(rows.Select(row => RunAsync(model, row, row.Length))).WaitAsync(Wait);

        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i].Select(v => Math.Max(0, v)), results[i]);
        }

        Assert.Equal(4, Assert.Single(_batches, b => b.Queue == "relu:1" && b.Size > 0).Size); // one batch, two session runs
    }

    [Fact]
    public async Task OneBadCallInABatch_FailsAlone_WithTheModelsSignature()
    {
        await using OnnxServable mlp = await LoadAsync("mlpbad", TestModels.Mlp(), batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (4, TimeSpan.FromSeconds(10)));
        float[][] good = [.. Enumerable.Range(0, 3).Select(i => TestModels.Inputs(1, Features, seed: i + 1))];

        Task<float[]>[] goodCalls = [.. good.Select(row => RunAsync(mlp, row, Features))];
        Task<float[]> bad = RunAsync(mlp, TestModels.Inputs(1, Features - 1), Features - 1); // the fourth row fills the batch

        OnnxInputException error = await Assert.ThrowsAsync<OnnxInputException>(() => bad.WaitAsync(Wait));
        Assert.Contains(mlp.Signature, error.Message, StringComparison.Ordinal);
        for (int i = 0; i < good.Length; i++)
        {
            Assert.Equal(Unbatched(mlp, good[i], Features), await goodCalls[i].WaitAsync(Wait));
        }
    }

    [Fact]
    public async Task DisposeAsync_RunsWhatIsQueued_WithoutWaitingForTheTimeout()
    {
        OnnxServable mlp = await LoadAsync("mlpdrain", TestModels.Mlp(), batching => (batching.Queue.MaxBatchSize, batching.Queue.BatchTimeout) = (8, TimeSpan.FromSeconds(10)));
        float[] row = TestModels.Inputs(1, Features);
        float[] expected = Unbatched(mlp, row, Features);
        Task<float[]> queued = RunAsync(mlp, row, Features);

        await mlp.DisposeAsync().AsTask().WaitAsync(Wait); // what an unload does: the queue drains, then the session goes

        Assert.Equal(expected, await queued);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => RunAsync(mlp, row, Features));
    }

    private static async Task<float[]> RunAsync(OnnxServable servable, float[] x, int features)
    {
        using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [x.Length / features, features]);
        using IDisposableReadOnlyCollection<OrtValue> outputs = await servable.RunAsync(new Dictionary<string, OrtValue> { ["X"] = input });
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static float[] Unbatched(OnnxServable servable, float[] x, int features)
    {
        using OrtValue input = OrtValue.CreateTensorValueFromMemory(x, [x.Length / features, features]);
        using IDisposableReadOnlyCollection<OrtValue> outputs = servable.Run(new Dictionary<string, OrtValue> { ["X"] = input });
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private async Task<OnnxServable> LoadAsync(string name, byte[] model, Action<OnnxBatchingOptions> configure)
    {
        string path = _folder.Combine(name + ".onnx");
        File.WriteAllBytes(path, model);
        var batching = new OnnxBatchingOptions();
        configure(batching);
        var loader = new OnnxLoader(new ServableId(name, 1), path, new OnnxServableOptions { IntraOpThreads = 1, Batching = batching });
        await loader.LoadAsync();
        return loader.Value!;
    }
}
