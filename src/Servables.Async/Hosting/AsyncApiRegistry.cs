namespace Servables.Async;

/// <summary>The APIs registered in a service collection, by name, with their handler types.</summary>
/// <remarks>Registered as an instance, so that repeated <c>AddAsyncHandler</c> calls can find it. Used only at registration time.</remarks>
internal sealed class AsyncApiRegistry
{
    public Dictionary<string, Type> Handlers { get; } = new(StringComparer.Ordinal);
}
