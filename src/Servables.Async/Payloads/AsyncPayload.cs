using System.Text.Json;
using System.Text.Json.Nodes;

namespace Servables.Async;

/// <summary>A request body, decoded by its Content-Type, as a handler receives it.</summary>
/// <remarks>
/// Exactly one of <see cref="Json"/>, <see cref="Text"/> or <see cref="Bytes"/> is the decoded form,
/// as <see cref="Kind"/> says; <see cref="RawBytes"/> is always the body as submitted. Immutable
/// and thread-safe.
/// </remarks>
public sealed class AsyncPayload
{
    private readonly JsonElement _json;
    private readonly string? _text;

    private AsyncPayload(AsyncPayloadKind kind, string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, JsonElement json, string? text)
    {
        Kind = kind;
        ContentType = contentType;
        MediaType = mediaType;
        Charset = charset;
        RawBytes = raw;
        _json = json;
        _text = text;
    }

    /// <summary>Which decoded form the payload has.</summary>
    public AsyncPayloadKind Kind { get; }

    /// <summary>The Content-Type as submitted, parameters included.</summary>
    public string ContentType { get; }

    /// <summary>The media type alone, lower-case (such as <c>application/json</c>).</summary>
    public string MediaType { get; }

    /// <summary>The <c>charset</c> parameter, if one was given.</summary>
    public string? Charset { get; }

    /// <summary>The body exactly as submitted.</summary>
    public ReadOnlyMemory<byte> RawBytes { get; }

    /// <summary>The parsed JSON.</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    public JsonElement Json => Kind == AsyncPayloadKind.Json ? _json : throw WrongKind(AsyncPayloadKind.Json);

    /// <summary>The decoded text.</summary>
    /// <exception cref="InvalidOperationException">The payload is not text.</exception>
    public string Text => Kind == AsyncPayloadKind.Text ? _text! : throw WrongKind(AsyncPayloadKind.Text);

    /// <summary>The raw bytes of a payload that is neither JSON nor text.</summary>
    /// <exception cref="InvalidOperationException">The payload was decoded as JSON or text (use <see cref="RawBytes"/> for the body as sent).</exception>
    public ReadOnlyMemory<byte> Bytes => Kind == AsyncPayloadKind.Bytes ? RawBytes : throw WrongKind(AsyncPayloadKind.Bytes);

    /// <summary>The JSON as a mutable <see cref="JsonNode"/> (a new one each call).</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    public JsonNode? ToJsonNode() => JsonNode.Parse(Json.GetRawText());

    /// <summary>Deserialises the JSON into <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    /// <exception cref="JsonException">The JSON does not fit <typeparamref name="T"/>.</exception>
    public T? Deserialize<T>(JsonSerializerOptions? options = null) => Json.Deserialize<T>(options);

    /// <inheritdoc />
    public override string ToString() => $"{Kind} payload ({ContentType}, {RawBytes.Length} bytes)";

    internal static AsyncPayload FromJson(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, JsonElement json) =>
        new(AsyncPayloadKind.Json, contentType, mediaType, charset, raw, json, null);

    internal static AsyncPayload FromText(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, string text) =>
        new(AsyncPayloadKind.Text, contentType, mediaType, charset, raw, default, text);

    internal static AsyncPayload FromBytes(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw) =>
        new(AsyncPayloadKind.Bytes, contentType, mediaType, charset, raw, default, null);

    private InvalidOperationException WrongKind(AsyncPayloadKind wanted) =>
        new($"The payload is {Kind} ({ContentType}), not {wanted}. Check Kind before reading it.");
}
