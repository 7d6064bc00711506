using Microsoft.Extensions.Options;

namespace Servables.Async;

/// <summary>Validates every named <see cref="AsyncApiOptions"/> with its own <see cref="AsyncApiOptions.Validate"/>.</summary>
internal sealed class AsyncApiOptionsValidator : IValidateOptions<AsyncApiOptions>
{
    public ValidateOptionsResult Validate(string? name, AsyncApiOptions options)
    {
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => $"Async API '{name}': {e}"));
    }
}
