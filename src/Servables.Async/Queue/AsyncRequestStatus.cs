using System.Text.Json;
using System.Text.Json.Serialization;

namespace Servables.Async;

/// <summary>What <see cref="IAsyncApiClient.GetStatusAsync"/> reports about a request.</summary>
/// <param name="Id">The request id.</param>
/// <param name="State">Where the request stands.</param>
/// <param name="ResultJson">The handler's result as JSON text, when completed.</param>
/// <param name="Error">Why it failed, when failed.</param>
/// <param name="Timestamp">When it last changed state (completion time once finished); null when not found. An async API stamps it from its <see cref="TimeProvider"/>, exactly.</param>
/// <remarks>System.Text.Json writes and reads it in Cortex's shape (<see cref="AsyncRequestStatusJsonConverter"/>).</remarks>
[JsonConverter(typeof(AsyncRequestStatusJsonConverter))]
public sealed record AsyncRequestStatus(string Id, AsyncRequestState State, string? ResultJson, string? Error, DateTimeOffset? Timestamp)
{
    /// <summary>The wire name of <see cref="State"/>: <c>in_queue</c>, <c>in_progress</c>, <c>completed</c>, <c>failed</c> or <c>not_found</c>.</summary>
    public string Status => State.ToWireName();

    /// <summary>The status of an id no store knows.</summary>
    internal static AsyncRequestStatus NotFound(string requestId) => new(requestId, AsyncRequestState.NotFound, null, null, null);

    /// <summary>True when the request completed or failed.</summary>
    public bool IsFinished => State is AsyncRequestState.Completed or AsyncRequestState.Failed;

    /// <summary>The result as a <see cref="JsonElement"/>, when completed.</summary>
    public JsonElement? Result
    {
        get
        {
            if (ResultJson is null)
            {
                return null;
            }

            using JsonDocument document = JsonDocument.Parse(ResultJson);
            return document.RootElement.Clone();
        }
    }

    /// <summary>Deserialises the result into <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException">The request has not completed; the message says its status and error.</exception>
    public T? GetResult<T>(JsonSerializerOptions? options = null) =>
        ResultJson is null
            ? throw new InvalidOperationException($"Request {Id} has no result: it is {Status}{(Error is null ? string.Empty : $" ({Error})")}.")
            : JsonSerializer.Deserialize<T>(ResultJson, options);
}
