namespace Servables.Async;

/// <summary>How a payload was decoded, from its Content-Type.</summary>
public enum AsyncPayloadKind
{
    /// <summary><c>application/json</c> or <c>*/*+json</c>: parsed JSON in <see cref="AsyncPayload.Json"/>.</summary>
    Json,

    /// <summary><c>text/plain</c>: a string in <see cref="AsyncPayload.Text"/>, decoded with the <c>charset</c> parameter (UTF-8 when absent).</summary>
    Text,

    /// <summary>Anything else: the raw bytes in <see cref="AsyncPayload.Bytes"/>.</summary>
    Bytes,
}
