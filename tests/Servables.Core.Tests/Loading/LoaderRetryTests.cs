using Servables.Testing;

namespace Servables.Core.Tests.Loading;

/// <summary>Retries through the manager with the real <see cref="Loader{T}"/> types and the default retry count.</summary>
public sealed class LoaderRetryTests
{
    [Fact]
    public async Task SimpleLoader_FailsTwiceThenSucceeds_EachRetryRunsTheFactory_BecomesAvailable()
    {
        await using var driver = new ManagerDriver(); // MaxLoadRetries: the default (5)
        int calls = 0;
        var loader = new SimpleLoader<string>(_ => ++calls <= 2
            ? Task.FromException<string>(new IOException($"model.bin is half-copied (call {calls})"))
            : Task.FromResult("model"));
        driver.Manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), loader)]);

        Task turn = driver.TurnAsync();
        for (int attempt = 1; attempt <= 2; attempt++)
        {
            await driver.Time.WaitForTimersAsync(2 * attempt); // the attempt's timeout, then the retry wait
            driver.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await turn;
        Assert.Equal(3, calls);
        Assert.Equal(ServableManagerState.Available, driver.StateOf("m", 1));
        using ServableHandle<string> handle = driver.Manager.GetServableHandle<string>(ServableRequest.Latest("m"));
        Assert.Equal("model", handle.Value);
    }

    [Fact]
    public async Task SimpleLoader_AlwaysFails_ErrorCarriesTheLastRealCauseAndTheAttemptCount()
    {
        await using var driver = new ManagerDriver();
        int calls = 0;
        var loader = new SimpleLoader<string>(_ => Task.FromException<string>(new IOException($"bad header in model.bin (call {++calls})")));
        driver.Manager.SetAspiredVersions("m", [ServableData.Create<Loader>(new ServableId("m", 1), loader)]);

        Task turn = driver.TurnAsync();
        for (int attempt = 1; attempt <= 5; attempt++)
        {
            await driver.Time.WaitForTimersAsync(2 * attempt);
            driver.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await turn;
        Assert.Equal(6, calls);
        ServableState state = driver.State("m", 1)!;
        Assert.True(state.IsError);
        Assert.Contains("failed after 6 attempt(s)", state.Error!.Message, StringComparison.Ordinal);
        Assert.Contains("bad header in model.bin (call 6)", state.Error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("already loaded", state.Error.Message, StringComparison.Ordinal);
        IOException cause = Assert.IsType<IOException>(state.Error.InnerException);
        Assert.Contains("(call 6)", cause.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoaderOfT_FailedLoad_LeavesNothingAndLoadsAgain_SecondSuccessfulLoadIsRefused()
    {
        int calls = 0;
        var loader = new SimpleLoader<string>(_ => ++calls == 1 ? throw new IOException("first") : Task.FromResult("ok"));

        await Assert.ThrowsAsync<IOException>(() => loader.LoadAsync());
        Assert.Null(loader.Servable);
        await loader.LoadAsync();
        Assert.Equal("ok", loader.Value);

        InvalidOperationException twice = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());
        Assert.Contains("SimpleLoader<String> was already loaded", twice.Message, StringComparison.Ordinal);
        Assert.Equal(2, calls);
    }

    [Fact]
    public async Task LoaderOfT_FactoryReturnsNull_MessageNamesTheTypeReadably()
    {
        var loader = new SimpleLoader<List<int>>(_ => Task.FromResult<List<int>>(null!));

        InvalidOperationException ex = await Assert.ThrowsAsync<InvalidOperationException>(() => loader.LoadAsync());

        Assert.StartsWith("SimpleLoader<List<Int32>>.CreateAsync returned null", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HandleTypeMismatch_NamesBothTypesReadably()
    {
        InvalidCastException ex = ServableHandle<List<string>>.TypeMismatch(new ServableId("m", 1), new Dictionary<string, int>());

        Assert.Contains("'System.Collections.Generic.Dictionary<String, Int32>'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'System.Collections.Generic.List<String>'", ex.Message, StringComparison.Ordinal);
    }
}
