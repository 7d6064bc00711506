using System.Text.Json;

namespace Servables.Async.Tests.Queue;

/// <summary>AsyncRequestStatus in JSON: Cortex's AsyncAPI shape, written and read by any System.Text.Json call.</summary>
public sealed class AsyncRequestStatusJsonTests
{
    private static readonly DateTimeOffset At = new(2026, 12, 1, 18, 30, 5, 123, TimeSpan.Zero);

    [Fact]
    public void Completed_HasIdStatusResultAsJsonAndTimestamp()
    {
        string json = JsonSerializer.Serialize(new AsyncRequestStatus("r1", AsyncRequestState.Completed, "{\"y\":1,\"s\":\"é\"}", null, At));

        using JsonDocument document = JsonDocument.Parse(json);
        JsonElement root = document.RootElement;
        Assert.Equal(["id", "status", "result", "timestamp"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("r1", root.GetProperty("id").GetString());
        Assert.Equal("completed", root.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Object, root.GetProperty("result").ValueKind); // JSON, not a string of JSON
        Assert.Equal(1, root.GetProperty("result").GetProperty("y").GetInt32());
        Assert.Equal("é", root.GetProperty("result").GetProperty("s").GetString());
        Assert.Equal("2026-12-01T18:30:05.123Z", root.GetProperty("timestamp").GetString());
    }

    [Theory]
    [InlineData(AsyncRequestState.InQueue, "in_queue")]
    [InlineData(AsyncRequestState.InProgress, "in_progress")]
    [InlineData(AsyncRequestState.NotFound, "not_found")]
    public void Unfinished_HasIdAndStatusOnly(AsyncRequestState state, string word)
    {
        string json = JsonSerializer.Serialize(new AsyncRequestStatus("r2", state, null, null, state == AsyncRequestState.NotFound ? null : At));

        Assert.Equal($"{{\"id\":\"r2\",\"status\":\"{word}\"}}", json);
    }

    [Fact]
    public void Failed_HasTheError()
    {
        string json = JsonSerializer.Serialize(new AsyncRequestStatus("r3", AsyncRequestState.Failed, null, "The handler threw \"x\".", At));

        Assert.Equal("{\"id\":\"r3\",\"status\":\"failed\",\"error\":\"The handler threw \\u0022x\\u0022.\"}", json);
    }

    [Fact]
    public void ReadBack_GivesTheSameStatus_InsideOtherObjectsToo()
    {
        var completed = new AsyncRequestStatus("r1", AsyncRequestState.Completed, "[1,2]", null, At);
        var failed = new AsyncRequestStatus("r2", AsyncRequestState.Failed, null, "no", null);

        AsyncRequestStatus[] back = JsonSerializer.Deserialize<AsyncRequestStatus[]>(JsonSerializer.Serialize(new[] { completed, failed }))!;

        Assert.Equal([completed, failed], back);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AsyncRequestStatus>("{\"id\":\"a\",\"status\":\"done\"}"));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AsyncRequestStatus>("{\"status\":\"completed\"}"));
    }
}
