namespace Servables.Async;

/// <summary>The wire names of <see cref="AsyncRequestState"/>, as Cortex's AsyncAPI spells them.</summary>
public static class AsyncRequestStateNames
{
    /// <summary>Returns <c>not_found</c>, <c>in_queue</c>, <c>in_progress</c>, <c>completed</c> or <c>failed</c>.</summary>
    public static string ToWireName(this AsyncRequestState state) => state switch
    {
        AsyncRequestState.InQueue => "in_queue",
        AsyncRequestState.InProgress => "in_progress",
        AsyncRequestState.Completed => "completed",
        AsyncRequestState.Failed => "failed",
        _ => "not_found",
    };
}
