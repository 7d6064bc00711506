using Servables.Testing;

namespace Servables.Core.Tests.Handles;

public sealed class ServableHandleTests : IAsyncLifetime
{
    private readonly ManagerDriver _driver = new();

    public async Task InitializeAsync()
    {
        _driver.Aspire("m", [1]);
        await _driver.SettleAsync();
    }

    public async Task DisposeAsync() => await _driver.DisposeAsync();

    [Fact]
    public void Dispose_Twice_IsIdempotentAndValueThrows()
    {
        ServableHandle<FakeServable> handle = _driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        Assert.True(handle.HasValue);
        Assert.Equal(new ServableId("m", 1), handle.Value.Id);

        handle.Dispose();
        handle.Dispose();

        Assert.False(handle.HasValue);
        ObjectDisposedException error = Assert.Throws<ObjectDisposedException>(() => handle.Value);
        Assert.Contains("m:1", error.Message, StringComparison.Ordinal);
        Assert.Equal(new ServableId("m", 1), handle.Id);
    }

    [Fact]
    public async Task Dispose_OfCopy_EndsTheLeaseOnceForAllCopies()
    {
        ServableHandle<FakeServable> original = _driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        ServableHandle<FakeServable> copy = original;
        ServableHandle<FakeServable> other = _driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));

        copy.Dispose();
        original.Dispose(); // Must not release the lease a second time.

        Assert.False(original.HasValue);
        Assert.True(other.HasValue);

        // Un-aspire: the version must stay loaded while `other` is held, which would not be the
        // case had the double dispose above released two leases.
        _driver.Aspire("m", []);
        await _driver.SettleAsync();
        Assert.Equal(ServableManagerState.Unloading, _driver.StateOf("m", 1));
        Assert.False(other.Value.IsDisposed);

        other.Dispose();
        await Eventually.WaitUntilAsync(() => _driver.StateOf("m", 1) == ServableManagerState.End);
        Assert.True(_driver.Loaders[new ServableId("m", 1)].Created!.IsDisposed);
    }

    [Fact]
    public void DefaultHandle_IsEmpty()
    {
        ServableHandle<FakeServable> empty = default;
        Assert.False(empty.HasValue);
        Assert.Throws<InvalidOperationException>(() => empty.Value);
        empty.Dispose();
    }

    [Fact]
    public void Equality_SameServableAndId_Equal()
    {
        using ServableHandle<FakeServable> a = _driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Latest("m"));
        using ServableHandle<FakeServable> b = _driver.Manager.GetServableHandle<FakeServable>(ServableRequest.Specific("m", 1));
        Assert.True(a == b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, default);
        Assert.Same(a.Get(), b.Value);
    }

    [Fact]
    public void GetServableHandle_WrongType_ThrowsNamingActualType()
    {
        InvalidCastException error = Assert.Throws<InvalidCastException>(() => _driver.Manager.GetServableHandle<string>(ServableRequest.Latest("m")));
        Assert.Contains(typeof(FakeServable).FullName!, error.Message, StringComparison.Ordinal);
        Assert.Contains("m:1", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidCastException>(() => _driver.Manager.TryGetServableHandle<string>(ServableRequest.Latest("m"), out _));
    }

    [Fact]
    public async Task GetServableHandle_WrongType_DoesNotLeakALease()
    {
        Assert.Throws<InvalidCastException>(() => _driver.Manager.GetServableHandle<string>(ServableRequest.Latest("m")));
        _driver.Aspire("m", []);
        await _driver.SettleAsync();
        await Eventually.WaitUntilAsync(() => _driver.StateOf("m", 1) == ServableManagerState.End);
    }

    [Fact]
    public void BaseType_CanBeRequested()
    {
        using ServableHandle<IDisposable> handle = _driver.Manager.GetServableHandle<IDisposable>(ServableRequest.Latest("m"));
        Assert.IsType<FakeServable>(handle.Value);
    }

    [Fact]
    public void CustomUntypedHandle_EndsOnceThroughTypedHandle()
    {
        var lease = new CountingLease(new ServableId("x", 4), "servable");
        var handle = new ServableHandle<string>(lease, 42);
        ServableHandle<string> copy = handle;
        Assert.Equal("servable", handle.Value);
        handle.Dispose();
        copy.Dispose();
        Assert.Equal(1, lease.Ended);
        Assert.Throws<InvalidCastException>(() => new ServableHandle<Uri>(new CountingLease(new ServableId("x", 1), "not a uri"), 1));
    }

    private sealed class CountingLease(ServableId id, object servable) : UntypedServableHandle
    {
        public int Ended { get; private set; }

        public override ServableId Id { get; } = id;

        public override object Servable { get; } = servable;

        protected internal override bool IsLeaseHeld(long leaseToken) => leaseToken == 42 && Ended == 0;

        protected internal override bool TryEndLease(long leaseToken)
        {
            if (!IsLeaseHeld(leaseToken))
            {
                return false;
            }

            Ended++;
            return true;
        }
    }
}
