using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;

namespace Servables.Async;

/// <summary>Creates and checks request ids.</summary>
/// <remarks>Thread-safe.</remarks>
internal static class AsyncRequestIds
{
    public const int MaxLength = 128;

    private const int IdBytes = 16;
    private const int BufferBytes = IdBytes * 256;

    // Each thread draws 256 ids' worth from the OS's generator at once: a call into it is far dearer than a copy.
    private static readonly SearchValues<char> Allowed = SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~");

    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_used;

    /// <summary>
    /// A new id, base64url without padding (22 characters) of 16 bytes: the time in milliseconds (48 bits,
    /// as UUID version 7 has it) and 80 bits from the OS's cryptographic generator.
    /// </summary>
    /// <remarks>
    /// Ids made close in time share their first characters, so a durable store's index on them takes a burst
    /// of new ids on a few neighbouring pages instead of one random page each (fewer pages written per
    /// commit); 80 random bits keep them unguessable.
    /// </remarks>
    public static string New() => New(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

    /// <inheritdoc cref="New()"/>
    /// <param name="unixMilliseconds">The time the id carries, in milliseconds since 1970 (the low 48 bits are kept).</param>
    internal static string New(long unixMilliseconds)
    {
        Span<byte> bytes = stackalloc byte[IdBytes];
        NextRandom(bytes);
        BinaryPrimitives.WriteUInt16BigEndian(bytes, (ushort)(unixMilliseconds >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(bytes[2..], (uint)unixMilliseconds);
        return Base64Url.EncodeToString(bytes);
    }

    /// <summary>128 fresh bits from the OS's cryptographic generator, drawn from this thread's buffer.</summary>
    public static void NextKey(out ulong low, out ulong high)
    {
        Span<byte> bytes = stackalloc byte[IdBytes];
        NextRandom(bytes);
        low = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        high = BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]);
    }

    private static void NextRandom(Span<byte> destination)
    {
        byte[]? random = t_random;
        if (random is null || t_used == BufferBytes)
        {
            random = t_random ??= new byte[BufferBytes];
            RandomNumberGenerator.Fill(random);
            t_used = 0;
        }

        Span<byte> bytes = random.AsSpan(t_used, IdBytes);
        bytes.CopyTo(destination);
        bytes.Clear(); // handed out once: never left behind in the buffer
        t_used += IdBytes;
    }

    /// <summary>True for 1 to 128 characters of <c>A-Z a-z 0-9 - _ . ~</c> (URL-safe, log-safe).</summary>
    public static bool IsWellFormed(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }

        return !id.AsSpan().ContainsAnyExcept(Allowed);
    }
}
