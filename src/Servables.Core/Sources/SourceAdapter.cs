namespace Servables;

/// <summary>Creates <see cref="SourceAdapter{TIn, TOut}"/> instances from delegates.</summary>
public static class SourceAdapter
{
    /// <summary>An adapter that converts each version with <paramref name="convert"/>, such as <c>(id, path) =&gt; new MyLoader(path)</c>.</summary>
    public static SourceAdapter<TIn, TOut> Create<TIn, TOut>(Func<ServableId, TIn, TOut> convert)
    {
        ArgumentNullException.ThrowIfNull(convert);
        return new DelegateSourceAdapter<TIn, TOut>(convert);
    }
}
