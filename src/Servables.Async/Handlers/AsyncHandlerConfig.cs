using System.Collections;
using System.Globalization;

namespace Servables.Async;

/// <summary>The API's <c>config</c>: read-only string settings handed to the handler's constructor.</summary>
/// <remarks>
/// Bound from <see cref="AsyncApiOptions.Config"/> (which <see cref="AsyncApiOptions.BindConfig"/>
/// can fill from an <c>IConfiguration</c> section, nested keys joined with ':'). Keys compare
/// ordinally, ignoring case. Immutable and thread-safe.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1710", Justification = "The name is the contract: Cortex calls it the API's config.")]
public sealed class AsyncHandlerConfig : IReadOnlyDictionary<string, string?>
{
    private readonly Dictionary<string, string?> _values;

    /// <summary>Creates a config from <paramref name="values"/> (copied).</summary>
    public AsyncHandlerConfig(IEnumerable<KeyValuePair<string, string?>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = new Dictionary<string, string?>(values, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>The API this config belongs to.</summary>
    public string ApiName { get; init; } = string.Empty;

    /// <inheritdoc />
    public int Count => _values.Count;

    /// <inheritdoc />
    public IEnumerable<string> Keys => _values.Keys;

    /// <inheritdoc />
    public IEnumerable<string?> Values => _values.Values;

    /// <inheritdoc />
    public string? this[string key] => _values[key];

    /// <summary>The value of <paramref name="key"/> converted to <typeparamref name="T"/> (invariant culture), or <paramref name="defaultValue"/> when absent.</summary>
    /// <exception cref="FormatException">The value does not convert; the message names the key.</exception>
    public T GetValue<T>(string key, T defaultValue)
    {
        if (!_values.TryGetValue(key, out string? text) || text is null)
        {
            return defaultValue;
        }

        try
        {
            Type target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
            return (T)(target.IsEnum ? Enum.Parse(target, text, ignoreCase: true) : Convert.ChangeType(text, target, CultureInfo.InvariantCulture));
        }
        catch (Exception ex) when (ex is InvalidCastException or FormatException or OverflowException or ArgumentException)
        {
            throw new FormatException($"Config key '{key}' of API '{ApiName}' has the value '{text}', which is not a valid {typeof(T).Name}.", ex);
        }
    }

    /// <inheritdoc />
    public bool ContainsKey(string key) => _values.ContainsKey(key);

    /// <inheritdoc />
    public bool TryGetValue(string key, out string? value) => _values.TryGetValue(key, out value);

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, string?>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
