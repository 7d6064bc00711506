namespace Servables.Async.Tests.Results;

public sealed class TextArenaTests
{
    [Fact]
    public void Add_ThenGet_ReturnsEachPart()
    {
        var arena = new TextArena();
        TextRef first = arena.Add("id-1", "application/json", "{\"a\":1}");
        TextRef second = arena.Add("ünïcødé-✓", "text/plain; charset=utf-8", "日本語");

        Assert.Equal("id-1", arena.GetString(first, TextPart.Id));
        Assert.Equal("application/json", arena.GetString(first, TextPart.ContentType));
        Assert.Equal("{\"a\":1}", arena.GetString(first, TextPart.Text));
        Assert.Equal("ünïcødé-✓", arena.GetString(second, TextPart.Id));
        Assert.Equal("日本語", arena.GetString(second, TextPart.Text));
        Assert.True(arena.Get(second, TextPart.ContentType).SequenceEqual("text/plain; charset=utf-8"));
    }

    [Fact]
    public void ReleasedInOrder_ChunksAreReused_NotHeld()
    {
        var arena = new TextArena();
        string text = new('x', 1000);
        var refs = new Queue<TextRef>();
        for (int i = 0; i < 5_000; i++)
        {
            refs.Enqueue(arena.Add($"r{i}", "application/json", text));
            if (refs.Count > 100)
            {
                arena.Release(refs.Dequeue()); // keep the newest 100, like a full store evicting the oldest
            }
        }

        // 100 texts of ~1 KB fill about 4 chunks of 32 K chars; thousands of adds must not keep more.
        Assert.InRange(arena.ChunksInUse, 1, 6);
        int newest = 4_900;
        foreach (TextRef kept in refs)
        {
            Assert.Equal($"r{newest++}", arena.GetString(kept, TextPart.Id));
            Assert.Equal(text, arena.GetString(kept, TextPart.Text));
        }
    }

    [Fact]
    public void TextLongerThanAChunk_GetsItsOwn_FreedOnRelease()
    {
        var arena = new TextArena();
        TextRef small = arena.Add("a", "text/plain", "before");
        string huge = string.Concat(Enumerable.Repeat("0123456789", TextArena.ChunkChars / 5));
        TextRef big = arena.Add("b", "application/json", huge);
        TextRef after = arena.Add("c", "text/plain", "after");

        Assert.Equal(huge, arena.GetString(big, TextPart.Text));
        Assert.Equal("before", arena.GetString(small, TextPart.Text));
        Assert.Equal("after", arena.GetString(after, TextPart.Text));
        Assert.Equal(2, arena.ChunksInUse);

        arena.Release(big);
        Assert.Equal(1, arena.ChunksInUse);
        Assert.Equal("after", arena.GetString(after, TextPart.Text));
    }
}
