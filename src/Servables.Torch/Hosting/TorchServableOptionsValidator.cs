using Microsoft.Extensions.Options;

namespace Servables.Torch;

/// <summary>Validates every named <see cref="TorchServableOptions"/> when the host starts.</summary>
internal sealed class TorchServableOptionsValidator : IValidateOptions<TorchServableOptions>
{
    public ValidateOptionsResult Validate(string? name, TorchServableOptions options)
    {
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(errors.Select(e => $"TorchServableOptions '{name}': {e}"));
    }
}
