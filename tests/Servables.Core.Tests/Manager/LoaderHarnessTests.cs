using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Servables.Testing;

namespace Servables.Core.Tests.Manager;

/// <summary>One version's lifecycle: checked state moves, and the load-with-retries loop driven by a fake clock.</summary>
public sealed class LoaderHarnessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private static readonly ServableId Id = new("m", 4);

    [Fact]
    public void TransitionState_TheWholeHappyPath_IsLegal()
    {
        LoaderHarness h = NewHarness();

        h.TransitionState(HarnessState.New, HarnessState.Loading);
        h.TransitionState(HarnessState.Loading, HarnessState.Available);
        h.TransitionState(HarnessState.Available, HarnessState.Quiescing);
        h.TransitionState(HarnessState.Quiescing, HarnessState.Unloading);
        h.TransitionState(HarnessState.Unloading, HarnessState.Unloaded);

        Assert.Equal(HarnessState.Unloaded, h.State);
    }

    [Theory]
    [InlineData("New", "Available")]
    [InlineData("New", "Unloaded")]
    [InlineData("Available", "Loading")]
    [InlineData("Available", "Error")]
    [InlineData("Quiescing", "Available")]
    [InlineData("Unloaded", "New")]
    [InlineData("Error", "Loading")]
    public void IsLegal_MovesOutsideTheGraph_AreNot(string from, string to) =>
        Assert.False(LoaderHarness.IsLegal(Enum.Parse<HarnessState>(from), Enum.Parse<HarnessState>(to)));

    [Fact]
    public void TransitionState_IllegalMove_ThrowsNamingTheVersionAndBothStates_AndKeepsTheState()
    {
        LoaderHarness h = NewHarness();

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => h.TransitionState(HarnessState.New, HarnessState.Available));

        Assert.Contains("m:4", ex.Message, StringComparison.Ordinal);
        Assert.Contains("New", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Available", ex.Message, StringComparison.Ordinal);
        Assert.Equal(HarnessState.New, h.State);
    }

    [Fact]
    public void TransitionState_FromAStateItIsNotIn_Throws()
    {
        LoaderHarness h = NewHarness();

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => h.TransitionState(HarnessState.Loading, HarnessState.Available));

        Assert.Contains("it is New", ex.Message, StringComparison.Ordinal);
        Assert.Equal(HarnessState.New, h.State);
    }

    [Fact]
    public async Task LoadWithRetriesAsync_FailsTwiceThenLoads_WaitsTheIntervalBeforeEachRetry()
    {
        var time = new ObservedTimeProvider();
        var loader = new FakeLoader(Id).FailLoads(2);
        LoaderHarness h = NewHarness(loader);

        Task<LoadOutcome> loading = h.LoadWithRetriesAsync(Timeout.InfiniteTimeSpan, Settings(time, maxRetries: 5));
        for (int attempt = 1; attempt <= 2; attempt++)
        {
            await time.WaitForTimersAsync(attempt, Patience); // the retry wait after each failure
            Assert.Equal(attempt, loader.LoadCalls);
            Assert.False(loading.IsCompleted);
            time.Advance(TimeSpan.FromSeconds(30));
        }

        LoadOutcome outcome = await loading.WaitAsync(Patience);
        Assert.Equal(new LoadOutcome(3, null, null, false), outcome);
        Assert.Equal("success", outcome.Tag);
    }

    [Fact]
    public async Task LoadWithRetriesAsync_RetriesUsedUp_ReturnsTheLastFailure()
    {
        var time = new ObservedTimeProvider();
        var loader = new FakeLoader(Id).FailLoads(10);
        LoaderHarness h = NewHarness(loader);

        Task<LoadOutcome> loading = h.LoadWithRetriesAsync(Timeout.InfiniteTimeSpan, Settings(time, maxRetries: 1));
        await time.WaitForTimersAsync(1, Patience);
        time.Advance(TimeSpan.FromSeconds(30));
        LoadOutcome outcome = await loading.WaitAsync(Patience);

        Assert.Equal(2, outcome.Attempts);
        Assert.IsType<IOException>(outcome.Failure);
        Assert.Equal("error", outcome.Tag);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task LoadWithRetriesAsync_PredicateRefusesOrThrows_DoesNotRetry(bool predicateThrows)
    {
        var loader = new FakeLoader(Id).FailLoads(10);
        LoaderHarness h = NewHarness(loader);
        (ServableId, Exception)? asked = null;
        LoadRetrySettings settings = Settings(new FakeTimeProvider(), maxRetries: 5) with
        {
            ShouldRetry = (id, error) =>
            {
                asked = (id, error);
                return predicateThrows ? throw new InvalidOperationException("predicate bug") : false;
            },
        };

        LoadOutcome outcome = await h.LoadWithRetriesAsync(Timeout.InfiniteTimeSpan, settings).WaitAsync(Patience);

        Assert.Equal(1, outcome.Attempts);
        Assert.Equal(1, loader.LoadCalls);
        Assert.Equal(Id, asked!.Value.Item1);
        Assert.IsType<IOException>(asked.Value.Item2);
    }

    [Fact]
    public async Task LoadWithRetriesAsync_AttemptOutlivesTheTimeout_IsAbandonedNotRetried_AndItsTokenCancelled()
    {
        var time = new ObservedTimeProvider();
        var hang = new TaskCompletionSource<object>(TaskCreationOptions.RunContinuationsAsynchronously);
        CancellationToken seen = default;
        var called = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var loader = new SimpleLoader<object>(ct =>
        {
            seen = ct;
            called.TrySetResult();
            return hang.Task;
        });
        LoaderHarness h = NewHarness(loader);

        Task<LoadOutcome> loading = h.LoadWithRetriesAsync(TimeSpan.FromSeconds(5), Settings(time, maxRetries: 5));
        await time.WaitForTimersAsync(1, Patience);
        await called.Task.WaitAsync(Patience); // the attempt runs on the pool: it may start after the timeout's timer exists
        time.Advance(TimeSpan.FromSeconds(5));
        LoadOutcome outcome = await loading.WaitAsync(Patience);

        Assert.Equal(1, outcome.Attempts);
        Assert.NotNull(outcome.Abandoned);
        Assert.False(outcome.Abandoned.IsCompleted);
        Assert.Contains("timed out after 00:00:05 (attempt 1)", Assert.IsType<TimeoutException>(outcome.Failure).Message, StringComparison.Ordinal);
        Assert.True(seen.IsCancellationRequested);
        Assert.Equal("timeout", outcome.Tag);
        hang.SetResult(new object());
        await outcome.Abandoned.WaitAsync(Patience);
    }

    [Fact]
    public async Task LoadWithRetriesAsync_CancelledDuringTheRetryWait_EndsCancelledWithoutAnotherAttempt()
    {
        var time = new ObservedTimeProvider();
        var loader = new FakeLoader(Id).FailLoads(10);
        LoaderHarness h = NewHarness(loader);

        Task<LoadOutcome> loading = h.LoadWithRetriesAsync(Timeout.InfiniteTimeSpan, Settings(time, maxRetries: 5));
        await time.WaitForTimersAsync(1, Patience);
        await h.Cancellation.CancelAsync();
        LoadOutcome outcome = await loading.WaitAsync(Patience);

        Assert.True(outcome.Cancelled);
        Assert.Equal("cancelled", outcome.Tag);
        Assert.Equal(1, loader.LoadCalls);
    }

    private static LoaderHarness NewHarness(Loader? loader = null) => new(Id, loader ?? new FakeLoader(Id), _ => { });

    private static LoadRetrySettings Settings(TimeProvider time, int maxRetries) =>
        new(maxRetries, TimeSpan.FromSeconds(30), null, time, NullLogger.Instance);
}
