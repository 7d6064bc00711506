using Microsoft.Extensions.Options;

namespace Servables.Async;

/// <summary>Validates every named <see cref="AsyncApiOptions"/> with its own <see cref="AsyncApiOptions.Validate"/>, each problem prefixed with the API's name.</summary>
/// <remarks>
/// Holds no rules of its own: they are on <see cref="AsyncApiOptions"/>, with those that depend on the API's
/// handler type (found in the registry) added for a registered API. Stateless and thread-safe.
/// </remarks>
internal sealed class NamedAsyncApiOptionsValidator(AsyncApiRegistry registry) : IValidateOptions<AsyncApiOptions>
{
    public ValidateOptionsResult Validate(string? name, AsyncApiOptions options)
    {
        IReadOnlyList<string> errors = name is not null && registry.Handlers.TryGetValue(name, out Type? handlerType)
            ? options.ValidateFor(handlerType)
            : options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors.Select(e => $"Async API '{name}': {e}"));
    }
}
