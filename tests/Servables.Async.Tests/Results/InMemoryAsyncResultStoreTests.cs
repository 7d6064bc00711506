namespace Servables.Async.Tests.Results;

public sealed class InMemoryAsyncResultStoreTests : ResultStoreContractTests
{
    protected override IAsyncResultStore CreateStore(AsyncResultStoreOptions options) => new InMemoryAsyncResultStore(options);

    protected override bool RemovesExpiredItself => true;

    [Fact]
    public async Task TryAddAsync_Full_EvictsExpiredFirstThenOldestFinished()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 3, TimeProvider = Time, Retention = Retention });
        await store.TryAddAsync(NewRequest("done-old"));
        await store.TryCompleteAsync("done-old", "1", Time.GetUtcNow());
        await store.TryAddAsync(NewRequest("done-new"));
        await store.TryCompleteAsync("done-new", "2", Time.GetUtcNow());
        await store.TryAddAsync(NewRequest("queued"));

        Assert.True(await store.TryAddAsync(NewRequest("x")));
        Assert.Null(await store.GetAsync("done-old")); // oldest finished evicted
        Assert.NotNull(await store.GetAsync("done-new"));
        Assert.NotNull(await store.GetAsync("queued"));
        Assert.Equal(3, store.Count);

        Assert.True(await store.TryAddAsync(NewRequest("y")));
        Assert.Null(await store.GetAsync("done-new"));
        await Assert.ThrowsAsync<AsyncStoreFullException>(async () => await store.TryAddAsync(NewRequest("z")));
        Assert.NotNull(await store.GetAsync("queued")); // unfinished requests are never evicted
    }

    [Fact]
    public async Task GetUnfinishedAsync_MoreThanOneBatchOfSlots_ListsAllOldestFirst_AndLeavesOutFinished()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        for (int i = 0; i < 700; i++)
        {
            Assert.True(await store.TryAddAsync(NewRequest($"q{i}")));
            Time.Advance(TimeSpan.FromMilliseconds(1));
            if (i % 7 == 0)
            {
                Assert.True(await store.TryCompleteAsync($"q{i}", "1", Time.GetUtcNow()));
            }
        }

        IReadOnlyList<AsyncRequestRecord> unfinished = await store.GetUnfinishedAsync();
        Assert.Equal([.. Enumerable.Range(0, 700).Where(i => i % 7 != 0).Select(i => $"q{i}")], unfinished.Select(r => r.Id));
    }

    [Fact]
    public async Task RemoveExpiredAsync_ABurstOfMoreThanOneBatch_RemovesThemAll()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        for (int i = 0; i < 1_000; i++)
        {
            Assert.True(await store.TryAddAsync(NewRequest($"b{i}")));
            Assert.True(await store.TryCompleteAsync($"b{i}", "1", Time.GetUtcNow()));
        }

        Assert.True(await store.TryAddAsync(NewRequest("queued")));
        Time.Advance(Retention); // the timer removes the burst, one batch under the lock at a time
        Assert.Equal((1, 0), (store.Count, await store.RemoveExpiredAsync()));
        Assert.NotNull(await store.GetAsync("queued"));
    }

    [Fact]
    public async Task IdReusedAfterExpiry_OldCompletionNeverEvictsTheNewRequest()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 2, TimeProvider = Time, Retention = Retention });
        await store.TryAddAsync(NewRequest("a"));
        await store.TryCompleteAsync("a", "\"first\"", Time.GetUtcNow());
        Time.Advance(Retention);

        Assert.True(await store.TryAddAsync(NewRequest("a"))); // the expired one is replaced
        await store.TryAddAsync(NewRequest("b"));
        await store.TryCompleteAsync("b", "\"b\"", Time.GetUtcNow());
        Time.Advance(TimeSpan.FromSeconds(1));
        await store.TryCompleteAsync("a", "\"second\"", Time.GetUtcNow());

        // Full: the oldest finished is b (finished before the new a); the stale item of the first a is skipped.
        Assert.True(await store.TryAddAsync(NewRequest("c")));
        Assert.Null(await store.GetAsync("b"));
        Assert.Equal("\"second\"", (await store.GetAsync("a"))!.ResultJson);
        Assert.Equal(2, store.Count);
    }

    [Fact]
    public async Task Full_ManyCycles_StaysBoundedAndKeepsNewest()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 100, TimeProvider = Time, Retention = Retention });
        for (int i = 0; i < 1_000; i++)
        {
            Assert.True(await store.TryAddAsync(NewRequest($"r{i}")));
            Assert.True(await store.TryMarkInProgressAsync($"r{i}", Time.GetUtcNow()));
            Assert.True(i % 3 == 0
                ? await store.TryFailAsync($"r{i}", $"e{i}", Time.GetUtcNow())
                : await store.TryCompleteAsync($"r{i}", $"{i}", Time.GetUtcNow()));
        }

        Assert.Equal(100, store.Count);
        Assert.Null(await store.GetAsync("r899"));
        for (int i = 900; i < 1_000; i++)
        {
            AsyncRequestRecord record = (await store.GetAsync($"r{i}"))!;
            Assert.Equal(i % 3 == 0 ? $"e{i}" : null, record.Error);
            Assert.Equal(i % 3 == 0 ? null : $"{i}", record.ResultJson);
        }
    }

    [Fact]
    public async Task LargeAndNonAsciiTexts_RoundTripAfterEvictionsAroundThem()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 50, TimeProvider = Time, Retention = Retention });
        string large = "[" + string.Join(",", Enumerable.Range(0, 40_000)) + "]"; // over one text chunk
        for (int i = 0; i < 200; i++)
        {
            string id = $"req-{i}";
            Assert.True(await store.TryAddAsync(NewRequest(id) with { ContentType = "application/json; charset=utf-8" }));
            string result = i % 50 == 8 ? large : $"{{\"n\":{i},\"s\":\"é✓日本\"}}";
            Assert.True(i % 3 == 1
                ? await store.TryFailAsync(id, $"échec {i}", Time.GetUtcNow())
                : await store.TryCompleteAsync(id, result, Time.GetUtcNow()));
        }

        for (int i = 150; i < 200; i++)
        {
            AsyncRequestRecord record = (await store.GetAsync($"req-{i}"))!;
            Assert.Equal($"req-{i}", record.Id);
            Assert.Equal("application/json; charset=utf-8", record.ContentType);
            if (i % 3 == 1)
            {
                Assert.Equal((AsyncRequestState.Failed, $"échec {i}", (string?)null), (record.State, record.Error, record.ResultJson));
            }
            else
            {
                Assert.Equal(i % 50 == 8 ? large : $"{{\"n\":{i},\"s\":\"é✓日本\"}}", record.ResultJson);
            }
        }

        Assert.Null(await store.GetAsync("req-149"));
    }

    [Fact]
    public async Task MadeIds_ReadTheirSlot_ForgedAndStaleOnesFindNothing()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 2, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        string first = await AddAndCompleteAsync(table, "1");
        string second = await AddAndCompleteAsync(table, "2");

        Assert.Equal(SlotRequestId.Length, first.Length);
        Assert.Equal(("1", "2"), ((await store.GetAsync(first))!.ResultJson, (await store.GetAsync(second))!.ResultJson));
        Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(first, default)).Status.State);

        // Same slot, one key bit different: nothing.
        char flipped = first[3] == 'A' ? 'B' : 'A';
        string forged = first[..3] + flipped + first[4..];
        Assert.Null(await store.GetAsync(forged));
        Assert.Equal(AsyncRequestState.NotFound, (await table.ReadAsync(forged, default)).Status.State);

        // The first request is evicted and its slot made over to a new one (the free slot is reused): the old id finds nothing.
        string third = await AddAndCompleteAsync(table, "3");
        Assert.Null(await store.GetAsync(first));
        Assert.Equal(("2", "3"), ((await store.GetAsync(second))!.ResultJson, (await store.GetAsync(third))!.ResultJson));
    }

    [Fact]
    public async Task NamedIdShapedLikeAMadeOne_IsKeptByName_AndAMadeIdCannotBeTakenAgain()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 10, TimeProvider = Time, Retention = Retention });
        string made = await AddAndCompleteAsync(store, "\"made\"");
        string lookalike = (made[0] == 'A' ? "B" : "A") + made[1..]; // points at the same slot with other bits

        Assert.False(await store.TryAddAsync(NewRequest(made)));
        Assert.True(await store.TryAddAsync(NewRequest(lookalike)));
        Assert.True(await store.TryCompleteAsync(lookalike, "\"named\"", Time.GetUtcNow()));

        Assert.Equal("\"made\"", (await store.GetAsync(made))!.ResultJson);
        AsyncRequestRecord named = (await store.GetAsync(lookalike))!;
        Assert.Equal((lookalike, "\"named\""), (named.Id, named.ResultJson));
        Assert.Equal(made, (await store.GetAsync(made))!.Id);
    }

    [Fact]
    public async Task LaneOutcome_MovedInByTheNextRead_KeepsItsFinishTime_AndLetsThePayloadGo()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        LiveRequest request = await AddStartedAsync(table);
        Assert.Equal((request.Id, "{}"), ((await store.GetAsync(request.Id))!.Id, System.Text.Encoding.UTF8.GetString((await store.GetAsync(request.Id, includePayload: true))!.Payload.Span)));

        DateTimeOffset finishedAt = Time.GetUtcNow();
        Assert.True(await table.TryFinishAsync(request, "42", null, finishedAt));
        Assert.True(request.IsDone);
        Assert.True(request.Payload.IsEmpty);
        Time.Advance(TimeSpan.FromMinutes(5));

        (AsyncRequestStatus status, LiveRequest? live) = await table.ReadAsync(request.Id, default);
        Assert.Equal((AsyncRequestState.Completed, "42", finishedAt, (LiveRequest?)null), (status.State, status.ResultJson, status.Timestamp, live));
        AsyncRequestRecord record = (await store.GetAsync(request.Id))!;
        Assert.Equal((AsyncRequestState.Completed, finishedAt), (record.State, record.UpdatedAt));
    }

    [Fact]
    public async Task Release_KeepsTheUnfinishedEntryWithItsPayload()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        LiveRequest request = await AddStartedAsync(table);

        table.Release(request);

        Assert.True(request.IsDone);
        AsyncRequestRecord record = (await store.GetAsync(request.Id, includePayload: true))!;
        Assert.Equal((request.Id, AsyncRequestState.InQueue, "{}"), (record.Id, record.State, System.Text.Encoding.UTF8.GetString(record.Payload.Span)));
        Assert.Equal((AsyncRequestState.InQueue, (LiveRequest?)null), ((await table.ReadAsync(request.Id, default)).Status.State, (await table.ReadAsync(request.Id, default)).Live));
    }

    [Fact]
    public async Task LaneOutcome_FinishByIdAfterIt_KeepsTheLanes_ACancelFindsNothingQueued()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        LiveRequest request = await AddStartedAsync(table);
        Assert.True(await table.TryFinishAsync(request, null, "lane failed", Time.GetUtcNow()));

        Assert.False(await store.TryCompleteAsync(request.Id, "\"other\"", Time.GetUtcNow()));
        Assert.False(await table.TryFailQueuedAsync(request.Id, "cancelled", Time.GetUtcNow(), default));
        AsyncRequestRecord record = (await store.GetAsync(request.Id))!;
        Assert.Equal((AsyncRequestState.Failed, "lane failed"), (record.State, record.Error));
    }

    [Fact]
    public async Task LaneOutcomes_NobodyReads_AFullStoreMovesThemInAndEvictsTheOldest()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 10, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        var ids = new List<string>();
        for (int i = 0; i < 100; i++)
        {
            LiveRequest request = await AddStartedAsync(table);
            Assert.True(await table.TryFinishAsync(request, i.ToString(System.Globalization.CultureInfo.InvariantCulture), null, Time.GetUtcNow()));
            ids.Add(request.Id);
        }

        Assert.Equal(10, store.Count);
        for (int i = 0; i < 100; i++)
        {
            AsyncRequestRecord? record = await store.GetAsync(ids[i]);
            Assert.Equal(i >= 90 ? i.ToString(System.Globalization.CultureInfo.InvariantCulture) : null, record?.ResultJson);
        }
    }

    [Fact]
    public async Task LaneOutcomes_NobodyReads_ExpireOnTime()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        (LiveRequest first, _) = await FinishTwoADayApartAsync(table);

        Time.Advance(Retention - TimeSpan.FromDays(1));
        Assert.Equal((1, 1), (await store.RemoveExpiredAsync(), store.Count)); // the scan moves outcomes in, then removes what expired
        Assert.Equal(AsyncRequestState.NotFound, (await table.ReadAsync(first.Id, default)).Status.State);

        Time.Advance(TimeSpan.FromDays(1)); // the scan set the timer for the second
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public async Task LaneOutcome_MovedInAfterALaterOne_AReadAfterItsExpiryFindsNothing()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        (LiveRequest early, LiveRequest late) = await FinishTwoADayApartAsync(table);
        Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(late.Id, default)).Status.State); // moved in first
        Time.Advance(TimeSpan.FromHours(1));
        Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(early.Id, default)).Status.State); // then the earlier one

        Time.Advance(Retention - TimeSpan.FromDays(1) - TimeSpan.FromHours(1)); // the early one's expiry
        Assert.Equal(AsyncRequestState.NotFound, (await table.ReadAsync(early.Id, default)).Status.State);
        Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(late.Id, default)).Status.State);
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public async Task CancelOfAQueuedRequest_RacingItsFinish_ExactlyOneEndsIt()
    {
        for (int i = 0; i < 500; i++)
        {
            await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
            IAsyncRequestTable table = store;
            var request = new LiveRequest(null, "application/json", "{}"u8.ToArray(), Time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
            Assert.True(await table.TryAddAsync(request, default));
            using var go = new Barrier(2);
            Task<bool> cancel = Task.Run(async () =>
            {
                go.SignalAndWait();
                return await table.TryFailQueuedAsync(request.Id, "cancelled", Time.GetUtcNow(), default);
            });
            go.SignalAndWait();
            bool finished = await table.TryFinishAsync(request, null, "abandoned", Time.GetUtcNow()); // as a stopping API does with a request that never ran
            bool cancelled = await cancel.WaitAsync(TimeSpan.FromSeconds(10));

            Assert.NotEqual(finished, cancelled);
            Assert.True(request.IsDone);
            Assert.Equal(cancelled ? "cancelled" : "abandoned", (await table.ReadAsync(request.Id, default)).Status.Error);
        }
    }

    [Fact]
    public async Task UnsettledQueue_BehindALongRunningRequest_StaysBounded()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 100, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        LiveRequest running = await AddStartedAsync(table); // never finishes: always the oldest item
        for (int i = 0; i < 5_000; i++)
        {
            LiveRequest request = await AddFinishedAsync(table, "1");
            Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(request.Id, default)).Status.State); // read: its item goes stale behind the running one
            Assert.InRange(store.LiveRequestCount, 1, (2 * store.Count) + 65);
        }

        Assert.Equal(AsyncRequestState.InProgress, (await table.ReadAsync(running.Id, default)).Status.State);
    }

    [Fact]
    public async Task Full_RunningRequestsAheadOfUnreadOutcomes_SettlesFurtherBackAndFindsRoom()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 600, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        var running = new List<LiveRequest>();
        for (int i = 0; i < 300; i++)
        {
            running.Add(await AddStartedAsync(table)); // more than the 256 oldest live requests a full add looks at
        }

        var finished = new List<LiveRequest>();
        for (int i = 0; i < 300; i++)
        {
            finished.Add(await AddFinishedAsync(table, i.ToString(System.Globalization.CultureInfo.InvariantCulture))); // never read
        }

        LiveRequest extra = await AddStartedAsync(table); // full: the oldest unread outcome makes room
        Assert.Equal(600, store.Count);
        Assert.Equal(AsyncRequestState.NotFound, (await table.ReadAsync(finished[0].Id, default)).Status.State);
        Assert.Equal("1", (await table.ReadAsync(finished[1].Id, default)).Status.ResultJson);
        Assert.All(running, r => Assert.False(r.IsDone));
        Assert.Equal(AsyncRequestState.InProgress, (await table.ReadAsync(extra.Id, default)).Status.State);
    }

    [Fact]
    public async Task ManyPages_EveryRequestReadsBack_AfterEvictionsAndReuseAcrossPages()
    {
        const int max = 2_500; // the table grows a page (1,024 slots) at a time
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = max, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        var ids = new List<string>();
        for (int i = 0; i < 2 * max; i++)
        {
            LiveRequest request = await AddFinishedAsync(table, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            ids.Add(request.Id);
        }

        Assert.Equal(max, store.Count);
        for (int i = 0; i < 2 * max; i++)
        {
            AsyncRequestStatus status = (await table.ReadAsync(ids[i], default)).Status;
            Assert.Equal(i >= max ? i.ToString(System.Globalization.CultureInfo.InvariantCulture) : null, status.ResultJson);
        }
    }

    /// <summary>Adds a request, starts it and finishes it now as its lane would (the outcome left on the live request).</summary>
    private async Task<LiveRequest> AddFinishedAsync(IAsyncRequestTable table, string result)
    {
        LiveRequest request = await AddStartedAsync(table);
        Assert.True(await table.TryFinishAsync(request, result, null, Time.GetUtcNow()));
        return request;
    }

    /// <summary>Two requests their lanes finished a day apart (results "1" and "2"), neither read; the clock is left at the second.</summary>
    private async Task<(LiveRequest First, LiveRequest Second)> FinishTwoADayApartAsync(IAsyncRequestTable table)
    {
        LiveRequest first = await AddFinishedAsync(table, "1");
        Time.Advance(TimeSpan.FromDays(1));
        return (first, await AddFinishedAsync(table, "2"));
    }

    private async Task<LiveRequest> AddStartedAsync(IAsyncRequestTable table)
    {
        var request = new LiveRequest(null, "application/json", "{}"u8.ToArray(), Time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
        Assert.True(await table.TryAddAsync(request, default));
        Assert.True(await table.TryStartAsync(request, Time.GetUtcNow()));
        return request;
    }

    private async Task<string> AddAndCompleteAsync(IAsyncRequestTable table, string result)
    {
        var request = new LiveRequest(null, "application/json", "{}"u8.ToArray(), Time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
        Assert.True(await table.TryAddAsync(request, default));
        Assert.True(await table.TryFinishAsync(request, result, null, Time.GetUtcNow()));
        return request.Id;
    }

    [Fact]
    public async Task Expiry_ResultsAreRemovedWhenTheyExpire_AndTheTimerFollowsTheOldestLeft()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        string first = await AddAndCompleteAsync(table, "1");
        Time.Advance(TimeSpan.FromDays(1));
        string second = await AddAndCompleteAsync(table, "2");

        Time.Advance(Retention - TimeSpan.FromDays(1) - TimeSpan.FromTicks(1));
        Assert.Equal((2, AsyncRequestState.Completed), (store.Count, (await table.ReadAsync(first, default)).Status.State));

        Time.Advance(TimeSpan.FromTicks(1)); // the first expires: removed, not just hidden
        Assert.Equal((1, AsyncRequestState.NotFound), (store.Count, (await table.ReadAsync(first, default)).Status.State));
        Assert.Equal(AsyncRequestState.Completed, (await table.ReadAsync(second, default)).Status.State);

        Time.Advance(TimeSpan.FromDays(1)); // then the second, a day later
        Assert.Equal((0, AsyncRequestState.NotFound), (store.Count, (await table.ReadAsync(second, default)).Status.State));

        // Empty again: the next result sets the timer anew; a request still queued never expires.
        string third = await AddAndCompleteAsync(table, "3");
        var queued = new LiveRequest(null, "application/json", "{}"u8.ToArray(), Time.GetUtcNow(), AsyncRequestState.InQueue, recovered: false);
        Assert.True(await table.TryAddAsync(queued, default));
        Time.Advance(Retention);
        Assert.Equal(AsyncRequestState.NotFound, (await table.ReadAsync(third, default)).Status.State);
        Assert.Equal((1, AsyncRequestState.InQueue), (store.Count, (await table.ReadAsync(queued.Id, default)).Status.State));
    }

    [Fact]
    public async Task Expiry_OldestEvictedFirst_TimerFiresEarlyAndMovesOn()
    {
        await using var store = new InMemoryAsyncResultStore(new AsyncResultStoreOptions { MaxEntries = 2, TimeProvider = Time, Retention = Retention });
        IAsyncRequestTable table = store;
        await AddAndCompleteAsync(table, "1"); // the timer is set for this one
        Time.Advance(TimeSpan.FromDays(1));
        string second = await AddAndCompleteAsync(table, "2");
        string third = await AddAndCompleteAsync(table, "3"); // evicts the first

        Time.Advance(Retention - TimeSpan.FromDays(1)); // the first's time: nothing of it left to remove
        Assert.Equal(2, store.Count);
        Time.Advance(TimeSpan.FromDays(1));
        Assert.Equal(0, store.Count);
        Assert.Equal((AsyncRequestState.NotFound, AsyncRequestState.NotFound), ((await table.ReadAsync(second, default)).Status.State, (await table.ReadAsync(third, default)).Status.State));
    }

    [Fact]
    public void Expiry_TimerSetOnTheSystemClock_DoesNotKeepAnUndisposedStoreAlive()
    {
        WeakReference<InMemoryAsyncResultStore> store = AbandonStoreWithAResult();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.False(store.TryGetTarget(out _));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference<InMemoryAsyncResultStore> AbandonStoreWithAResult()
    {
        var store = new InMemoryAsyncResultStore(); // the system clock: its expiry timer is set for 7 days
        IAsyncRequestTable table = store;
        var request = new LiveRequest(null, "application/json", "{}"u8.ToArray(), DateTimeOffset.UtcNow, AsyncRequestState.InQueue, recovered: false);
        ValueTask<bool> added = table.TryAddAsync(request, default);
        Assert.True(added.IsCompletedSuccessfully && added.Result);
        ValueTask<bool> finished = table.TryFinishAsync(request, "1", null, DateTimeOffset.UtcNow);
        Assert.True(finished.IsCompletedSuccessfully && finished.Result);
        return new WeakReference<InMemoryAsyncResultStore>(store);
    }
}
