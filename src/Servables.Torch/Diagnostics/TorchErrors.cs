namespace Servables.Torch;

/// <summary>Turns libtorch's error text (message, TorchScript traceback, C++ frames) into something a person reads.</summary>
internal static class TorchErrors
{
    /// <summary>The line that says what went wrong: libtorch's last "Error:" line when there is a traceback, else its first line.</summary>
    public static string FirstLine(Exception exception)
    {
        string message = exception.Message;
        int frames = message.IndexOf("\nException raised from", StringComparison.Ordinal);
        if (frames >= 0)
        {
            message = message[..frames];
        }

        string[] lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        string? error = lines.LastOrDefault(l => l.Contains("Error: ", StringComparison.Ordinal));
        string line = error ?? (lines.Length > 0 ? lines[0] : exception.GetType().Name);
        return line.EndsWith('.') ? line : line + ".";
    }
}
