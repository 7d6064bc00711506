namespace Servables;

/// <summary>The manager's pooled implementation of <see cref="UntypedServableHandle"/>.</summary>
/// <remarks>One object serves many leases over its life, one at a time; <see cref="UntypedServableHandle.LeaseToken"/> tells them apart.</remarks>
internal sealed class ServableLease : UntypedServableHandle
{
    private LoadedVersion? _version;

    public override ServableId Id => Version.Id;

    public override object Servable => Version.Servable;

    private LoadedVersion Version => _version ?? throw new ObjectDisposedException(nameof(ServableLease), "This servable lease has ended.");

    /// <summary>Binds a rented lease to a version whose count the caller already incremented.</summary>
    public void Attach(LoadedVersion version) => _version = version;

    protected override void OnLeaseEnded()
    {
        LoadedVersion? version = _version;
        _version = null;
        LeasePool.Return(this);
        version?.Release();
    }
}
