using System.Buffers.Binary;
using System.Buffers.Text;

namespace Servables.Async;

/// <summary>
/// The ids <see cref="InMemoryAsyncResultStore"/> makes for an async API: 128 cryptographically
/// random bits, then the slot of the store's table that holds the request, so that reading a
/// request goes straight to its entry instead of through a hash index.
/// </summary>
/// <remarks>
/// 27 URL-safe characters: the random bits as 16 bytes in base64url without padding (22 characters),
/// then the slot in 5 more of that alphabet (30 bits). Each id has exactly
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
            Span<byte> key = stackalloc byte[16];
            BinaryPrimitives.WriteUInt64LittleEndian(key, id.low);
            BinaryPrimitives.WriteUInt64LittleEndian(key[8..], id.high);
            Base64Url.EncodeToChars(key, chars);
            for (int i = 0; i < SlotChars; i++)
            {
                chars[KeyChars + i] = Alphabet[(id.slot >> ((SlotChars - 1 - i) * 6)) & 63];
            }
        });

    /// <summary>Reads an id back; false for any string <see cref="Format"/> does not make.</summary>
    public static bool TryParse(ReadOnlySpan<char> id, out ulong low, out ulong high, out int slot)
    {
        (low, high, slot) = (0, 0, 0);

        // 16 bytes end in a character that carries 2 bits and 4 zero bits: A, Q, g or w.
        if (id.Length != Length || (ValueOf(id[KeyChars - 1]) & 0b1111) != 0)
        {
            return false;
        }

        for (int i = 0; i < Length; i++)
        {
            int value = ValueOf(id[i]);
            if (value < 0)
            {
                return false; // the decoder below would skip white space and take '+' and '/'
            }

            if (i >= KeyChars)
            {
                slot = (slot << 6) | value;
            }
        }

        Span<byte> key = stackalloc byte[16];
        if (Base64Url.DecodeFromChars(id[..KeyChars], key) != 16)
        {
            return false;
        }

        low = BinaryPrimitives.ReadUInt64LittleEndian(key);
        high = BinaryPrimitives.ReadUInt64LittleEndian(key[8..]);
        return true;
    }

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
