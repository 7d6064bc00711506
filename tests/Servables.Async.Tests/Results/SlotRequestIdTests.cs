namespace Servables.Async.Tests.Results;

public sealed class SlotRequestIdTests
{
    [Fact]
    public void Format_ThenParse_RoundTripsKeyAndSlot()
    {
        var random = new Random(7);
        int[] slots = [0, 1, 63, 64, 4095, 100_000, 99_999_999, SlotRequestId.MaxSlot];
        for (int i = 0; i < 2_000; i++)
        {
            ulong low = (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63);
            ulong high = (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63);
            int slot = i < slots.Length ? slots[i] : random.Next(SlotRequestId.MaxSlot);

            string id = SlotRequestId.Format(low, high, slot);

            Assert.Equal(SlotRequestId.Length, id.Length);
            byte[] key = [.. BitConverter.GetBytes(low), .. BitConverter.GetBytes(high)];
            Assert.Equal(System.Buffers.Text.Base64Url.EncodeToString(key), id[..22]); // the random bits in plain base64url
            Assert.True(AsyncRequestIds.IsWellFormed(id));
            Assert.True(SlotRequestId.TryParse(id, out ulong parsedLow, out ulong parsedHigh, out int parsedSlot));
            Assert.Equal((low, high, slot), (parsedLow, parsedHigh, parsedSlot));
        }
    }

    [Fact]
    public void Format_AllBitsSetAndClear_UsesEveryCharacterPosition()
    {
        Assert.Equal("AAAAAAAAAAAAAAAAAAAAAAAAAAA", SlotRequestId.Format(0, 0, 0));
        Assert.Equal("_____________________w_____", SlotRequestId.Format(ulong.MaxValue, ulong.MaxValue, SlotRequestId.MaxSlot));
    }

    [Theory]
    [InlineData("")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAA")] // 26 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 28 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAABAAAAA")] // the last key character carries 2 bits and 4 zeros: B would be a second spelling
    [InlineData("AAAAAAAAAAAAAAAAAAAA+wAAAAA")] // standard base64, not base64url
    [InlineData("AAAAAAAAAAAAAAAAAAAA=wAAAAA")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAA.AA")] // well-formed as a request id, but not a character of the alphabet
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAA~AA")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAÄAA")]
    [InlineData("AAAAAAAAAAAA AAAAAAAAAAAAAA")]
    public void TryParse_StringsFormatNeverMakes_False(string id) =>
        Assert.False(SlotRequestId.TryParse(id, out _, out _, out _));
}
