using System.Buffers.Text;
using System.Security.Cryptography;

namespace Servables.Async;

/// <summary>Creates and checks request ids.</summary>
/// <remarks>Thread-safe.</remarks>
internal static class AsyncRequestIds
{
    public const int MaxLength = 128;

    /// <summary>A new id: 128 bits from the OS's cryptographic generator, base64url without padding (22 characters).</summary>
    public static string New()
    {
        Span<byte> bytes = stackalloc byte[16];
        RandomNumberGenerator.Fill(bytes);
        return Base64Url.EncodeToString(bytes);
    }

    /// <summary>True for 1 to 128 characters of <c>A-Z a-z 0-9 - _ . ~</c> (URL-safe, log-safe).</summary>
    public static bool IsWellFormed(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }

        foreach (char c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '~'))
            {
                return false;
            }
        }

        return true;
    }
}
