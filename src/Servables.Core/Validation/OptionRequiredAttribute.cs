using System.ComponentModel.DataAnnotations;

namespace Servables;

/// <summary>A <see cref="RequiredAttribute"/> whose message reads "<c>TimeProvider must be set.</c>", as the other option messages do.</summary>
/// <remarks>Immutable and thread-safe.</remarks>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
internal sealed class OptionRequiredAttribute : RequiredAttribute
{
    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        IsValid(value) ? ValidationResult.Success : new ValidationResult($"{validationContext.MemberName} must be set.");
}
