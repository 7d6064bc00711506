namespace Servables.Async.Tests.Queue;

public sealed class LiveRequestTests
{
    [Fact]
    public void Stopped_BeforeAnyCancel_GivesTheSourceBack_ALaterCancelDoesNotReachIt()
    {
        LiveRequest request = NewRequest();
        using var source = new CancellationTokenSource();
        request.Started(source, CancellationToken.None);

        Assert.True(request.Stopped());
        request.CancelByCaller(); // the request is done: the source may already run the lane's next request

        Assert.False(source.IsCancellationRequested);
    }

    [Fact]
    public void CancelRunning_WhileItRuns_CancelsAndKeepsTheSource_StoppedSaysSo()
    {
        LiveRequest request = NewRequest();
        using var source = new CancellationTokenSource();
        request.Started(source, CancellationToken.None);

        request.CancelRunning();

        Assert.True(source.IsCancellationRequested);
        Assert.False(request.Stopped()); // the lane must not reuse it
    }

    [Fact]
    public void Started_AfterTheCallerCancelled_CancelsAtOnce()
    {
        LiveRequest request = NewRequest();
        request.CancelByCaller();
        using var source = new CancellationTokenSource();

        request.Started(source, CancellationToken.None);

        Assert.True(source.IsCancellationRequested);
        Assert.True(request.CancelledByCaller);
    }

    [Fact]
    public async Task CancelRunning_RacingStopped_ExactlyOneSideHasTheSource()
    {
        for (int i = 0; i < 2_000; i++)
        {
            LiveRequest request = NewRequest();
            var source = new CancellationTokenSource();
            request.Started(source, CancellationToken.None);
            using var go = new Barrier(2);
            Task cancel = Task.Run(() =>
            {
                go.SignalAndWait();
                request.CancelRunning();
            });
            go.SignalAndWait();
            bool laneHasIt = request.Stopped();
            await cancel.WaitAsync(TimeSpan.FromSeconds(10));

            // The lane reuses only a source that nobody cancelled, and one it gave up was cancelled.
            Assert.Equal(!laneHasIt, source.IsCancellationRequested);
        }
    }

    [Fact]
    public void TrySetOutcome_ThenGet_ReturnsItOnce_TheTableCannotClaimIt()
    {
        LiveRequest request = NewRequest();
        Assert.False(request.TryGetOutcome(out _, out _, out _));

        Assert.True(request.TrySetOutcome(null, "boom", 42));

        Assert.True(request.IsDone);
        Assert.True(request.Payload.IsEmpty);
        Assert.True(request.TryGetOutcome(out string text, out bool failed, out long at));
        Assert.Equal(("boom", true, 42L), (text, failed, at));
        Assert.False(request.TryClaimOutcome());
        Assert.False(request.TrySetOutcome("1", null, 43));
    }

    [Fact]
    public async Task TrySetOutcome_RacingTryClaimOutcome_ExactlyOneWins()
    {
        for (int i = 0; i < 2_000; i++)
        {
            LiveRequest request = NewRequest();
            using var go = new Barrier(2);
            Task<bool> claim = Task.Run(() =>
            {
                go.SignalAndWait();
                return request.TryClaimOutcome();
            });
            go.SignalAndWait();
            bool set = request.TrySetOutcome("1", null, 1);
            bool claimed = await claim.WaitAsync(TimeSpan.FromSeconds(10));

            Assert.NotEqual(set, claimed);
            Assert.Equal(set, request.TryGetOutcome(out _, out _, out _));
        }
    }

    [Fact]
    public void Phase_StartedThenWithdrawn_WithdrawFails_ClaimWins_TheLaneCannotFinish()
    {
        LiveRequest request = NewRequest();
        Assert.True(request.TryStart(5));
        Assert.True(request.IsStarted);
        Assert.False(request.TryStart(6));
        Assert.False(request.TryWithdraw()); // a cancel of a queued request comes too late

        Assert.True(request.TryClaimOutcome()); // a finish by id of a running request
        Assert.False(request.IsStarted);
        Assert.False(request.TrySetOutcome("1", null, 7));
        Assert.False(request.TryGetOutcome(out _, out _, out _));
    }

    [Fact]
    public void Phase_Withdrawn_NeverStarts_NorTakesALaneOutcome_WithdrawIsIdempotent()
    {
        LiveRequest request = NewRequest();
        Assert.True(request.TryWithdraw());
        Assert.True(request.TryWithdraw());

        Assert.False(request.TryStart(5));
        Assert.False(request.TrySetOutcome("1", null, 6));
        Assert.False(request.TryClaimOutcome());
    }

    [Fact]
    public async Task TryStart_RacingTryWithdraw_ExactlyOneWins()
    {
        for (int i = 0; i < 2_000; i++)
        {
            LiveRequest request = NewRequest();
            using var go = new Barrier(2);
            Task<bool> withdraw = Task.Run(() =>
            {
                go.SignalAndWait();
                return request.TryWithdraw();
            });
            go.SignalAndWait();
            bool started = request.TryStart(1);
            bool withdrawn = await withdraw.WaitAsync(TimeSpan.FromSeconds(10));

            Assert.NotEqual(started, withdrawn);
            Assert.Equal(started, request.IsStarted);
        }
    }

    [Fact]
    public void Payload_FromASlice_KeepsJustThoseBytes_UntilTheOutcome()
    {
        byte[] buffer = "xxhello!yy"u8.ToArray();
        var request = new LiveRequest("id", "text/plain", buffer.AsMemory(2, 6), DateTimeOffset.UnixEpoch, AsyncRequestState.InQueue, recovered: true);
        buffer[3] = (byte)'E'; // the request holds its own copy of a slice

        Assert.Equal("hello!", System.Text.Encoding.ASCII.GetString(request.Payload.Span));
        Assert.True(request.TrySetOutcome("1", null, 1));
        Assert.True(request.Payload.IsEmpty);
    }

    private static LiveRequest NewRequest() =>
        new("id", "text/plain", "x"u8.ToArray(), DateTimeOffset.UnixEpoch, AsyncRequestState.InQueue, recovered: false);
}
