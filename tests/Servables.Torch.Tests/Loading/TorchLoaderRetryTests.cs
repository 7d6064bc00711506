using Servables.Testing;

namespace Servables.Torch.Tests.Loading;

/// <summary>The manager's retries with the real <see cref="TorchLoader"/> on real model files, default retry settings.</summary>
public sealed class TorchLoaderRetryTests : IDisposable
{
    private static readonly ServableId Id = new("mlp", 1);
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task HalfCopiedModel_BecomesValidBeforeTheRetry_VersionBecomesAvailableAndServes()
    {
        await using var driver = new ManagerDriver(); // MaxLoadRetries and ShouldRetryLoad: the defaults
        byte[] model = TestModels.MlpScript(1);
        string folder = TestModels.WriteVersion(_folder.Path, 1, model[..(model.Length / 2)]);
        driver.Manager.SetAspiredVersions("mlp", [ServableData.Create<Loader>(Id, new TorchLoader(Id, Path.Combine(folder, "model.pt")))]);

        Task turn = driver.TurnAsync();
        await driver.Time.WaitForTimersAsync(2); // the first attempt failed; the retry waits
        Assert.Equal(ServableManagerState.Loading, driver.StateOf("mlp", 1));
        await File.WriteAllBytesAsync(Path.Combine(folder, "model.pt"), model); // the copy finished
        driver.Time.Advance(TimeSpan.FromSeconds(1));
        await turn;

        Assert.Equal(ServableManagerState.Available, driver.StateOf("mlp", 1));
        using ServableHandle<TorchServable> handle = driver.Manager.GetServableHandle<TorchServable>(ServableRequest.Latest("mlp"));
        float[] x = TestModels.Inputs(2, TestModels.MlpInputs);
        TestModels.AssertClose(TestModels.ExpectedMlp(1, x), TestModels.RunFloat(handle.Value, x, TestModels.MlpInputs));
    }

    [Fact]
    public async Task CorruptModel_EveryAttemptFails_ErrorSaysHowManyRanAndKeepsLibtorchsReason()
    {
        await using var driver = new ManagerDriver();
        string folder = TestModels.WriteVersion(_folder.Path, 1, [.. Enumerable.Range(0, 300).Select(i => (byte)((i * 37) + 11))]);
        driver.Manager.SetAspiredVersions("mlp", [ServableData.Create<Loader>(Id, new TorchLoader(Id, Path.Combine(folder, "model.pt")))]);

        Task turn = driver.TurnAsync();
        for (int attempt = 1; attempt <= 5; attempt++)
        {
            await driver.Time.WaitForTimersAsync(2 * attempt);
            driver.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await turn;
        ServableState state = driver.State("mlp", 1)!;
        Assert.True(state.IsError);
        Assert.Contains("failed after 6 attempt(s)", state.Error!.Message, StringComparison.Ordinal);
        Assert.Contains("zip archive", state.Error.Message, StringComparison.Ordinal);
    }
}
