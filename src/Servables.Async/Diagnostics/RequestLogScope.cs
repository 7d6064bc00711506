using System.Collections;

namespace Servables.Async;

/// <summary>The logging scope of one request: <c>request_id</c> and <c>api</c>.</summary>
/// <remarks>A struct: with no logging provider that keeps scopes, beginning one allocates nothing.</remarks>
internal readonly struct RequestLogScope(string apiName, string requestId) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public int Count => 2;

    public KeyValuePair<string, object?> this[int index] => index switch
    {
        0 => new("request_id", requestId),
        1 => new("api", apiName),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        yield return this[0];
        yield return this[1];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"request_id:{requestId} api:{apiName}";
}
