namespace Servables.Core.Tests.Sources;

public sealed class FileSystemStoragePathSourceOptionsTests
{
    [Fact]
    public void Validate_Defaults_AreValid() => Assert.Empty(new FileSystemStoragePathSourceOptions().Validate());

    [Fact]
    public void Validate_PollPeriodAndServableList_ReportsTheAttributeRuleAndTheListRules()
    {
        var options = new FileSystemStoragePathSourceOptions { PollPeriod = TimeSpan.FromMilliseconds(9), TimeProvider = null! };
        options.Servables.Add(new StoragePathServable("m", "/models/m"));
        options.Servables.Add(new StoragePathServable("m", "/models/other"));
        options.Servables.Add(new StoragePathServable("n", string.Empty));

        IReadOnlyList<string> errors = options.Validate();

        Assert.Equal(
            [
                "PollPeriod must be between 10 ms and 1 day, or Timeout.InfiniteTimeSpan; it is 00:00:00.0090000.",
                "TimeProvider must be set.",
                "Every servable needs a name, a base path and a version policy.",
                "Servable 'm' is listed 2 times; names must be unique.",
            ],
            errors);
    }

    [Fact]
    public void Validate_InfinitePollPeriod_IsValid() =>
        Assert.Empty(new FileSystemStoragePathSourceOptions { PollPeriod = Timeout.InfiniteTimeSpan }.Validate());
}
