using Microsoft.Extensions.Options;

namespace Servables.Onnx;

/// <summary>Runs <see cref="OnnxServableOptions.Validate"/> for every named instance when the host starts.</summary>
internal sealed class OnnxServableOptionsValidator : IValidateOptions<OnnxServableOptions>
{
    public ValidateOptionsResult Validate(string? name, OnnxServableOptions options)
    {
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(errors.Select(e => $"OnnxServableOptions '{name}': {e}"));
    }
}
