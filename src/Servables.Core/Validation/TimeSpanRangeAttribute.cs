using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace Servables;

/// <summary>Bounds a <see cref="TimeSpan"/> option, optionally also allowing <see cref="Timeout.InfiniteTimeSpan"/>, with a message that names the option, the range and the value.</summary>
/// <remarks>
/// <see cref="RangeAttribute"/> cannot say "or infinite" (and parses its bounds through a type
/// converter); this one takes its bounds as invariant <see cref="TimeSpan"/> strings
/// ("00:00:00.001", "1.00:00:00"). The message reads
/// "<c>LoadTimeout must be between 1 ms and 1 day, or Timeout.InfiniteTimeSpan; it is 00:00:00.</c>".
/// <see cref="Describe"/> lets a hand-written rule (dictionary entries) apply the same range under its own name.
/// Immutable and thread-safe.
/// </remarks>
[AttributeUsage(AttributeTargets.Property, AllowMultiple = false)]
internal sealed class TimeSpanRangeAttribute : ValidationAttribute
{
    public TimeSpanRangeAttribute(string minimum, string maximum)
    {
        Minimum = TimeSpan.Parse(minimum, CultureInfo.InvariantCulture);
        Maximum = TimeSpan.Parse(maximum, CultureInfo.InvariantCulture);
    }

    public TimeSpan Minimum { get; }

    public TimeSpan Maximum { get; }

    /// <summary>True to accept <see cref="Timeout.InfiniteTimeSpan"/> as well.</summary>
    public bool AllowInfinite { get; set; }

    /// <summary>True when <paramref name="value"/> is in range (or infinite, when allowed).</summary>
    public bool Accepts(TimeSpan value) =>
        (AllowInfinite && value == Timeout.InfiniteTimeSpan) || (value >= Minimum && value <= Maximum);

    /// <summary>The problem with <paramref name="value"/> of the option <paramref name="name"/>; null when it is valid.</summary>
    public string? Describe(string name, TimeSpan value) =>
        Accepts(value)
            ? null
            : $"{name} must be between {Words(Minimum)} and {Words(Maximum)}{(AllowInfinite ? ", or Timeout.InfiniteTimeSpan" : string.Empty)}; it is {value}.";

    public override bool IsValid(object? value) => value is TimeSpan span && Accepts(span);

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        value is TimeSpan span
            ? Describe(validationContext.MemberName ?? validationContext.DisplayName, span) is { } problem ? new ValidationResult(problem) : ValidationResult.Success
            : new ValidationResult($"{validationContext.MemberName} must be a TimeSpan; it is {value ?? "null"}.");

    /// <summary>A bound as people write it: zero, 1 ms, 10 ms, 1 hour, 1 day.</summary>
    private static string Words(TimeSpan bound) => bound switch
    {
        { Ticks: 0 } => "zero",
        { TotalDays: >= 1 } when bound.TotalDays == Math.Floor(bound.TotalDays) => Plural(bound.TotalDays, "day"),
        { TotalHours: >= 1 } when bound.TotalHours == Math.Floor(bound.TotalHours) => Plural(bound.TotalHours, "hour"),
        { TotalMinutes: >= 1 } when bound.TotalMinutes == Math.Floor(bound.TotalMinutes) => Plural(bound.TotalMinutes, "minute"),
        { TotalSeconds: >= 1 } when bound.TotalSeconds == Math.Floor(bound.TotalSeconds) => bound.TotalSeconds.ToString(CultureInfo.InvariantCulture) + " s",
        _ => bound.TotalMilliseconds.ToString(CultureInfo.InvariantCulture) + " ms",
    };

    private static string Plural(double count, string unit) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + unit + (count == 1 ? string.Empty : "s");
}
