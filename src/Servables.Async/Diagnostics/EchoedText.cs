using System.Buffers;
using System.Globalization;
using System.Text;

namespace Servables.Async;

/// <summary>What a message or a log may quote of a caller's text (a Content-Type, a request id): short, and without control characters.</summary>
/// <remarks>A caller's CR or LF quoted as is would forge log lines or header lines downstream. Stateless and thread-safe.</remarks>
internal static class EchoedText
{
    /// <summary>How much of a caller's text a message quotes.</summary>
    public const int MaxQuoted = 64;

    private static readonly SearchValues<char> ControlCharacters = SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(c => (char)c), (char)0x7F, .. Enumerable.Range(0x80, 0x20).Select(c => (char)c)]);

    private static readonly SearchValues<char> ControlCharactersButTab = SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Where(c => c != '\t').Select(c => (char)c), (char)0x7F, .. Enumerable.Range(0x80, 0x20).Select(c => (char)c)]);

    /// <summary>The index of the first control character (C0, DEL or C1) in <paramref name="text"/>, or -1.</summary>
    public static int IndexOfControl(ReadOnlySpan<char> text) => text.IndexOfAny(ControlCharacters);

    /// <summary>The index of the first control character in <paramref name="text"/> other than a tab (whitespace in a header), or -1.</summary>
    public static int IndexOfControlButTab(ReadOnlySpan<char> text) => text.IndexOfAny(ControlCharactersButTab);

    /// <summary>Up to <see cref="MaxQuoted"/> characters of <paramref name="text"/> (then "…"), each control character written as <c>\uXXXX</c>.</summary>
    public static string Quote(string text)
    {
        ReadOnlySpan<char> head = text.Length <= MaxQuoted ? text : text.AsSpan(0, MaxQuoted);
        string suffix = text.Length <= MaxQuoted ? string.Empty : "…";
        if (IndexOfControl(head) < 0)
        {
            return text.Length <= MaxQuoted ? text : string.Concat(head, suffix);
        }

        var quoted = new StringBuilder(head.Length + 16);
        foreach (char c in head)
        {
            if (ControlCharacters.Contains(c))
            {
                quoted.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
            else
            {
                quoted.Append(c);
            }
        }

        return quoted.Append(suffix).ToString();
    }
}
