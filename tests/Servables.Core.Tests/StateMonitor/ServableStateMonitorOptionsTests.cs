namespace Servables.Core.Tests.StateMonitor;

public sealed class ServableStateMonitorOptionsTests
{
    [Fact]
    public void Validate_Defaults_AreValid() => Assert.Empty(new ServableStateMonitorOptions().Validate());

    [Fact]
    public void Validate_OutOfRange_NamesOptionRangeAndValue()
    {
        IReadOnlyList<string> errors = new ServableStateMonitorOptions { MaxLogEvents = -1, MaxEndedVersions = 1_000_001, TimeProvider = null! }.Validate();

        Assert.Equal(
            [
                "MaxLogEvents must be between 0 and 1,000,000; it is -1.",
                "MaxEndedVersions must be between 0 and 1,000,000; it is 1000001.",
                "TimeProvider must be set.",
            ],
            errors);
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsWithTheProblem()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => new ServableStateMonitor(new AspiredVersionsManager(new AspiredVersionsManagerOptions { ManageStateInterval = Timeout.InfiniteTimeSpan }), new ServableStateMonitorOptions { MaxLogEvents = -1 }));

        Assert.Contains("MaxLogEvents must be between 0 and 1,000,000; it is -1.", ex.Message, StringComparison.Ordinal);
    }
}
