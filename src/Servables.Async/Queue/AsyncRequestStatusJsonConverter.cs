using System.Text.Json;
using System.Text.Json.Serialization;

namespace Servables.Async;

/// <summary>Writes and reads an <see cref="AsyncRequestStatus"/> in Cortex's AsyncAPI shape, so that a Cortex client reads it unchanged.</summary>
/// <remarks>
/// <para>
/// <c>{"id": "…", "status": "in_queue" | "in_progress" | "completed" | "failed" | "not_found"}</c>, plus, when completed,
/// <c>"result"</c> (the handler's result as JSON, not as a string) and <c>"timestamp"</c> (RFC 3339, UTC), and when failed,
/// <c>"error"</c>. Reading takes the same shape (unknown properties are skipped; a failed status keeps its
/// <c>"timestamp"</c> when one is there). Stateless and thread-safe; it is on the type, so every
/// <see cref="JsonSerializer"/> call uses it.
/// </para>
/// </remarks>
public sealed class AsyncRequestStatusJsonConverter : JsonConverter<AsyncRequestStatus>
{
    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, AsyncRequestStatus value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartObject();
        writer.WriteString("id", value.Id);
        writer.WriteString("status", value.Status);
        if (value.State == AsyncRequestState.Completed)
        {
            writer.WritePropertyName("result");
            writer.WriteRawValue(value.ResultJson ?? "null");
            if (value.Timestamp is { } completedAt)
            {
                writer.WriteString("timestamp", completedAt.UtcDateTime);
            }
        }
        else if (value.State == AsyncRequestState.Failed)
        {
            writer.WriteString("error", value.Error);
        }

        writer.WriteEndObject();
    }

    /// <inheritdoc />
    /// <exception cref="JsonException">The JSON is not an object of that shape (no id, or an unknown status word).</exception>
    public override AsyncRequestStatus Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException($"An async request status is a JSON object; found {reader.TokenType}.");
        }

        (string? id, string? status, string? result, string? error, DateTimeOffset? timestamp) = (null, null, null, null, null);
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string name = reader.GetString()!;
            reader.Read();
            switch (name)
            {
                case "id":
                    id = reader.GetString();
                    break;
                case "status":
                    status = reader.GetString();
                    break;
                case "result":
                    using (JsonDocument document = JsonDocument.ParseValue(ref reader))
                    {
                        result = document.RootElement.GetRawText();
                    }

                    break;
                case "error":
                    error = reader.GetString();
                    break;
                case "timestamp":
                    timestamp = reader.TokenType == JsonTokenType.Null ? null : reader.GetDateTimeOffset();
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        AsyncRequestState state = status switch
        {
            "in_queue" => AsyncRequestState.InQueue,
            "in_progress" => AsyncRequestState.InProgress,
            "completed" => AsyncRequestState.Completed,
            "failed" => AsyncRequestState.Failed,
            "not_found" => AsyncRequestState.NotFound,
            _ => throw new JsonException($"'{status}' is not an async request status (in_queue, in_progress, completed, failed or not_found)."),
        };
        return new AsyncRequestStatus(
            id ?? throw new JsonException("An async request status has an \"id\"."),
            state,
            state == AsyncRequestState.Completed ? result ?? "null" : null,
            state == AsyncRequestState.Failed ? error : null,
            timestamp);
    }
}
