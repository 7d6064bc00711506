namespace Servables.Async;

/// <summary>
/// The ids <see cref="InMemoryAsyncResultStore"/> makes for an async API: 128 cryptographically
/// random bits, then the slot of the store's table that holds the request, so that reading a
/// request goes straight to its entry instead of through a hash index.
/// </summary>
/// <remarks>
/// 27 URL-safe characters of the base64url alphabet: 22 carry the random bits, 6 at a time
/// (the last one 2, so it is one of <c>A B C D</c>), 5 carry the slot (30 bits). Each id has exactly
/// one spelling, so two different strings never name one entry. The slot says where to look, not
/// what is there: a read also compares the random bits, so a guessed or stale id finds nothing.
/// Stateless and thread-safe.
/// </remarks>
internal static class SlotRequestId
{
    /// <summary>Characters in an id.</summary>
    public const int Length = KeyChars + SlotChars;

    /// <summary>The largest slot an id can carry.</summary>
    public const int MaxSlot = (1 << (SlotChars * 6)) - 1;

    private const int KeyChars = 22;
    private const int SlotChars = 5;
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    private static readonly sbyte[] Values = BuildValues();

    /// <summary>The id of the request with random key <paramref name="low"/>, <paramref name="high"/> in <paramref name="slot"/>.</summary>
    public static string Format(ulong low, ulong high, int slot) =>
        string.Create(Length, (low, high, slot), static (chars, id) =>
        {
            for (int i = 0; i < KeyChars - 1; i++)
            {
                chars[i] = Alphabet[(int)(Bits(id.low, id.high, i * 6) & 63)];
            }

            chars[KeyChars - 1] = Alphabet[(int)(id.high >> 62)];
            for (int i = 0; i < SlotChars; i++)
            {
                chars[KeyChars + i] = Alphabet[(id.slot >> ((SlotChars - 1 - i) * 6)) & 63];
            }
        });

    /// <summary>Reads an id back; false for any string <see cref="Format"/> does not make.</summary>
    public static bool TryParse(ReadOnlySpan<char> id, out ulong low, out ulong high, out int slot)
    {
        low = 0;
        high = 0;
        slot = 0;
        if (id.Length != Length)
        {
            return false;
        }

        for (int i = 0; i < KeyChars; i++)
        {
            int value = ValueOf(id[i]);
            if (value < 0 || (i == KeyChars - 1 && value > 3))
            {
                return false;
            }

            int bit = i * 6;
            if (bit < 64)
            {
                low |= (ulong)value << bit;
            }

            if (bit > 58)
            {
                high |= bit >= 64 ? (ulong)value << (bit - 64) : (ulong)value >> (64 - bit);
            }
        }

        for (int i = KeyChars; i < Length; i++)
        {
            int value = ValueOf(id[i]);
            if (value < 0)
            {
                return false;
            }

            slot = (slot << 6) | value;
        }

        return true;
    }

    private static ulong Bits(ulong low, ulong high, int bit) => bit switch
    {
        < 64 when bit <= 58 => low >> bit,
        < 64 => (low >> bit) | (high << (64 - bit)),
        _ => high >> (bit - 64),
    };

    private static int ValueOf(char c) => c < 128 ? Values[c] : -1;

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
