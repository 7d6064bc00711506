using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace Servables;

/// <summary>A <see cref="RangeAttribute"/> on an integer option whose message names the option, the range and the value it got.</summary>
/// <remarks>
/// Used by the options validators that <c>[OptionsValidator]</c> generates; the message reads
/// "<c>MaxLoadRetries must be between 0 and 1,000; it is -1.</c>". Immutable and thread-safe.
/// </remarks>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
internal sealed class OptionRangeAttribute : RangeAttribute
{
    public OptionRangeAttribute(int minimum, int maximum)
        : base(minimum, maximum)
    {
    }

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        IsValid(value)
            ? ValidationResult.Success
            : new ValidationResult(string.Format(
                CultureInfo.InvariantCulture,
                "{0} must be between {1:#,0} and {2:#,0}; it is {3}.",
                validationContext.MemberName,
                Minimum,
                Maximum,
                value));
}
