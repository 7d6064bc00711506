using Microsoft.Extensions.Options;

namespace Servables;

/// <summary>Adapts an options type's own <c>Validate()</c> list of problems to <see cref="IValidateOptions{TOptions}"/>.</summary>
internal sealed class ListedOptionsValidator<TOptions>(Func<TOptions, IReadOnlyList<string>> validate) : IValidateOptions<TOptions>
    where TOptions : class
{
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        IReadOnlyList<string> errors = validate(options);
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
