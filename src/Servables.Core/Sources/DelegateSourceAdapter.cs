namespace Servables;

/// <summary>The adapter <see cref="SourceAdapter.Create{TIn, TOut}"/> returns.</summary>
internal sealed class DelegateSourceAdapter<TIn, TOut>(Func<ServableId, TIn, TOut> convert) : SourceAdapter<TIn, TOut>
{
    protected override TOut Convert(ServableId id, TIn data) => convert(id, data);
}
