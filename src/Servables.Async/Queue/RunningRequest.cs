namespace Servables.Async;

/// <summary>A request a handler is running: its cancellation, and why it was cancelled.</summary>
internal sealed class RunningRequest(CancellationTokenSource cancellation)
{
    public CancellationTokenSource Cancellation { get; } = cancellation;

    public bool CancelledByCaller { get; private set; }

    public void CancelByCaller()
    {
        CancelledByCaller = true;
        Cancellation.Cancel();
    }
}
