using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Servables.Testing;

namespace Servables.AspNetCore.Tests.Routing;

/// <summary>MapAsyncApi against a real Kestrel with HttpClient: every route and status code, Cortex's shapes field by field.</summary>
public sealed class MapAsyncApiTests
{
    [Fact]
    public async Task PostJson_Returns200WithTheId_AndGetGivesCortexShapeFieldByField()
    {
        await using KestrelHost host = await StartAsync();

        HttpResponseMessage posted = await host.Client.PostAsync("/probe", new StringContent("{\"a\":1}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        Assert.Equal("application/json", posted.Content.Headers.ContentType?.MediaType);
        using JsonDocument submit = JsonDocument.Parse(await posted.Content.ReadAsStringAsync());
        Assert.Equal(["id"], submit.RootElement.EnumerateObject().Select(p => p.Name));
        string id = submit.RootElement.GetProperty("id").GetString()!;

        JsonElement done = await PollAsync(host, id);
        Assert.Equal(["id", "status", "result", "timestamp"], done.EnumerateObject().Select(p => p.Name));
        Assert.Equal((id, "completed"), (done.GetProperty("id").GetString(), done.GetProperty("status").GetString()));
        JsonElement result = done.GetProperty("result");
        Assert.Equal(("Json", "application/json; charset=utf-8", 1), (result.GetProperty("kind").GetString(), result.GetProperty("contentType").GetString(), result.GetProperty("json").GetProperty("a").GetInt32()));
        Assert.True(DateTimeOffset.TryParse(done.GetProperty("timestamp").GetString(), out DateTimeOffset at) && at.Offset == TimeSpan.Zero);
        Assert.EndsWith("Z", done.GetProperty("timestamp").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task PostTextWithACharset_AndBytes_ReachTheHandlerUnchanged()
    {
        await using KestrelHost host = await StartAsync();
        var latin1 = new ByteArrayContent(Encoding.Latin1.GetBytes("café crème"));
        latin1.Headers.ContentType = MediaTypeHeaderValue.Parse("text/plain; charset=ISO-8859-1");
        byte[] bytes = RandomNumberGenerator.GetBytes(4096);
        var raw = new ByteArrayContent(bytes);
        raw.Headers.ContentType = new MediaTypeHeaderValue("application/x-custom");

        JsonElement text = (await PollAsync(host, await SubmitAsync(host, latin1))).GetProperty("result");
        JsonElement binary = (await PollAsync(host, await SubmitAsync(host, raw))).GetProperty("result");

        Assert.Equal(("Text", "text/plain; charset=ISO-8859-1", "café crème"), (text.GetProperty("kind").GetString(), text.GetProperty("contentType").GetString(), text.GetProperty("text").GetString()));
        Assert.Equal(("Bytes", "application/x-custom", 4096), (binary.GetProperty("kind").GetString(), binary.GetProperty("contentType").GetString(), binary.GetProperty("length").GetInt32()));
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)), binary.GetProperty("sha256").GetString());
    }

    [Fact]
    public async Task TenMegabyteBody_GoesThrough_AndOneOverTheLimitIs413WithOrWithoutContentLength()
    {
        await using KestrelHost host = await StartAsync(o => o.MaxPayloadBytes = 10_000_000);
        byte[] big = RandomNumberGenerator.GetBytes(10_000_000);
        var content = new ByteArrayContent(big);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        JsonElement result = (await PollAsync(host, await SubmitAsync(host, content))).GetProperty("result");
        Assert.Equal((10_000_000, Convert.ToHexString(SHA256.HashData(big))), (result.GetProperty("length").GetInt32(), result.GetProperty("sha256").GetString()));

        var over = new ByteArrayContent(new byte[10_000_001]);
        over.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        await AssertProblemAsync(await host.Client.PostAsync("/probe", over), HttpStatusCode.RequestEntityTooLarge, "MaxPayloadBytes");

        var chunked = new StreamContent(new UnknownLengthStream(10_000_001)); // no Content-Length: refused once the limit is passed
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        await AssertProblemAsync(await host.Client.PostAsync("/probe", chunked), HttpStatusCode.RequestEntityTooLarge, "MaxPayloadBytes");
    }

    [Fact]
    public async Task CallersMistakes_Are4xxProblemDetails_NeverA500()
    {
        await using KestrelHost host = await StartAsync();
        var noType = new ByteArrayContent("{}"u8.ToArray());
        await AssertProblemAsync(await host.Client.PostAsync("/probe", noType), HttpStatusCode.BadRequest, "Content-Type");

        await AssertProblemAsync(await PostWithIdAsync(host, "bad id!"), HttpStatusCode.BadRequest, "malformed");
        var badCharset = new ByteArrayContent("hello"u8.ToArray());
        badCharset.Headers.TryAddWithoutValidation("Content-Type", "text/plain; charset=no-such-charset");
        string unknownCharset = await SubmitAsync(host, badCharset); // accepted: the charset is the handler's to decode
        Assert.Equal("failed", (await PollAsync(host, unknownCharset)).GetProperty("status").GetString()); // and that request fails, saying why
        await AssertProblemAsync(await host.Client.PostAsync("/probe", new StringContent("", Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "empty");
        await AssertProblemAsync(await host.Client.GetAsync("/probe/" + Uri.EscapeDataString("a b")), HttpStatusCode.BadRequest, "not a request id");
        await AssertProblemAsync(await host.Client.DeleteAsync("/probe/" + Uri.EscapeDataString("a/b")), HttpStatusCode.BadRequest, "not a request id");

        HttpResponseMessage named = await PostWithIdAsync(host, "caller-1");
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
        Assert.Equal("{\"id\":\"caller-1\"}", await named.Content.ReadAsStringAsync());
        await AssertProblemAsync(await PostWithIdAsync(host, "caller-1"), HttpStatusCode.Conflict, "already exists");

        HttpResponseMessage unknown = await host.Client.GetAsync("/probe/nobody");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("{\"id\":\"nobody\",\"status\":\"not_found\"}", await unknown.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task FullQueue_Is429WithRetryAfter_AndDeleteCancelsQueuedAndRunning()
    {
        await using KestrelHost host = await StartAsync(o => o.QueueCapacity = 1);
        string running = await SubmitAsync(host, Json("{\"block\":\"linger\"}"));
        await Eventually.WaitUntilAsync(async () => (await GetAsync(host, running)).GetProperty("status").GetString() == "in_progress", what: "the blocking request running");
        string queued = await SubmitAsync(host, Json("{\"n\":2}"));

        HttpResponseMessage full = await host.Client.PostAsync("/probe", Json("{\"n\":3}"));
        await AssertProblemAsync(full, HttpStatusCode.TooManyRequests, "full");
        Assert.NotNull(full.Headers.RetryAfter);

        HttpResponseMessage cancelQueued = await host.Client.DeleteAsync($"/probe/{queued}");
        Assert.Equal(HttpStatusCode.OK, cancelQueued.StatusCode);
        Assert.Equal($"{{\"id\":\"{queued}\",\"status\":\"failed\",\"error\":\"Cancelled by the caller before it ran.\"}}", await cancelQueued.Content.ReadAsStringAsync());

        // The running request's handler is still winding down: the cancel is accepted, the request not ended yet.
        HttpResponseMessage cancelRunning = await host.Client.DeleteAsync($"/probe/{running}");
        Assert.Equal(HttpStatusCode.Accepted, cancelRunning.StatusCode);
        Assert.Equal($"{{\"id\":\"{running}\",\"status\":\"in_progress\"}}", await cancelRunning.Content.ReadAsStringAsync());
        ProbeHandler.Linger.TrySetResult();
        JsonElement cancelled = await PollAsync(host, running);
        Assert.Equal(("failed", "Cancelled by the caller while it ran."), (cancelled.GetProperty("status").GetString(), cancelled.GetProperty("error").GetString()));
        Assert.Equal(["id", "status", "error"], cancelled.EnumerateObject().Select(p => p.Name));

        await AssertProblemAsync(await host.Client.DeleteAsync($"/probe/{running}"), HttpStatusCode.Conflict, "nothing to cancel");
        Assert.Equal(HttpStatusCode.NotFound, (await host.Client.DeleteAsync("/probe/nobody")).StatusCode);
    }

    [Fact]
    public async Task StoreDown_Is503()
    {
        var store = new SwitchableStore();
        await using KestrelHost host = await StartAsync(o => o.StoreFactory = (_, options) => store.Open(options));
        store.Failing = true;

        await AssertProblemAsync(await host.Client.PostAsync("/probe", Json("{}")), HttpStatusCode.ServiceUnavailable, "store");
        await AssertProblemAsync(await host.Client.GetAsync("/probe/anyone"), HttpStatusCode.ServiceUnavailable, "store");
        store.Failing = false;
        Assert.Equal(HttpStatusCode.OK, (await host.Client.PostAsync("/probe", Json("{}"))).StatusCode);
    }

    [Fact]
    public async Task ConcurrentClients_EveryRequestCompletes()
    {
        await using KestrelHost host = await StartAsync(o => o.MaxConcurrencyPerWorker = 4);
        var ids = new ConcurrentBag<(int N, string Id)>();
        await Task.WhenAll(Enumerable.Range(0, 16).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < 20; i++)
            {
                int n = (c * 100) + i;
                ids.Add((n, await SubmitAsync(host, Json($"{{\"n\":{n}}}"))));
            }
        }))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(320, ids.Count);
        foreach ((int n, string id) in ids)
        {
            Assert.Equal(n, (await PollAsync(host, id)).GetProperty("result").GetProperty("json").GetProperty("n").GetInt32());
        }
    }

    [Fact]
    public async Task HostStopping_FinishesTheSubmitInFlight_AndRunsWhatItHolds()
    {
        KestrelHost host = await StartAsync();
        string running = await SubmitAsync(host, Json("{\"gate\":true}"));
        await Eventually.WaitUntilAsync(async () => (await GetAsync(host, running)).GetProperty("status").GetString() == "in_progress", what: "the gated request running");
        var slow = new HalfThenRestContent("{\"n\":7,\"pad\":\"" + new string('x', 1000) + "\"}");
        Task<HttpResponseMessage> inFlight = host.Client.PostAsync("/probe", slow);
        await slow.HalfSent.Task.WaitAsync(TimeSpan.FromSeconds(30));

        Task stopping = host.App.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token); // Kestrel stops taking connections, lets this request finish
        slow.SendRest.TrySetResult();
        HttpResponseMessage accepted = await inFlight.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        using JsonDocument submitted = JsonDocument.Parse(await accepted.Content.ReadAsStringAsync());
        string late = submitted.RootElement.GetProperty("id").GetString()!;

        ProbeHandler.Gate.TrySetResult();
        await stopping.WaitAsync(TimeSpan.FromSeconds(30)); // then the API drains what it holds before the host stops
        Assert.Contains(running, ProbeHandler.Finished);
        Assert.Contains(late, ProbeHandler.Finished);
        await host.DisposeAsync();
    }

    private static Task<KestrelHost> StartAsync(Action<AsyncApiOptions>? configure = null) => KestrelHost.StartAsync(
        services => services.AddAsyncHandler<ProbeHandler>("probe", o => configure?.Invoke(o)),
        app => app.MapAsyncApi("/probe", "probe"));

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<HttpResponseMessage> PostWithIdAsync(KestrelHost host, string id)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/probe") { Content = Json("{}") };
        request.Headers.TryAddWithoutValidation(AsyncApiEndpointRouteBuilderExtensions.RequestIdHeader, id);
        return await host.Client.SendAsync(request);
    }

    private static async Task<string> SubmitAsync(KestrelHost host, HttpContent content)
    {
        HttpResponseMessage posted = await host.Client.PostAsync("/probe", content);
        string body = await posted.Content.ReadAsStringAsync();
        Assert.True(posted.StatusCode == HttpStatusCode.OK, $"{posted.StatusCode}: {body}");
        using JsonDocument document = JsonDocument.Parse(body);
        return document.RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> GetAsync(KestrelHost host, string id)
    {
        using JsonDocument document = JsonDocument.Parse(await host.Client.GetStringAsync($"/probe/{id}"));
        return document.RootElement.Clone();
    }

    private static async Task<JsonElement> PollAsync(KestrelHost host, string id)
    {
        JsonElement status = default;
        await Eventually.WaitUntilAsync(async () => (status = await GetAsync(host, id)).GetProperty("status").GetString() is "completed" or "failed", TimeSpan.FromSeconds(60), $"request {id} finishing");
        return status;
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, HttpStatusCode expected, string? detailContains)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"expected {expected}, got {response.StatusCode}: {body}");
        if (detailContains is null)
        {
            return;
        }

        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using JsonDocument problem = JsonDocument.Parse(body);
        Assert.Equal((int)expected, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Contains(detailContains, problem.RootElement.GetProperty("detail").GetString(), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>A JSON body sent in two halves: the second once <see cref="SendRest"/> is set, so that the request is in flight meanwhile.</summary>
    private sealed class HalfThenRestContent : HttpContent
    {
        private readonly byte[] _body;

        public HalfThenRestContent(string json)
        {
            _body = Encoding.UTF8.GetBytes(json);
            Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        public TaskCompletionSource HalfSent { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource SendRest { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            int half = _body.Length / 2;
            await stream.WriteAsync(_body.AsMemory(0, half));
            await stream.FlushAsync();
            HalfSent.TrySetResult();
            await SendRest.Task;
            await stream.WriteAsync(_body.AsMemory(half));
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _body.Length;
            return true;
        }
    }

    /// <summary>A body of <paramref name="length"/> zero bytes whose length HttpClient cannot know, so it is sent chunked.</summary>
    private sealed class UnknownLengthStream(long length) : Stream
    {
        private long _left = length;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, _left);
            Array.Clear(buffer, offset, n);
            _left -= n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>
/// Says what it received: the payload's kind and Content-Type, its JSON, text or bytes (length and SHA-256). Blocks until
/// cancelled ("block"; with "block": "linger", returns from the cancel only once <see cref="Linger"/> opens), or until
/// <see cref="Gate"/> opens ("gate").
/// </summary>
public sealed class ProbeHandler : IAsyncHandler
{
    public static TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static TaskCompletionSource Linger { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public static ConcurrentBag<string> Finished { get; } = [];

    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        if (payload.Kind == AsyncPayloadKind.Json && payload.Json.ValueKind == JsonValueKind.Object)
        {
            if (payload.Json.TryGetProperty("block", out JsonElement block))
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, cancellationToken);
                }
                catch (OperationCanceledException) when (block.ValueKind == JsonValueKind.String && block.GetString() == "linger")
                {
                    await Linger.Task; // a handler that takes a while to wind down once cancelled
                    throw;
                }
            }

            if (payload.Json.TryGetProperty("gate", out _))
            {
                await Gate.Task.WaitAsync(cancellationToken);
            }
        }

        Finished.Add(requestId);
        return payload.Kind switch
        {
            AsyncPayloadKind.Json => new { kind = "Json", contentType = payload.ContentType, json = payload.Json },
            AsyncPayloadKind.Text => new { kind = "Text", contentType = payload.ContentType, text = payload.Text } as object,
            _ => new { kind = "Bytes", contentType = payload.ContentType, length = payload.Bytes.Length, sha256 = Convert.ToHexString(SHA256.HashData(payload.Bytes.Span)) },
        };
    }
}

/// <summary>The in-memory store, made to fail every call while <see cref="Failing"/> is set, as a store that is down.</summary>
public sealed class SwitchableStore : IAsyncResultStore
{
    private IAsyncResultStore? _inner;

    public volatile bool Failing;

    public bool IsDurable => false;

    public IAsyncResultStore Open(AsyncResultStoreOptions options)
    {
        _inner = new InMemoryAsyncResultStore(options);
        return this;
    }

    public ValueTask<bool> TryAddAsync(AsyncRequestRecord request, CancellationToken cancellationToken = default) => Up().TryAddAsync(request, cancellationToken);

    public ValueTask<AsyncRequestRecord?> GetAsync(string requestId, bool includePayload = false, CancellationToken cancellationToken = default) => Up().GetAsync(requestId, includePayload, cancellationToken);

    public ValueTask<bool> TryMarkInProgressAsync(string requestId, DateTimeOffset at, CancellationToken cancellationToken = default) => Up().TryMarkInProgressAsync(requestId, at, cancellationToken);

    public ValueTask<bool> TryCompleteAsync(string requestId, string resultJson, DateTimeOffset at, CancellationToken cancellationToken = default) => Up().TryCompleteAsync(requestId, resultJson, at, cancellationToken);

    public ValueTask<bool> TryFailAsync(string requestId, string errorText, DateTimeOffset at, CancellationToken cancellationToken = default) => Up().TryFailAsync(requestId, errorText, at, cancellationToken);

    public ValueTask<IReadOnlyList<AsyncRequestRecord>> GetUnfinishedAsync(CancellationToken cancellationToken = default) => Up().GetUnfinishedAsync(cancellationToken);

    public ValueTask<int> RemoveExpiredAsync(CancellationToken cancellationToken = default) => Up().RemoveExpiredAsync(cancellationToken);

    public ValueTask DisposeAsync() => _inner?.DisposeAsync() ?? ValueTask.CompletedTask;

    private IAsyncResultStore Up() => Failing ? throw new IOException("The store is down (a test switched it off).") : _inner!;
}
