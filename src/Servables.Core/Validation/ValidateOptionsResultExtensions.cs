using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Reads a <see cref="ValidateOptionsResult"/> as the list of problems the options' <c>Validate()</c> methods return.</summary>
/// <remarks>Stateless and thread-safe.</remarks>
internal static class ValidateOptionsResultExtensions
{
    /// <summary>The failures, one message each; empty when the options are valid.</summary>
    public static List<string> Problems(this ValidateOptionsResult result) =>
        result.Failed && result.Failures is { } failures ? [.. failures] : [];
}
