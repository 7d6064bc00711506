namespace Servables.Async.Tests.Results;

public sealed class SlotRequestIdTests
{
    private const ulong Secret = 0x5EC2E7_5EC2E7UL;

    [Fact]
    public void Format_ThenParse_RoundTripsKeyAndSlot_InThe22CharacterShapeOfEveryStore()
    {
        var random = new Random(7);
        int[] slots = [0, 1, 63, 64, 4095, 100_000, 99_999_999, SlotRequestId.MaxSlot];
        for (int i = 0; i < 2_000; i++)
        {
            ulong low = (ulong)random.NextInt64() ^ ((ulong)random.Next(2) << 63);
            ulong high = (ulong)random.NextInt64() & SlotRequestId.RandomHighMask;
            int slot = i < slots.Length ? slots[i] : random.Next(SlotRequestId.MaxSlot);

            string id = SlotRequestId.Format(low, high, slot, Secret);

            Assert.Equal(22, id.Length);
            byte[] bytes = System.Buffers.Text.Base64Url.DecodeFromChars(id); // plain base64url of 16 bytes, like AsyncRequestIds.New()
            Assert.Equal((16, low), (bytes.Length, BitConverter.ToUInt64(bytes, 0)));
            Assert.Equal(high, BitConverter.ToUInt64(bytes, 8) & SlotRequestId.RandomHighMask);
            Assert.True(AsyncRequestIds.IsWellFormed(id));
            Assert.True(SlotRequestId.TryParse(id, Secret, out ulong parsedLow, out ulong parsedHigh, out int parsedSlot));
            Assert.Equal((low, high, slot), (parsedLow, parsedHigh, parsedSlot));
        }
    }

    [Fact]
    public void Format_NeighbouringSlots_LookUnrelated_AndAnotherSecretReadsAnotherSlot()
    {
        // The slot bits are mixed with the random bits under the secret: ids of slots 0..999 vary in every bit of the slot field.
        var random = new Random(11);
        ulong or = 0, and = ulong.MaxValue;
        for (int slot = 0; slot < 1_000; slot++)
        {
            string id = SlotRequestId.Format((ulong)random.NextInt64(), (ulong)random.NextInt64() & SlotRequestId.RandomHighMask, slot, Secret);
            ulong top = BitConverter.ToUInt64(System.Buffers.Text.Base64Url.DecodeFromChars(id), 8) & ~SlotRequestId.RandomHighMask;
            (or, and) = (or | top, and & top);
        }

        Assert.Equal((~SlotRequestId.RandomHighMask, 0UL), (or, and));
        string made = SlotRequestId.Format(12345, 678, 42, Secret);
        Assert.True(SlotRequestId.TryParse(made, Secret + 1, out ulong low, out ulong high, out int readSlot));
        Assert.Equal((12345UL, 678UL), (low, high));
        Assert.NotEqual(42, readSlot);
    }

    [Theory]
    [InlineData("")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAA")] // 21 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAA")] // 23 characters
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAA")] // 27 characters: the old shape
    [InlineData("AAAAAAAAAAAAAAAAAAAAAB")] // the last character carries 2 bits and 4 zeros: B would be a second spelling
    [InlineData("AAAAAAAAAAAAAAAAAAAA+w")] // standard base64, not base64url
    [InlineData("AAAAAAAAAAAAAAAAAAAA=w")]
    [InlineData("AAAAAAAAAAAAAAAAAAA.AA")] // well-formed as a request id, but not a character of the alphabet
    [InlineData("AAAAAAAAAAAAAAAAAAA~AA")]
    [InlineData("AAAAAAAAAAAAAAAAAAAÄAA")]
    [InlineData("AAAAAAAAAAAA AAAAAAAAA")]
    public void TryParse_StringsFormatNeverMakes_False(string id) =>
        Assert.False(SlotRequestId.TryParse(id, Secret, out _, out _, out _));
}
