using System.Buffers.Binary;

namespace Servables.Async;

/// <summary>
/// The ids <see cref="InMemoryAsyncResultStore"/> makes for an async API: 16 bytes in base64url without
/// padding (22 characters), the shape of every store's ids, of which 101 bits are cryptographically
/// random and 27 name the slot of the store's table that holds the request, so that a read goes
/// straight to its entry instead of through a hash index.
/// </summary>
/// <remarks>
/// The slot is mixed with a hash of the random bits under the store's own secret, so ids look alike
/// whatever their slot and tell nothing of the store's size or of which requests were neighbours.
/// Each id has exactly one spelling, so two different strings never name one entry. The slot says
/// where to look, not what is there: a read also compares the random bits, so a guessed or stale id
/// finds nothing. Stateless and thread-safe.
/// </remarks>
internal static class SlotRequestId
{
    /// <summary>Characters in an id.</summary>
    public const int Length = 22;

    /// <summary>Bits of an id that name its slot.</summary>
    public const int SlotBits = 27;

    /// <summary>The largest slot an id can carry (above the most entries a store may keep).</summary>
    public const int MaxSlot = (1 << SlotBits) - 1;

    /// <summary>The random bits of the key's high half (the rest carries the slot).</summary>
    public const ulong RandomHighMask = (1UL << (64 - SlotBits)) - 1;

    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    private static readonly sbyte[] Values = BuildValues();

    /// <summary>The id of the request with random key <paramref name="low"/>, <paramref name="high"/> (high's slot bits clear) in <paramref name="slot"/>.</summary>
    public static string Format(ulong low, ulong high, int slot, ulong secret) =>
        string.Create(Length, (low, high: high | ((ulong)(uint)(slot ^ Mix(low, high, secret)) << (64 - SlotBits))), static (chars, key) =>
        {
            // The key's 16 bytes are the two halves, little-endian; base64 takes them 3 at a time.
            WriteGroup(chars, 0, key.low);
            WriteGroup(chars, 4, key.low >> 24);
            WriteGroup(chars, 8, (key.low >> 48) | (key.high << 16));
            WriteGroup(chars, 12, key.high >> 8);
            WriteGroup(chars, 16, key.high >> 32);
            int last = (int)(key.high >> 56);
            chars[20] = Alphabet[last >> 2];
            chars[21] = Alphabet[(last & 3) << 4];
        });

    /// <summary>Reads an id back into its random key (high's slot bits clear) and slot; false for any string <see cref="Format"/> does not make.</summary>
    public static bool TryParse(ReadOnlySpan<char> id, ulong secret, out ulong low, out ulong high, out int slot)
    {
        (low, high, slot) = (0, 0, 0);
        if (id.Length != Length)
        {
            return false;
        }

        // Any character outside the alphabet makes "invalid" negative or "outside" non-zero; checked once at the end.
        int invalid = 0;
        int outside = 0;
        ulong g0 = Group(id, 0, ref invalid, ref outside);
        ulong g1 = Group(id, 4, ref invalid, ref outside);
        ulong g2 = Group(id, 8, ref invalid, ref outside);
        ulong g3 = Group(id, 12, ref invalid, ref outside);
        ulong g4 = Group(id, 16, ref invalid, ref outside);
        int last0 = Value(id[20], ref invalid, ref outside);
        int last1 = Value(id[21], ref invalid, ref outside);
        invalid |= (last1 & 0b1111) == 0 ? 0 : -1; // 16 bytes end in 2 bits and 4 zero bits: one spelling only
        if (invalid < 0 || outside != 0)
        {
            return false;
        }

        // Each group is 3 bytes of the key in order; the key's bytes are the two halves, little-endian.
        ulong last = (ulong)((last0 << 2) | (last1 >> 4));
        low = g0 | (g1 << 24) | ((g2 & 0xFFFF) << 48);
        ulong whole = (g2 >> 16) | (g3 << 8) | (g4 << 32) | (last << 56);
        high = whole & RandomHighMask;
        slot = (int)(uint)(whole >> (64 - SlotBits)) ^ Mix(low, high, secret);
        return true;
    }

    /// <summary>27 bits that the random key and the store's secret decide and nobody without the secret can predict.</summary>
    private static int Mix(ulong low, ulong high, ulong secret)
    {
        ulong h = (low ^ secret) * 0x9E3779B97F4A7C15UL;
        h ^= (high + secret) * 0xC2B2AE3D27D4EB4FUL;
        h ^= h >> 31;
        return (int)(uint)(h >> (64 - SlotBits));
    }

    /// <summary>Writes the 3 lowest bytes of <paramref name="bytes"/> (first byte lowest) as four characters.</summary>
    private static void WriteGroup(Span<char> chars, int start, ulong bytes)
    {
        int bits = (int)(BinaryPrimitives.ReverseEndianness((uint)bytes << 8) & 0xFFFFFF);
        chars[start] = Alphabet[bits >> 18];
        chars[start + 1] = Alphabet[(bits >> 12) & 63];
        chars[start + 2] = Alphabet[(bits >> 6) & 63];
        chars[start + 3] = Alphabet[bits & 63];
    }

    /// <summary>Four characters as their 3 bytes, first byte lowest.</summary>
    private static ulong Group(ReadOnlySpan<char> id, int start, ref int invalid, ref int outside)
    {
        int bits = (Value(id[start], ref invalid, ref outside) << 18)
            | (Value(id[start + 1], ref invalid, ref outside) << 12)
            | (Value(id[start + 2], ref invalid, ref outside) << 6)
            | Value(id[start + 3], ref invalid, ref outside);
        return BinaryPrimitives.ReverseEndianness((uint)bits << 8);
    }

    private static int Value(char c, ref int invalid, ref int outside)
    {
        int value = Values[c & 127];
        invalid |= value;
        outside |= c >> 7;
        return value;
    }

    private static sbyte[] BuildValues()
    {
        var values = new sbyte[128];
        Array.Fill(values, (sbyte)-1);
        for (int i = 0; i < Alphabet.Length; i++)
        {
            values[Alphabet[i]] = (sbyte)i;
        }

        return values;
    }
}
