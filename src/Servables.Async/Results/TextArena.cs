namespace Servables.Async;

/// <summary>Which text of a finished request a <see cref="TextRef"/> part is.</summary>
internal enum TextPart
{
    Id,
    ContentType,
    Text,
}

/// <summary>Where one finished request's texts lie in a <see cref="TextArena"/>: its id, content type and result (or error), one after another.</summary>
internal readonly record struct TextRef(int Chunk, int Offset, int IdLength, int ContentTypeLength, int TextLength);

/// <summary>Texts of finished requests, copied one after another into large char chunks, so that keeping them costs the garbage collector no objects.</summary>
/// <remarks>
/// Requests finish and are evicted in roughly the same order, so a chunk empties as a whole and is
/// reused; a text longer than a chunk gets a chunk of its own, dropped when it is released.
/// Not thread-safe: its owner serialises calls.
/// </remarks>
internal sealed class TextArena
{
    /// <summary>Characters in a standard chunk: 64 KiB, on the large object heap, allocated once and reused.</summary>
    public const int ChunkChars = 32 * 1024;

    private const int MaxSpareChunks = 8;

    private readonly Stack<int> _freeIndexes = new();
    private readonly Stack<char[]> _spare = new();
    private char[]?[] _chunks = new char[]?[8];
    private int[] _texts = new int[8];
    private int _chunkCount;
    private int _head = -1;
    private int _headUsed;

    /// <summary>How many chunks hold texts or are being filled (for tests).</summary>
    public int ChunksInUse => _chunkCount - _freeIndexes.Count;

    /// <summary>Copies a request's texts in; release them with <see cref="Release"/>.</summary>
    public TextRef Add(string id, string contentType, string text)
    {
        int length = id.Length + contentType.Length + text.Length;
        int chunk;
        int offset;
        if (length > ChunkChars)
        {
            chunk = NewChunk(length);
            offset = 0;
        }
        else
        {
            if (_head < 0 || _headUsed + length > ChunkChars)
            {
                int previous = _head;
                _head = NewChunk(ChunkChars);
                _headUsed = 0;
                if (previous >= 0 && _texts[previous] == 0)
                {
                    Free(previous);
                }
            }

            chunk = _head;
            offset = _headUsed;
            _headUsed += length;
        }

        Span<char> target = _chunks[chunk].AsSpan(offset, length);
        id.CopyTo(target);
        contentType.CopyTo(target[id.Length..]);
        text.CopyTo(target[(id.Length + contentType.Length)..]);
        _texts[chunk]++;
        return new TextRef(chunk, offset, id.Length, contentType.Length, text.Length);
    }

    /// <summary>One part of a request's texts, valid until they are released.</summary>
    public ReadOnlySpan<char> Get(TextRef texts, TextPart part) => part switch
    {
        TextPart.Id => _chunks[texts.Chunk].AsSpan(texts.Offset, texts.IdLength),
        TextPart.ContentType => _chunks[texts.Chunk].AsSpan(texts.Offset + texts.IdLength, texts.ContentTypeLength),
        _ => _chunks[texts.Chunk].AsSpan(texts.Offset + texts.IdLength + texts.ContentTypeLength, texts.TextLength),
    };

    /// <summary>One part of a request's texts as a string: a new one, except that a stored JSON <c>null</c> is always the same.</summary>
    public string GetString(TextRef texts, TextPart part)
    {
        ReadOnlySpan<char> text = Get(texts, part);
        return text.SequenceEqual("null") ? "null" : new string(text); // a handler's null result is common and always the same
    }

    /// <summary>Gives back a request's texts; a chunk whose texts are all given back is reused.</summary>
    public void Release(TextRef texts)
    {
        if (--_texts[texts.Chunk] == 0 && texts.Chunk != _head)
        {
            Free(texts.Chunk);
        }
    }

    private int NewChunk(int length)
    {
        int index;
        if (_freeIndexes.Count > 0)
        {
            index = _freeIndexes.Pop();
        }
        else
        {
            if (_chunkCount == _chunks.Length)
            {
                Array.Resize(ref _chunks, _chunks.Length * 2);
                Array.Resize(ref _texts, _texts.Length * 2);
            }

            index = _chunkCount++;
        }

        _chunks[index] = length == ChunkChars && _spare.Count > 0 ? _spare.Pop() : new char[length];
        _texts[index] = 0;
        return index;
    }

    private void Free(int chunk)
    {
        char[] array = _chunks[chunk]!;
        _chunks[chunk] = null;
        if (array.Length == ChunkChars && _spare.Count < MaxSpareChunks)
        {
            _spare.Push(array);
        }

        _freeIndexes.Push(chunk);
    }
}
