namespace Servables.Async;

/// <summary>Which of the two handler contracts a handler class implements: <see cref="IAsyncHandler"/> (one request per call) or <see cref="IBatchAsyncHandler"/> (a batch per call).</summary>
/// <remarks>Stateless and thread-safe.</remarks>
internal static class AsyncHandlerKind
{
    /// <summary>Whether <paramref name="handlerType"/> is a batched handler.</summary>
    public static bool IsBatched(Type handlerType) => typeof(IBatchAsyncHandler).IsAssignableFrom(handlerType);

    /// <summary>Throws unless <paramref name="handlerType"/> implements exactly one of the two contracts.</summary>
    /// <exception cref="InvalidOperationException">It implements both, or neither.</exception>
    public static void CheckOne(Type handlerType, string apiName)
    {
        bool single = typeof(IAsyncHandler).IsAssignableFrom(handlerType);
        bool batched = IsBatched(handlerType);
        if (single && batched)
        {
            throw new InvalidOperationException(
                $"Handler {TypeNames.Qualified(handlerType)} of async API '{apiName}' implements both {nameof(IAsyncHandler)} and {nameof(IBatchAsyncHandler)}; the API could call either. Implement one: {nameof(IAsyncHandler)} to handle one request per call, {nameof(IBatchAsyncHandler)} to handle batches.");
        }

        if (!single && !batched)
        {
            throw new InvalidOperationException(
                $"Handler {TypeNames.Qualified(handlerType)} of async API '{apiName}' implements neither {nameof(IAsyncHandler)} nor {nameof(IBatchAsyncHandler)}; implement one of them.");
        }
    }
}
