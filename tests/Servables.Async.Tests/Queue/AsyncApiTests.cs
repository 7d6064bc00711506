using Servables.Testing;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Servables.Async.Tests.Queue;

/// <summary>The API end to end over the in-memory store (which keeps live requests itself); <see cref="AsyncApiOverAnyStoreTests"/> runs every test again over a plain <see cref="IAsyncResultStore"/>.</summary>
public class AsyncApiTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    /// <summary>Chooses the store of every API these tests start; the default in-memory store unless overridden.</summary>
    protected virtual void UseStore(AsyncApiOptions options)
    {
    }

    /// <summary>Whether the ids the API makes begin with the time in milliseconds (48 bits; for every store but the in-memory one, whose ids are its own).</summary>
    protected virtual bool IdsBeginWithTheTime => false;

    /// <summary>The 128 bits of an id the API made: every store's are 16 bytes in base64url (the in-memory store's carry their slot mixed into the random bits).</summary>
    private static (ulong Low, ulong High) RandomBitsOf(string id)
    {
        Assert.Equal(22, id.Length);
        byte[] bytes = System.Buffers.Text.Base64Url.DecodeFromChars(id);
        Assert.Equal(16, bytes.Length);
        return (BitConverter.ToUInt64(bytes, 0), BitConverter.ToUInt64(bytes, 8));
    }

    private Task<AsyncHost> StartEchoAsync(Action<AsyncApiOptions>? configure = null, FakeTimeProvider? time = null) =>
        AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>(o =>
        {
            o.Config["greeting"] = "hello";
            UseStore(o);
            configure?.Invoke(o);
        }), time);

    [Fact]
    public async Task SubmitJson_RoundTrip_CompletesWithResult()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();

        string id = await client.SubmitJsonAsync(new { x = 41 });
        AsyncRequestStatus done = await client.WaitForCompletionAsync(id, Wait);

        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("completed", done.Status);
        JsonElement result = done.Result!.Value;
        Assert.Equal("Json", result.GetProperty("kind").GetString());
        Assert.Equal(41, result.GetProperty("json").GetProperty("x").GetInt32());
        Assert.Equal("hello", result.GetProperty("greeting").GetString());
        Assert.Equal("default", result.GetProperty("api").GetString());
        Assert.Equal(id, result.GetProperty("id").GetString());
        Assert.NotNull(done.Timestamp);
        Assert.Equal(done, await client.GetStatusAsync(id));
    }

    [Fact]
    public async Task Submit_TextAndBytes_DecodedByContentType()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();

        string text = await client.SubmitAsync(Encoding.Latin1.GetBytes("café"), "text/plain; charset=iso-8859-1");
        string bytes = await client.SubmitAsync(new byte[] { 1, 2, 3 }, "application/octet-stream");

        JsonElement textResult = (await client.WaitForCompletionAsync(text, Wait)).Result!.Value;
        JsonElement bytesResult = (await client.WaitForCompletionAsync(bytes, Wait)).Result!.Value;
        Assert.Equal("café", textResult.GetProperty("text").GetString());
        Assert.Equal("Bytes", bytesResult.GetProperty("kind").GetString());
        Assert.Equal(3, bytesResult.GetProperty("bytes").GetInt32());
    }

    [Theory]
    [InlineData("text/plain; charset=utf-16", new byte[] { 0xFE, 0xFF, 0x00, 0x68, 0x00, 0xE9, 0x65, 0xE5 })] // big-endian BOM: what Java's UTF-16 encoder writes
    [InlineData("text/plain; charset=utf-16", new byte[] { 0xFF, 0xFE, 0x68, 0x00, 0xE9, 0x00, 0xE5, 0x65 })] // little-endian BOM
    [InlineData("text/plain; charset=utf-16", new byte[] { 0x68, 0x00, 0xE9, 0x00, 0xE5, 0x65 })] // no BOM: little-endian, as before
    [InlineData("text/plain; charset=UTF-16BE", new byte[] { 0x00, 0x68, 0x00, 0xE9, 0x65, 0xE5 })]
    [InlineData("text/plain; charset=utf-16le", new byte[] { 0x68, 0x00, 0xE9, 0x00, 0xE5, 0x65 })]
    public async Task Submit_Utf16Text_ByteOrderMarkDecidesTheOrder_MarkNotInText(string contentType, byte[] body)
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();

        AsyncRequestStatus done = await client.WaitForCompletionAsync(await client.SubmitAsync(body, contentType), Wait);

        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("h\u00e9\u65e5", done.Result!.Value.GetProperty("text").GetString());
    }

    [Fact]
    public async Task RequestIds_AreUrlSafe128Bit_RandomButForTheTimeTheyMayBeginWith()
    {
        long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await using AsyncHost host = await StartEchoAsync();
        var ids = new HashSet<string>();
        for (int i = 0; i < 50; i++)
        {
            ids.Add(await host.Client().SubmitTextAsync("x"));
        }

        Assert.Equal(50, ids.Count);
        var keys = new HashSet<(ulong, ulong)>();
        Assert.All(ids, id =>
        {
            Assert.True(AsyncRequestIds.IsWellFormed(id));
            Assert.True(keys.Add(RandomBitsOf(id)));
        });

        // 50 random keys: each random bit position is set in some key and clear in another; time-led ids carry
        // the milliseconds of their making (big-endian) in their first 6 bytes, and 80 random bits after them.
        ulong randomLow = IdsBeginWithTheTime ? 0xFFFF_0000_0000_0000UL : ulong.MaxValue;
        ulong lowOr = 0, lowAnd = ulong.MaxValue, highOr = 0, highAnd = ulong.MaxValue;
        foreach ((ulong low, ulong high) in keys)
        {
            (lowOr, lowAnd, highOr, highAnd) = (lowOr | (low & randomLow), lowAnd & (low | ~randomLow), highOr | high, highAnd & high);
        }

        Assert.Equal((randomLow, ~randomLow, ulong.MaxValue, 0UL), (lowOr, lowAnd, highOr, highAnd));
        if (IdsBeginWithTheTime)
        {
            long after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            Assert.All(ids, id =>
            {
                byte[] bytes = System.Buffers.Text.Base64Url.DecodeFromChars(id);
                long made = ((long)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(bytes) << 32) | System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2));
                Assert.InRange(made, before, after);
            });
        }
    }

    [Fact]
    public async Task CallerRequestId_AcceptedWhenWellFormed_RejectedWhenNotOrUsed()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();

        Assert.Equal("order-42.v1", await client.SubmitTextAsync("x", "order-42.v1"));
        AsyncRequestRejectedException used = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitTextAsync("y", "order-42.v1"));
        Assert.Contains("already exists", used.Message, StringComparison.Ordinal);
        AsyncRequestRejectedException bad = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitTextAsync("y", "has space"));
        Assert.Contains("malformed", bad.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitTextAsync("y", new string('a', 129)));
    }

    [Theory]
    [InlineData("", "application/json", "empty")]
    [InlineData("{}", "", "Content-Type is missing")]
    [InlineData("{}", "nonsense", "cannot be parsed")]
    public async Task Submit_KnownBad_RejectedAtOnce(string body, string contentType, string expected)
    {
        await using AsyncHost host = await StartEchoAsync();
        AsyncRequestRejectedException error = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await host.Client().SubmitAsync(Encoding.UTF8.GetBytes(body), contentType));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Submit_ContentTypeOverMaxLength_RejectedWithoutEchoingIt()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string longest = "text/plain; charset=utf-8; p=" + new string('a', AsyncApiOptions.MaxContentTypeLength - 29);
        string tooLong = longest + "a";

        AsyncRequestRejectedException error = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitAsync("x"u8.ToArray(), tooLong, "too-long"));

        Assert.Contains($"longer than {AsyncApiOptions.MaxContentTypeLength} characters", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(new string('a', 100), error.Message, StringComparison.Ordinal);
        Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync("too-long")).State);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitAsync("x"u8.ToArray(), longest), Wait)).State);
    }

    [Theory]
    [InlineData("text/plain\r\nX-Injected: yes")]
    [InlineData("text/plain; charset=utf-8\n")]
    [InlineData("application/octet-stream; name=\"a\u0007b\"")]
    [InlineData("application/octet-stream; name=\"a\u0085b\"")]
    public async Task Submit_ContentTypeWithControlCharacters_RejectedAndNotEchoed(string contentType)
    {
        await using AsyncHost host = await StartEchoAsync();

        AsyncRequestRejectedException error = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await host.Client().SubmitAsync("x"u8.ToArray(), contentType));

        Assert.DoesNotContain(error.Message, char.IsControl);
        Assert.Contains("control character", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Submit_MalformedRequestIdWithLineBreaks_MessageHasNoControlCharacters()
    {
        await using AsyncHost host = await StartEchoAsync();
        AsyncRequestRejectedException error = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await host.Client().SubmitTextAsync("x", "id\r\nX-Injected: yes"));
        Assert.Contains("malformed", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(error.Message, char.IsControl);
    }

    [Fact]
    public async Task Submit_OverSizeLimit_Rejected()
    {
        await using AsyncHost host = await StartEchoAsync(o => o.MaxPayloadBytes = 8);
        AsyncRequestRejectedException error = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await host.Client().SubmitTextAsync("123456789"));
        Assert.Contains("more than MaxPayloadBytes (8)", error.Message, StringComparison.Ordinal);
        Assert.NotNull(await host.Client().SubmitTextAsync("12345678"));
    }

    [Fact]
    public async Task Submit_QueueFull_ThrowsRetryable_NothingStored_ThenAcceptsAgain()
    {
        await using AsyncHost host = await StartEchoAsync(o => o.QueueCapacity = 2);
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        string q1 = await client.SubmitTextAsync("a");
        string q2 = await client.SubmitTextAsync("b");

        AsyncQueueFullException full = await Assert.ThrowsAsync<AsyncQueueFullException>(async () => await client.SubmitTextAsync("c", "rejected-one"));
        Assert.Equal(2, full.Capacity);
        Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync("rejected-one")).State);
        Assert.Equal(AsyncRequestState.InQueue, (await client.GetStatusAsync(q1)).State);

        host.Probe.Gate.SetResult();
        foreach (string id in new[] { running, q1, q2 })
        {
            Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
        }

        Assert.NotNull(await client.SubmitTextAsync("d"));
    }

    [Theory]
    [InlineData("text/plain", "throw", "The handler threw InvalidOperationException: handler bug")]
    [InlineData("text/plain", "cycle", "cannot be serialised to JSON")]
    [InlineData("text/plain", "func", "cannot be serialised to JSON")]
    [InlineData("text/plain", "generic", "The handler's result (List<Func<Int32>>) cannot be serialised to JSON")]
    [InlineData("application/json", "{not json", "The body is not valid JSON")]
    [InlineData("text/plain; charset=klingon", "x", "'klingon' is not supported")]
    [InlineData("text/plain; charset=us-ascii", "caf\u00e9", "not valid us-ascii")]
    public async Task BadRequest_Fails_WorkerKeepsServing(string contentType, string body, string expectedError)
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();

        string bad = await client.SubmitAsync(Encoding.UTF8.GetBytes(body), contentType);
        string good = await client.SubmitTextAsync("fine");

        AsyncRequestStatus failed = await client.WaitForCompletionAsync(bad, Wait);
        Assert.Equal(AsyncRequestState.Failed, failed.State);
        Assert.Equal("failed", failed.Status);
        Assert.Contains(expectedError, failed.Error, StringComparison.Ordinal);
        Assert.Null(failed.ResultJson);
        Assert.Throws<InvalidOperationException>(() => failed.GetResult<object>());
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(good, Wait)).State);
    }

    [Fact]
    public async Task Deadline_Exceeded_FailsAndNextRequestRuns()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartEchoAsync(o => o.RequestTimeout = TimeSpan.FromSeconds(30), time);
        IAsyncApiClient client = host.Client();
        string slow = await client.SubmitTextAsync("slow");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(slow)).State == AsyncRequestState.InProgress);

        // In progress comes first, then the lane arms the deadline's timer on the fake clock, then calls the handler:
        // move the clock only once the handler runs, or the timer is set after the move and never fires.
        await Eventually.WaitUntilAsync(() => host.Probe.StartedIds.Contains(slow));
        time.Advance(TimeSpan.FromSeconds(30));

        AsyncRequestStatus failed = await client.WaitForCompletionAsync(slow, Wait);
        Assert.Contains("exceeded its deadline of 00:00:30", failed.Error, StringComparison.Ordinal);
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(await client.SubmitTextAsync("next"), Wait)).State);
    }

    [Fact]
    public async Task Timestamps_QueuedRunningAndFinished_ReadTheClockWhenEachBegan()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero));
        DateTimeOffset start = time.GetUtcNow();
        await using AsyncHost host = await StartEchoAsync(time: time);
        IAsyncApiClient client = host.Client();

        string first = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(first)).State == AsyncRequestState.InProgress);
        time.Advance(TimeSpan.FromMinutes(1));
        string second = await client.SubmitTextAsync("gate"); // queued behind the first
        time.Advance(TimeSpan.FromMinutes(1));

        AsyncRequestStatus running = await client.GetStatusAsync(first);
        AsyncRequestStatus queued = await client.GetStatusAsync(second);
        Assert.Equal((AsyncRequestState.InProgress, start), (running.State, running.Timestamp));
        Assert.Equal((AsyncRequestState.InQueue, start.AddMinutes(1)), (queued.State, queued.Timestamp));

        host.Probe.Gate.SetResult();
        AsyncRequestStatus firstDone = await client.WaitForCompletionAsync(first, Wait);
        AsyncRequestStatus secondDone = await client.WaitForCompletionAsync(second, Wait);
        Assert.Equal((AsyncRequestState.Completed, start.AddMinutes(2)), (firstDone.State, firstDone.Timestamp));
        Assert.Equal((AsyncRequestState.Completed, start.AddMinutes(2)), (secondDone.State, secondDone.Timestamp));
    }

    [Fact]
    public async Task Cancel_QueuedAndRunning_BothFail_FinishedReturnsFalse()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("slow");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        string queued = await client.SubmitTextAsync("never runs");

        Assert.True(await client.CancelAsync(queued));
        Assert.True(await client.CancelAsync(running));

        Assert.Contains("before it ran", (await client.WaitForCompletionAsync(queued, Wait)).Error, StringComparison.Ordinal);
        Assert.Contains("while it ran", (await client.WaitForCompletionAsync(running, Wait)).Error, StringComparison.Ordinal);
        Assert.False(await client.CancelAsync(queued));
        Assert.False(await client.CancelAsync("unknown"));
        string next = await client.SubmitTextAsync("after");
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(next, Wait)).State);
        Assert.DoesNotContain(queued, host.Probe.StartedIds);
    }

    [Fact]
    public async Task Cancel_OfAFinishedRequest_NeverReachesTheLanesNextRequest()
    {
        // Without a deadline a lane reuses its cancellation source from one request to the next:
        // cancelling a request that has finished must not cancel the one that runs now.
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string done = await client.SubmitTextAsync("first");
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(done, Wait)).State);
        string running = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);

        Assert.False(await client.CancelAsync(done));
        host.Probe.Gate.SetResult();

        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(running, Wait)).State);
    }

    [Fact]
    public async Task Cancel_RacingTheWorkers_NeverRunsACancelledRequest_NeverLosesOne()
    {
        // Both lanes are held while 300 requests queue; every third is cancelled then (it must never
        // run), then the lanes are let go while every other third is cancelled at the same moment:
        // a cancel that wins must keep its request from running, one that loses must not fail it
        // as "before it ran".
        await using AsyncHost host = await StartEchoAsync(o => (o.WorkerCount, o.QueueCapacity) = (2, 1_000));
        IAsyncApiClient client = host.Client();
        string[] blockers = [await client.SubmitTextAsync("gate"), await client.SubmitTextAsync("gate")];
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(blockers[1])).State == AsyncRequestState.InProgress
            && (await client.GetStatusAsync(blockers[0])).State == AsyncRequestState.InProgress);
        var ids = new string[300];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = await client.SubmitTextAsync($"r{i}");
        }

        for (int i = 0; i < ids.Length; i += 3)
        {
            Assert.True(await client.CancelAsync(ids[i]));
        }

        host.Probe.Gate.SetResult();
        bool[] raced = await Task.WhenAll(Enumerable.Range(0, ids.Length).Where(i => i % 3 == 1).Select(i => Task.Run(async () => await client.CancelAsync(ids[i]))));

        for (int i = 0; i < ids.Length; i++)
        {
            AsyncRequestStatus done = await client.WaitForCompletionAsync(ids[i], Wait);
            bool ran = host.Probe.StartedIds.Contains(ids[i]);
            if (i % 3 == 0)
            {
                Assert.Equal((AsyncRequestState.Failed, "Cancelled by the caller before it ran.", false), (done.State, done.Error, ran));
            }
            else if (done.State == AsyncRequestState.Failed)
            {
                Assert.True(i % 3 == 1 && raced[i / 3], $"{ids[i]} failed without a cancel: {done.Error}");
                Assert.Equal(ran ? "Cancelled by the caller while it ran." : "Cancelled by the caller before it ran.", done.Error);
            }
            else
            {
                Assert.Equal(AsyncRequestState.Completed, done.State);
                Assert.True(ran, $"{ids[i]} completed without running");
            }
        }
    }

    [Fact]
    public async Task Status_UnknownOrMalformedId_NotFound()
    {
        await using AsyncHost host = await StartEchoAsync();
        AsyncRequestStatus unknown = await host.Client().GetStatusAsync("no-such-id");
        Assert.Equal(("not_found", (DateTimeOffset?)null), (unknown.Status, unknown.Timestamp));
        Assert.Equal(AsyncRequestState.NotFound, (await host.Client().GetStatusAsync("bad id!")).State);
        Assert.Equal(AsyncRequestState.NotFound, (await host.Client().WaitForCompletionAsync("no-such-id", Wait)).State);
    }

    [Fact]
    public async Task WaitForCompletionAsync_Timeout_ThrowsNamingStatus()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartEchoAsync(time: time);
        IAsyncApiClient client = host.Client();
        string id = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(id)).State == AsyncRequestState.InProgress);

        Task<AsyncRequestStatus> wait = client.WaitForCompletionAsync(id, TimeSpan.FromMinutes(1)).AsTask();
        Assert.False(wait.IsCompleted); // the request is held at the gate: only the timeout can end the wait

        // The wait sets its timer on the fake clock when it starts waiting; step the clock until it fires.
        await Eventually.WaitUntilAsync(() =>
        {
            time.Advance(TimeSpan.FromSeconds(20));
            return wait.IsCompleted;
        });

        TimeoutException error = await Assert.ThrowsAsync<TimeoutException>(() => wait);
        Assert.Contains("in_progress", error.Message, StringComparison.Ordinal);
        host.Probe.Gate.SetResult();
        Assert.Equal(AsyncRequestState.Completed, (await client.WaitForCompletionAsync(id, Wait)).State);
    }

    [Fact]
    public async Task WaitForCompletionAsync_RequestOfAnotherProcess_PollsTheStoreUntilItFinishes()
    {
        // A store shared with another process holds a request this API never accepted.
        var shared = new InMemoryAsyncResultStore();
        await using AsyncHost host = await StartEchoAsync(o => o.StoreFactory = (_, _) => shared);
        IAsyncApiClient client = host.Client();
        DateTimeOffset now = DateTimeOffset.UtcNow;
        await shared.TryAddAsync(new AsyncRequestRecord { Id = "elsewhere", State = AsyncRequestState.InQueue, ContentType = "text/plain", Payload = "x"u8.ToArray(), SubmittedAt = now, UpdatedAt = now });

        TimeoutException early = await Assert.ThrowsAsync<TimeoutException>(() => client.WaitForCompletionAsync("elsewhere", TimeSpan.FromMilliseconds(50)).AsTask());
        Assert.Contains("in_queue", early.Message, StringComparison.Ordinal);

        // The call read the request queued before it returned; nothing but the store's completion ends the wait.
        Task<AsyncRequestStatus> wait = client.WaitForCompletionAsync("elsewhere", Wait).AsTask();
        Assert.False(wait.IsCompleted);
        await shared.TryCompleteAsync("elsewhere", "42", DateTimeOffset.UtcNow);

        AsyncRequestStatus done = await wait;
        Assert.Equal((AsyncRequestState.Completed, "42"), (done.State, done.ResultJson));
    }

    [Fact]
    public async Task WaitForCompletionAsync_ManyWaitersOnOneRequest_AllSeeTheSameResult()
    {
        await using AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string id = await client.SubmitTextAsync("gate");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(id)).State == AsyncRequestState.InProgress);

        // The request is held at the gate: no wait may end before it is let through.
        Task<AsyncRequestStatus>[] waits = [.. Enumerable.Range(0, 8).Select(_ => client.WaitForCompletionAsync(id, Wait).AsTask())];
        Assert.All(waits, w => Assert.False(w.IsCompleted));
        host.Probe.Gate.SetResult();

        AsyncRequestStatus[] done = await Task.WhenAll(waits);
        Assert.All(done, d => Assert.Equal(done[0], d));
        Assert.Equal(AsyncRequestState.Completed, done[0].State);
        Assert.Equal(done[0], await client.GetStatusAsync(id));
    }

    [Fact]
    public async Task Retention_CountsFromCompletion_ThenNotFound()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartEchoAsync(time: time);
        IAsyncApiClient client = host.Client();
        string id = await client.SubmitTextAsync("x");
        await client.WaitForCompletionAsync(id, Wait);

        time.Advance(TimeSpan.FromDays(7) - TimeSpan.FromSeconds(1));
        Assert.Equal(AsyncRequestState.Completed, (await client.GetStatusAsync(id)).State);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync(id)).State);
    }

    [Fact]
    public async Task Retention_ResultsNobodyRead_ExpireToo()
    {
        var time = new FakeTimeProvider();
        await using AsyncHost host = await StartEchoAsync(time: time);
        IAsyncApiClient client = host.Client();
        var ids = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            ids.Add(await client.SubmitTextAsync("x"));
        }

        await client.WaitForCompletionAsync(ids[^1], Wait); // one lane: the four before it finished first, unread

        time.Advance(TimeSpan.FromDays(7));
        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.NotFound, (await client.GetStatusAsync(id)).State);
        }
    }

    [Fact]
    public async Task ResultsNobodyReads_StayWithinMaxStoredRequests_TheNewestKept()
    {
        await using AsyncHost host = await StartEchoAsync(o => o.MaxStoredRequests = 20);
        IAsyncApiClient client = host.Client();
        var ids = new List<string>();
        for (int i = 0; i < 200; i++)
        {
            ids.Add(await client.SubmitJsonAsync(new { i }));
            if (i % 10 == 9)
            {
                await client.WaitForCompletionAsync(ids[^1], Wait); // one lane: the nine before it finished first, and nobody reads them
            }
        }

        AsyncRequestStatus[] statuses = [.. await Task.WhenAll(ids.Select(id => client.GetStatusAsync(id).AsTask()))];
        Assert.InRange(statuses.Count(s => s.State != AsyncRequestState.NotFound), 10, 20);
        Assert.All(statuses[..100], s => Assert.Equal(AsyncRequestState.NotFound, s.State));
        Assert.All(statuses[190..], s => Assert.Equal(AsyncRequestState.Completed, s.State));
        Assert.All(statuses.Where(s => s.State != AsyncRequestState.NotFound), s => Assert.NotNull(s.ResultJson));
    }

    [Fact]
    public async Task ManyWorkersAndConcurrency_AllRequestsComplete()
    {
        await using AsyncHost host = await StartEchoAsync(o => (o.WorkerCount, o.MaxConcurrencyPerWorker) = (3, 4));
        IAsyncApiClient client = host.Client();
        string[] ids = await Task.WhenAll(Enumerable.Range(0, 300).Select(i => client.SubmitJsonAsync(new { i }).AsTask()));
        AsyncRequestStatus[] done = await Task.WhenAll(ids.Select(id => client.WaitForCompletionAsync(id, Wait).AsTask()));
        Assert.All(done, d => Assert.Equal(AsyncRequestState.Completed, d.State));
        Assert.Equal(Enumerable.Range(0, 300), done.Select(d => d.Result!.Value.GetProperty("json").GetProperty("i").GetInt32()).Order());
    }

    [Fact]
    public async Task Chaining_HandlerCallsAnotherApi()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s
            .AddAsyncHandler<EchoHandler>("echo", o => o.Config["greeting"] = "from echo")
            .AddAsyncHandler<ChainHandler>("chain"));
        IAsyncApiClient chain = host.Client("chain");

        string id = await chain.SubmitTextAsync("abc");
        AsyncRequestStatus done = await chain.WaitForCompletionAsync(id, Wait);

        Assert.Equal(AsyncRequestState.Completed, done.State);
        Assert.Equal("ABC", done.Result!.Value.GetProperty("upper").GetString());
        Assert.Equal("from echo", done.Result!.Value.GetProperty("inner").GetString());
        Assert.Equal(AsyncRequestState.Completed, (await host.Client("echo").GetStatusAsync($"{id}-inner")).State);
    }

    [Fact]
    public async Task Shutdown_FinishesQueuedWorkWithinTimeout()
    {
        AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string[] ids = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => client.SubmitTextAsync($"r{i}").AsTask()));
        IAsyncResultStore store = host.Host.Services.GetRequiredKeyedService<AsyncApi>(AsyncApiOptions.DefaultName).Store;

        using (var within = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            await host.Host.StopAsync(within.Token);
        }

        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.Completed, (await store.GetAsync(id))!.State);
        }

        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitTextAsync("late"));
        await host.DisposeAsync();
    }

    [Fact]
    public async Task Shutdown_OutOfTime_InMemoryRequestsFailClearly()
    {
        AsyncHost host = await StartEchoAsync();
        IAsyncApiClient client = host.Client();
        string running = await client.SubmitTextAsync("slow");
        await Eventually.WaitUntilAsync(async () => (await client.GetStatusAsync(running)).State == AsyncRequestState.InProgress);
        string queued = await client.SubmitTextAsync("queued");
        IAsyncResultStore store = host.Host.Services.GetRequiredKeyedService<AsyncApi>(AsyncApiOptions.DefaultName).Store;

        using (var within = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await host.Host.StopAsync(within.Token);
        }

        Assert.Contains("host shut down", (await store.GetAsync(running))!.Error, StringComparison.Ordinal);
        Assert.Contains("host shut down", (await store.GetAsync(queued))!.Error, StringComparison.Ordinal);
        await host.DisposeAsync();
    }

}
