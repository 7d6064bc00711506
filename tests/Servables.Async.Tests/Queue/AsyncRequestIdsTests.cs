using System.Buffers.Binary;
using System.Buffers.Text;

namespace Servables.Async.Tests.Queue;

public sealed class AsyncRequestIdsTests
{
    [Fact]
    public void New_CarriesTheTimeInItsFirstSixBytes_AndEightyRandomBits()
    {
        const long At = 1_796_131_200_123; // 2026-12-01, in milliseconds

        string[] ids = [.. Enumerable.Range(0, 1000).Select(_ => AsyncRequestIds.New(At))];

        Assert.All(ids, id =>
        {
            Assert.Equal(22, id.Length);
            Assert.True(AsyncRequestIds.IsWellFormed(id));
            byte[] bytes = Base64Url.DecodeFromChars(id);
            Assert.Equal(At, ((long)BinaryPrimitives.ReadUInt16BigEndian(bytes) << 32) | BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(2)));
        });
        Assert.Single(ids.Select(id => id[..8]).Distinct()); // 48 bits of time: the same 8 leading characters
        Assert.Equal(ids.Length, ids.Select(id => id[8..]).Distinct().Count()); // the random rest differs
    }

    [Fact]
    public void New_IdsMadeAMillisecondApart_ShareTheirLeadingCharacters()
    {
        string earlier = AsyncRequestIds.New(1_796_131_200_123);
        string later = AsyncRequestIds.New(1_796_131_200_124);

        Assert.Equal(earlier[..6], later[..6]); // neighbours in an index on the id
        Assert.NotEqual(earlier[..8], later[..8]);
    }
}
