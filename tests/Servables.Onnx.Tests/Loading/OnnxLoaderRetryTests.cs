using Microsoft.ML.OnnxRuntime;
using Servables.Testing;

namespace Servables.Onnx.Tests.Loading;

/// <summary>The manager's retries with the real <see cref="OnnxLoader"/> on real model files, default retry count.</summary>
public sealed class OnnxLoaderRetryTests : IDisposable
{
    private static readonly ServableId Id = new("linear", 1);
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task HalfCopiedModel_BecomesValidBeforeTheRetry_VersionBecomesAvailableAndServes()
    {
        await using var driver = new ManagerDriver(); // MaxLoadRetries: the default (5)
        byte[] model = TestModels.Linear(1);
        string folder = TestModels.WriteVersion(_folder.Path, 1, model[..(model.Length / 2)]);
        driver.Manager.SetAspiredVersions("linear", [ServableData.Create<Loader>(Id, new OnnxLoader(Id, Path.Combine(folder, "model.onnx"), new OnnxServableOptions { IntraOpThreads = 1 }))]);

        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(2); // the first attempt failed; the retry waits
        Assert.Equal(ServableManagerState.Loading, driver.StateOf("linear", 1));
        await File.WriteAllBytesAsync(Path.Combine(folder, "model.onnx"), model); // the copy finished
        driver.Time.Advance(TimeSpan.FromSeconds(1));
        await turn;

        Assert.Equal(ServableManagerState.Available, driver.StateOf("linear", 1));
        using ServableHandle<OnnxServable> handle = driver.Manager.GetServableHandle<OnnxServable>(ServableRequest.Latest("linear"));
        float[] x = TestModels.Inputs(2, 4);
        TestModels.AssertClose(TestModels.ExpectedLinear(1, x), TestModels.RunFloat(handle.Value, x, 4));
    }

    [Fact]
    public async Task CorruptModel_EveryAttemptFails_ErrorSaysHowManyRanAndKeepsOnnxRuntimesMessage()
    {
        await using var driver = new ManagerDriver();
        string folder = TestModels.WriteVersion(_folder.Path, 1, [.. Enumerable.Range(0, 300).Select(i => (byte)((i * 37) + 11))]);
        driver.Manager.SetAspiredVersions("linear", [ServableData.Create<Loader>(Id, new OnnxLoader(Id, Path.Combine(folder, "model.onnx"), new OnnxServableOptions { IntraOpThreads = 1 }))]);

        Task turn = driver.TurnAsync();
        for (int attempt = 1; attempt <= 5; attempt++)
        {
            await driver.Time.WaitForTimersAsync(2 * attempt);
            driver.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await turn;
        ServableState state = driver.State("linear", 1)!;
        Assert.True(state.IsError);
        Assert.Contains("failed after 6 attempt(s)", state.Error!.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("already loaded", state.Error.Message, StringComparison.Ordinal);
        Exception? e = state.Error;
        while (e is not null and not OnnxRuntimeException)
        {
            e = e.InnerException;
        }

        OnnxRuntimeException ort = Assert.IsType<OnnxRuntimeException>(e);
        Assert.Contains(ort.Message, state.Error.Message, StringComparison.Ordinal);
    }
}
