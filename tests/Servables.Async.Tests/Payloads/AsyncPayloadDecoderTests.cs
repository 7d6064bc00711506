using System.Text;

namespace Servables.Async.Tests.Payloads;

public sealed class AsyncPayloadDecoderTests
{
    [Theory]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/vnd.api+json")]
    [InlineData("Application/JSON")]
    public void Decode_Json_ParsesJson(string contentType)
    {
        AsyncPayload payload = AsyncPayloadDecoder.Decode(contentType, "{\"a\":[1,2]}"u8.ToArray());
        Assert.Equal(AsyncPayloadKind.Json, payload.Kind);
        Assert.Equal(2, payload.Json.GetProperty("a").GetArrayLength());
        Assert.Equal(2, payload.ToJsonNode()!["a"]!.AsArray().Count);
        Assert.Throws<InvalidOperationException>(() => payload.Text);
    }

    [Fact]
    public void Decode_ContentTypesInTurn_EachParsedAsItsOwn()
    {
        // The parser keeps the last Content-Type it found by reference: turns between strings,
        // equal strings that are other instances, and a bad one in between must not mix them up.
        string json = "application/json";
        string text = "text/plain; charset=iso-8859-1";
        string jsonCopy = new(json.AsSpan());
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(AsyncPayloadKind.Json, AsyncPayloadDecoder.Decode(json, "1"u8.ToArray()).Kind);
            AsyncPayload latin = AsyncPayloadDecoder.Decode(text, new byte[] { 0xE9 });
            Assert.Equal(("é", "iso-8859-1"), (latin.Text, latin.Charset));
            Assert.Equal(AsyncPayloadKind.Json, AsyncPayloadDecoder.Decode(jsonCopy, "2"u8.ToArray()).Kind);
            Assert.False(AsyncPayloadDecoder.TryParseContentType("no slash", out _, out _, out _));
            Assert.Equal(AsyncPayloadKind.Bytes, AsyncPayloadDecoder.Decode("image/png", new byte[] { 1 }).Kind);
        }
    }

    [Fact]
    public void Decode_MalformedJson_ThrowsClearError()
    {
        AsyncPayloadException error = Assert.Throws<AsyncPayloadException>(() => AsyncPayloadDecoder.Decode("application/json", "{\"a\":"u8.ToArray()));
        Assert.StartsWith("The body is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_JsonInUtf16_Decodes()
    {
        AsyncPayload payload = AsyncPayloadDecoder.Decode("application/json; charset=utf-16", Encoding.Unicode.GetBytes("{\"é\":1}"));
        Assert.Equal(1, payload.Json.GetProperty("é").GetInt32());
        Assert.Equal("{\"é\":1}", Encoding.UTF8.GetString(payload.Utf8Json.Span));
        Assert.Equal(1, payload.Deserialize<Dictionary<string, int>>()!["é"]);
    }

    [Theory]
    [InlineData("   ")]
    [InlineData("{} trailing")]
    [InlineData("{\"a\":1,}")]
    [InlineData("{}/*comment*/")]
    [InlineData("[1, 2")]
    public void Decode_MalformedJson_FailsAtDecodeEvenIfNeverRead(string body)
    {
        // The handler may never read Json: the whole body is still checked before it runs.
        AsyncPayloadException error = Assert.Throws<AsyncPayloadException>(() => AsyncPayloadDecoder.Decode("application/json", Encoding.UTF8.GetBytes(body)));
        Assert.StartsWith("The body is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_ParsedOnce_ElementOutlivesPayloadAndReadsAgree()
    {
        AsyncPayload payload = AsyncPayloadDecoder.Decode("application/json", "{\"a\":{\"b\":[1,2,3]}}"u8.ToArray());

        System.Text.Json.JsonElement first = payload.Json;
        System.Text.Json.JsonElement[] fromThreads = new System.Text.Json.JsonElement[8];
        Parallel.For(0, fromThreads.Length, i => fromThreads[i] = payload.Json);

        Assert.All(fromThreads, e => Assert.Equal(first.GetRawText(), e.GetRawText()));
        Assert.Equal(3, first.GetProperty("a").GetProperty("b").GetArrayLength());
        Assert.Equal(new[] { 1, 2, 3 }, payload.Deserialize<Dictionary<string, Dictionary<string, int[]>>>()!["a"]["b"]);
        Assert.Throws<InvalidOperationException>(() => AsyncPayloadDecoder.Decode("text/plain", "x"u8.ToArray()).Utf8Json);
    }

    [Theory]
    [InlineData("text/plain", "utf-8", "héllo wörld ✓")]
    [InlineData("text/plain; charset=utf-8", "utf-8", "héllo")]
    [InlineData("text/plain; charset=us-ascii", "us-ascii", "plain ascii")]
    [InlineData("text/plain; charset=iso-8859-1", "iso-8859-1", "café")]
    [InlineData("text/plain; charset=\"utf-16\"", "utf-16", "日本語")]
    public void Decode_Text_UsesCharset(string contentType, string encoding, string text)
    {
        AsyncPayload payload = AsyncPayloadDecoder.Decode(contentType, Encoding.GetEncoding(encoding).GetBytes(text));
        Assert.Equal(AsyncPayloadKind.Text, payload.Kind);
        Assert.Equal(text, payload.Text);
    }

    [Fact]
    public void Decode_JsonInUtf16WithBigEndianMark_DecodesBigEndian()
    {
        byte[] body = [.. Encoding.BigEndianUnicode.Preamble, .. Encoding.BigEndianUnicode.GetBytes("{\"\u00e9\":1}")];
        AsyncPayload payload = AsyncPayloadDecoder.Decode("application/json; charset=utf-16", body);
        Assert.Equal(1, payload.Json.GetProperty("\u00e9").GetInt32());
    }

    [Theory]
    [InlineData("utf-16", true)]
    [InlineData("utf-16", false)]
    [InlineData("utf-16be", true)]
    [InlineData("utf-16le", false)]
    public void Decode_Utf16WithMark_MarkDecidesOrderAndIsDropped(string charset, bool bigEndian)
    {
        Encoding encoding = new UnicodeEncoding(bigEndian, byteOrderMark: true);
        byte[] body = [.. encoding.Preamble, .. encoding.GetBytes("日本語")];
        Assert.Equal("日本語", AsyncPayloadDecoder.Decode($"text/plain; charset={charset}", body).Text);
    }

    [Fact]
    public void Decode_UnknownCharset_ThrowsNamingIt()
    {
        AsyncPayloadException error = Assert.Throws<AsyncPayloadException>(() => AsyncPayloadDecoder.Decode("text/plain; charset=klingon", "x"u8.ToArray()));
        Assert.Contains("'klingon' is not supported", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("text/plain", new byte[] { 0x68, 0xC3, 0x28 })]
    [InlineData("text/plain; charset=us-ascii", new byte[] { 0x68, 0xE9 })]
    public void Decode_BytesInvalidInCharset_ThrowsClearError(string contentType, byte[] body)
    {
        AsyncPayloadException error = Assert.Throws<AsyncPayloadException>(() => AsyncPayloadDecoder.Decode(contentType, body));
        Assert.Contains("not valid", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("application/octet-stream")]
    [InlineData("image/png")]
    [InlineData("text/csv")]
    public void Decode_Other_KeepsBytes(string contentType)
    {
        byte[] body = [0, 1, 2, 255];
        AsyncPayload payload = AsyncPayloadDecoder.Decode(contentType, body);
        Assert.Equal(AsyncPayloadKind.Bytes, payload.Kind);
        Assert.Equal(body, payload.Bytes.ToArray());
        Assert.Throws<InvalidOperationException>(() => payload.Json);
    }

    [Fact]
    public void TryParseContentType_TabBetweenParameters_Accepted()
    {
        Assert.True(AsyncPayloadDecoder.TryParseContentType("text/plain;\tcharset=utf-8", out string mediaType, out string? charset, out _));
        Assert.Equal(("text/plain", "utf-8"), (mediaType, charset));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("json")]
    [InlineData("/;")]
    public void TryParseContentType_MissingOrMalformed_FalseWithReason(string? contentType)
    {
        Assert.False(AsyncPayloadDecoder.TryParseContentType(contentType, out _, out _, out string? problem));
        Assert.False(string.IsNullOrEmpty(problem));
    }
}
