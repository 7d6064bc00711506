namespace Servables.Async;

/// <summary>A one-shot timer that calls back into an owner it holds weakly, so that a set timer never keeps its owner alive.</summary>
/// <remarks>
/// A timer set for days (a result's expiry) must not keep a store nobody disposed alive that long.
/// The callback runs without its creator's execution context (it belongs to no caller's scope), on
/// whatever thread the <see cref="TimeProvider"/> fires it. Thread-safe.
/// </remarks>
/// <typeparam name="TOwner">The owner's type.</typeparam>
internal sealed class WeakTimer<TOwner> : IDisposable
    where TOwner : class
{
    private readonly ITimer _timer;

    /// <summary>Creates the timer, unset.</summary>
    /// <param name="time">The clock that fires it.</param>
    /// <param name="owner">What the callback is for, held weakly.</param>
    /// <param name="callback">Called with the owner when the timer fires while the owner lives; should not capture it.</param>
    public WeakTimer(TimeProvider time, TOwner owner, Action<TOwner> callback)
    {
        bool restoreFlow = !ExecutionContext.IsFlowSuppressed();
        if (restoreFlow)
        {
            ExecutionContext.SuppressFlow();
        }

        try
        {
            _timer = time.CreateTimer(
                static state =>
                {
                    var (target, callback) = ((WeakReference<TOwner>, Action<TOwner>))state!;
                    if (target.TryGetTarget(out TOwner? owner))
                    {
                        callback(owner);
                    }
                },
                (new WeakReference<TOwner>(owner), callback),
                Timeout.InfiniteTimeSpan,
                Timeout.InfiniteTimeSpan);
        }
        finally
        {
            if (restoreFlow)
            {
                ExecutionContext.RestoreFlow();
            }
        }
    }

    /// <summary>Sets the timer to fire once, <paramref name="dueTicks"/> from now (at once when not positive); does nothing once disposed.</summary>
    public void Set(long dueTicks)
    {
        try
        {
            _timer.Change(TimeSpan.FromTicks(Math.Max(0, dueTicks)), Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: nothing is due any more.
        }
    }

    /// <summary>Stops the timer for good.</summary>
    public void Dispose() => _timer.Dispose();
}
