using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Servables.Async;

/// <summary>Turns a body and its Content-Type into an <see cref="AsyncPayload"/>.</summary>
/// <remarks>Stateless and thread-safe.</remarks>
internal static class AsyncPayloadDecoder
{
    /// <summary>How deep a JSON payload may nest.</summary>
    public const int MaxJsonDepth = 256;

    public static readonly JsonReaderOptions JsonReaderOptions = new() { MaxDepth = MaxJsonDepth };

    public static readonly JsonDocumentOptions JsonDocumentOptions = new() { MaxDepth = MaxJsonDepth };

    // What a body in "utf-16" or "utf-32" that starts with a big-endian byte-order mark decodes with.
    private static readonly Encoding Utf16BigEndian = new UnicodeEncoding(bigEndian: true, byteOrderMark: true, throwOnInvalidBytes: true);

    private static readonly Encoding Utf32BigEndian = new UTF32Encoding(bigEndian: true, byteOrderMark: true, throwOnInvalidCharacters: true);

    // Parsing a Content-Type is costly next to the rest of a request, and an API sees few distinct ones.
    private const int MaxCachedContentTypes = 64;
    private static readonly ConcurrentDictionary<string, ParsedContentType> ParsedContentTypes = new(StringComparer.Ordinal);

    // The last one found, by reference: a caller usually passes the same string (a literal) every time,
    // and each request parses its Content-Type twice (refused at submit if bad, decoded by the lane).
    private static ParsedContentType? s_lastFound;

    /// <summary>Parses a Content-Type; false with a reason when it is missing or malformed.</summary>
    public static bool TryParseContentType(string? contentType, out string mediaType, out string? charset, out string? problem)
    {
        ParsedContentType? found = s_lastFound;
        if (found is null || !ReferenceEquals(found.ContentType, contentType))
        {
            // Too long never hashes: it is refused before the cache is looked at.
            if (contentType is null || contentType.Length > AsyncApiOptions.MaxContentTypeLength || !ParsedContentTypes.TryGetValue(contentType, out found))
            {
                return TryParseAndCache(contentType, out mediaType, out charset, out problem);
            }

            s_lastFound = found; // a race between threads only costs a dictionary lookup later
        }

        (mediaType, charset, problem) = (found.MediaType, found.Charset, null);
        return true;
    }

    private static bool TryParseAndCache(string? contentType, out string mediaType, out string? charset, out string? problem)
    {
        if (!TryParseContentTypeUncached(contentType, out mediaType, out charset, out problem))
        {
            return false;
        }

        if (ParsedContentTypes.Count < MaxCachedContentTypes)
        {
            ParsedContentTypes.TryAdd(contentType!, new ParsedContentType(contentType!, mediaType, charset));
        }

        return true;
    }

    private static bool TryParseContentTypeUncached(string? contentType, out string mediaType, out string? charset, out string? problem)
    {
        mediaType = string.Empty;
        charset = null;
        if (string.IsNullOrWhiteSpace(contentType))
        {
            problem = "the Content-Type is missing; send one such as 'application/json', 'text/plain; charset=utf-8' or 'application/octet-stream'";
            return false;
        }

        if (contentType.Length > AsyncApiOptions.MaxContentTypeLength)
        {
            problem = $"the Content-Type is longer than {AsyncApiOptions.MaxContentTypeLength} characters ({contentType.Length}); send a shorter one";
            return false;
        }

        // A tab is whitespace in a header; any other control character (CR and LF above all) is refused,
        // so that what is stored and logged never holds one.
        int control = EchoedText.IndexOfControlButTab(contentType);
        if (control >= 0)
        {
            problem = $"the Content-Type '{EchoedText.Quote(contentType)}' holds a control character (U+{(int)contentType[control]:X4} at index {control}); remove it";
            return false;
        }

        if (!MediaTypeHeaderValue.TryParse(contentType, out MediaTypeHeaderValue? parsed) || parsed.MediaType is null || !parsed.MediaType.Contains('/', StringComparison.Ordinal))
        {
            problem = $"the Content-Type '{EchoedText.Quote(contentType)}' cannot be parsed; expected 'type/subtype' with optional parameters";
            return false;
        }

        mediaType = parsed.MediaType.ToLowerInvariant();
        charset = parsed.CharSet?.Trim('"');
        problem = null;
        return true;
    }

    /// <summary>Decodes <paramref name="body"/>.</summary>
    /// <exception cref="AsyncPayloadException">The body does not decode as its Content-Type says.</exception>
    public static AsyncPayload Decode(string contentType, ReadOnlyMemory<byte> body)
    {
        if (!TryParseContentType(contentType, out string mediaType, out string? charset, out string? problem))
        {
            throw new AsyncPayloadException($"Cannot decode the payload: {problem}.");
        }

        if (mediaType == "application/json" || mediaType.EndsWith("+json", StringComparison.Ordinal))
        {
            return AsyncPayload.FromJson(contentType, mediaType, charset, body, CheckJson(body, charset));
        }

        if (mediaType == "text/plain")
        {
            return AsyncPayload.FromText(contentType, mediaType, charset, body, DecodeText(body, charset ?? "utf-8"));
        }

        return AsyncPayload.FromBytes(contentType, mediaType, charset, body);
    }

    /// <summary>Checks that the body is one well-formed JSON value (as <see cref="JsonDocument.Parse(ReadOnlyMemory{byte}, JsonDocumentOptions)"/> would) and returns it as UTF-8.</summary>
    private static ReadOnlyMemory<byte> CheckJson(ReadOnlyMemory<byte> body, string? charset)
    {
        ReadOnlyMemory<byte> utf8 = charset is null || IsUtf8(charset) ? body : Encoding.UTF8.GetBytes(DecodeText(body, charset));
        try
        {
            var reader = new Utf8JsonReader(utf8.Span, JsonReaderOptions);
            while (reader.Read())
            {
                // Every token is checked, nothing is kept: the handler's first read of Json parses.
            }
        }
        catch (JsonException ex)
        {
            throw new AsyncPayloadException($"The body is not valid JSON: {ex.Message}", ex);
        }

        return utf8;
    }

    private static string DecodeText(ReadOnlyMemory<byte> body, string charset)
    {
        Encoding encoding;
        try
        {
            encoding = Encoding.GetEncoding(charset, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);
        }
        catch (ArgumentException ex)
        {
            throw new AsyncPayloadException($"The charset '{charset}' is not supported; use utf-8, utf-16, us-ascii or iso-8859-1.", ex);
        }

        try
        {
            ReadOnlySpan<byte> bytes = body.Span;
            encoding = ByByteOrderMark(encoding, charset, bytes);
            ReadOnlySpan<byte> preamble = encoding.Preamble;
            if (!preamble.IsEmpty && bytes.StartsWith(preamble))
            {
                bytes = bytes[preamble.Length..];
            }

            return encoding.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new AsyncPayloadException($"The body holds bytes that are not valid {encoding.WebName} (at byte {ex.Index}); fix the charset parameter or the body.", ex);
        }
    }

    /// <summary>
    /// For a charset that names no byte order (<c>utf-16</c>, <c>utf-32</c>), the encoding whose order
    /// the body's byte-order mark gives (RFC 2781 §4.3); without a mark, little-endian as before.
    /// A charset that names its order (<c>utf-16be</c>, <c>utf-16le</c>, …) keeps it.
    /// </summary>
    private static Encoding ByByteOrderMark(Encoding encoding, string charset, ReadOnlySpan<byte> bytes)
    {
        bool namesOrder = charset.EndsWith("be", StringComparison.OrdinalIgnoreCase) || charset.EndsWith("le", StringComparison.OrdinalIgnoreCase);
        return encoding.CodePage switch
        {
            1200 when !namesOrder && bytes is [0xFE, 0xFF, ..] => Utf16BigEndian,
            12000 when !namesOrder && bytes is [0x00, 0x00, 0xFE, 0xFF, ..] => Utf32BigEndian,
            _ => encoding,
        };
    }

    /// <summary>A Content-Type and what it parsed to.</summary>
    private sealed record ParsedContentType(string ContentType, string MediaType, string? Charset);

    private static bool IsUtf8(string charset) =>
        charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase);
}
