using Microsoft.Extensions.Options;

namespace Servables.Async;

/// <summary>Validates every named <see cref="AsyncApiOptions"/> with its own <see cref="AsyncApiOptions.Validate"/>, each problem prefixed with the API's name.</summary>
/// <remarks>Holds no rules of its own: they are on <see cref="AsyncApiOptions"/>. Stateless and thread-safe.</remarks>
internal sealed class NamedAsyncApiOptionsValidator : IValidateOptions<AsyncApiOptions>
{
    public ValidateOptionsResult Validate(string? name, AsyncApiOptions options)
    {
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => $"Async API '{name}': {e}"));
    }
}
