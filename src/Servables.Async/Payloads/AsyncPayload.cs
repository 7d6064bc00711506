using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Servables.Async;

/// <summary>A request body, decoded by its Content-Type, as a handler receives it.</summary>
/// <remarks>
/// Exactly one of <see cref="Json"/>, <see cref="Text"/> or <see cref="Bytes"/> is the decoded form,
/// as <see cref="Kind"/> says; <see cref="RawBytes"/> is always the body as submitted. A JSON body
/// is checked in full before the handler runs (malformed JSON fails the request without calling
/// it) and parsed into a <see cref="JsonElement"/> on the first read of <see cref="Json"/>, so a
/// handler that uses <see cref="Deserialize{T}"/> or <see cref="ToJsonNode"/>, or ignores the body,
/// pays for no document. Immutable and thread-safe.
/// </remarks>
public sealed class AsyncPayload
{
    private readonly ReadOnlyMemory<byte> _utf8Json;
    private readonly string? _text;
    private StrongBox<JsonElement>? _json;

    private AsyncPayload(AsyncPayloadKind kind, string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, ReadOnlyMemory<byte> utf8Json, string? text)
    {
        Kind = kind;
        ContentType = contentType;
        MediaType = mediaType;
        Charset = charset;
        RawBytes = raw;
        _utf8Json = utf8Json;
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

    /// <summary>The parsed JSON (parsed on the first read; the element does not depend on this payload and needs no disposal).</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    public JsonElement Json
    {
        get
        {
            if (Kind != AsyncPayloadKind.Json)
            {
                throw WrongKind(AsyncPayloadKind.Json);
            }

            StrongBox<JsonElement>? parsed = Volatile.Read(ref _json);
            if (parsed is null)
            {
                var reader = new Utf8JsonReader(_utf8Json.Span, AsyncPayloadDecoder.JsonReaderOptions);
                parsed = new StrongBox<JsonElement>(JsonElement.ParseValue(ref reader));
                parsed = Interlocked.CompareExchange(ref _json, parsed, null) ?? parsed;
            }

            return parsed.Value;
        }
    }

    /// <summary>The JSON body as UTF-8 (the body itself, or the body transcoded from its charset).</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    public ReadOnlyMemory<byte> Utf8Json => Kind == AsyncPayloadKind.Json ? _utf8Json : throw WrongKind(AsyncPayloadKind.Json);

    /// <summary>The decoded text.</summary>
    /// <exception cref="InvalidOperationException">The payload is not text.</exception>
    public string Text => Kind == AsyncPayloadKind.Text ? _text! : throw WrongKind(AsyncPayloadKind.Text);

    /// <summary>The raw bytes of a payload that is neither JSON nor text.</summary>
    /// <exception cref="InvalidOperationException">The payload was decoded as JSON or text (use <see cref="RawBytes"/> for the body as sent).</exception>
    public ReadOnlyMemory<byte> Bytes => Kind == AsyncPayloadKind.Bytes ? RawBytes : throw WrongKind(AsyncPayloadKind.Bytes);

    /// <summary>The JSON as a mutable <see cref="JsonNode"/> (a new one each call).</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    public JsonNode? ToJsonNode() => JsonNode.Parse(Utf8Json.Span, documentOptions: AsyncPayloadDecoder.JsonDocumentOptions);

    /// <summary>Deserialises the JSON into <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException">The payload is not JSON.</exception>
    /// <exception cref="JsonException">The JSON does not fit <typeparamref name="T"/>.</exception>
    public T? Deserialize<T>(JsonSerializerOptions? options = null) => JsonSerializer.Deserialize<T>(Utf8Json.Span, options);

    /// <inheritdoc />
    public override string ToString() => $"{Kind} payload ({ContentType}, {RawBytes.Length} bytes)";

    /// <summary>A JSON payload over <paramref name="utf8Json"/>, which the caller has checked to be one well-formed JSON value.</summary>
    internal static AsyncPayload FromJson(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, ReadOnlyMemory<byte> utf8Json) =>
        new(AsyncPayloadKind.Json, contentType, mediaType, charset, raw, utf8Json, null);

    internal static AsyncPayload FromText(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw, string text) =>
        new(AsyncPayloadKind.Text, contentType, mediaType, charset, raw, ReadOnlyMemory<byte>.Empty, text);

    internal static AsyncPayload FromBytes(string contentType, string mediaType, string? charset, ReadOnlyMemory<byte> raw) =>
        new(AsyncPayloadKind.Bytes, contentType, mediaType, charset, raw, ReadOnlyMemory<byte>.Empty, null);

    private InvalidOperationException WrongKind(AsyncPayloadKind wanted) =>
        new($"The payload is {Kind} ({ContentType}), not {wanted}. Check Kind before reading it.");
}
