namespace Servables.Core.Tests.Manager;

public sealed class AspiredVersionsManagerOptionsTests
{
    [Fact]
    public void Validate_Defaults_AreValid() => Assert.Empty(new AspiredVersionsManagerOptions().Validate());

    [Fact]
    public void Validate_WorkerCountOutOfRange_NamesOptionRangeAndValue()
    {
        IReadOnlyList<string> errors = new AspiredVersionsManagerOptions { LoadWorkerCount = 0, UnloadWorkerCount = 65 }.Validate();

        Assert.Equal(["LoadWorkerCount must be between 1 and 64; it is 0.", "UnloadWorkerCount must be between 1 and 64; it is 65."], errors);
    }

    [Theory]
    [InlineData(1, 64)]
    [InlineData(64, 1)]
    public void Validate_WorkerCountsAtTheBounds_AreValid(int load, int unload) =>
        Assert.Empty(new AspiredVersionsManagerOptions { LoadWorkerCount = load, UnloadWorkerCount = unload }.Validate());

    [Fact]
    public void Validate_MissingPolicyAndClock_SaysTheyMustBeSet()
    {
        IReadOnlyList<string> errors = new AspiredVersionsManagerOptions { Policy = null!, TimeProvider = null! }.Validate();

        Assert.Equal(["Policy must be set.", "TimeProvider must be set."], errors);
    }

    [Fact]
    public void Validate_TimeSpansOutOfRange_NameEachWithTheRangeAndValue()
    {
        var options = new AspiredVersionsManagerOptions
        {
            MaxLoadRetries = 1001,
            LoadRetryInterval = TimeSpan.FromDays(2),
            ManageStateInterval = TimeSpan.Zero,
            StopTimeout = TimeSpan.FromSeconds(-1),
        };

        IReadOnlyList<string> errors = options.Validate();

        Assert.Equal(
            [
                "MaxLoadRetries must be between 0 and 1,000; it is 1001.",
                "LoadRetryInterval must be between zero and 1 day; it is 2.00:00:00.",
                "StopTimeout must be between zero and 1 hour, or Timeout.InfiniteTimeSpan; it is -00:00:01.",
                "ManageStateInterval must be between 1 ms and 1 hour, or Timeout.InfiniteTimeSpan; it is 00:00:00.",
            ],
            errors);
    }

    [Fact]
    public void Validate_InfiniteWhereAllowed_IsValid_AndWhereNot_IsRejected()
    {
        var options = new AspiredVersionsManagerOptions
        {
            LoadTimeout = Timeout.InfiniteTimeSpan,
            StopTimeout = Timeout.InfiniteTimeSpan,
            ManageStateInterval = Timeout.InfiniteTimeSpan,
        };
        options.ServableLoadTimeouts["big"] = Timeout.InfiniteTimeSpan;
        Assert.Empty(options.Validate());

        options.LoadRetryInterval = Timeout.InfiniteTimeSpan;
        string error = Assert.Single(options.Validate());
        Assert.StartsWith("LoadRetryInterval must be between zero and 1 day; it is ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ServableLoadTimeouts_EachEntryIsCheckedByName()
    {
        var options = new AspiredVersionsManagerOptions();
        options.ServableLoadTimeouts["ok"] = TimeSpan.FromHours(3);
        options.ServableLoadTimeouts["zero"] = TimeSpan.Zero;
        options.ServableLoadTimeouts["long"] = TimeSpan.FromDays(1) + TimeSpan.FromTicks(1);

        IReadOnlyList<string> errors = options.Validate();

        Assert.Equal(2, errors.Count);
        Assert.Contains("ServableLoadTimeouts[\"zero\"] must be between 1 ms and 1 day, or Timeout.InfiniteTimeSpan; it is 00:00:00.", errors);
        Assert.Contains(errors, e => e.StartsWith("ServableLoadTimeouts[\"long\"] must be between 1 ms and 1 day", StringComparison.Ordinal));
    }
}
