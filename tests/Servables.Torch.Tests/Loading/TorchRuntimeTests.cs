namespace Servables.Torch.Tests.Loading;

public sealed class TorchRuntimeTests
{
    [Fact]
    public void SetThreads_IntraOp_ChangesTheProcessWideCount()
    {
        int before = TorchRuntime.IntraOpThreads;
        try
        {
            TorchRuntime.SetThreads(before == 1 ? 2 : 1, TorchRuntime.InterOpThreads); // the inter-op count as it is: no change, no error

            Assert.Equal(before == 1 ? 2 : 1, TorchRuntime.IntraOpThreads);
        }
        finally
        {
            TorchRuntime.SetThreads(before);
        }
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1025, 0)]
    [InlineData(1, -1)]
    [InlineData(1, 1025)]
    public void SetThreads_OutOfRange_Throws(int intraOp, int interOp)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TorchRuntime.SetThreads(intraOp, interOp));
    }
}
