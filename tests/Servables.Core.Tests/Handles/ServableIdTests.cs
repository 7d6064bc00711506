namespace Servables.Core.Tests.Handles;

public sealed class ServableIdTests
{
    [Fact]
    public void Constructor_NegativeVersion_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServableId("m", -1));

    [Fact]
    public void Constructor_EmptyName_Throws() =>
        Assert.Throws<ArgumentException>(() => new ServableId(string.Empty, 1));

    [Fact]
    public void Equality_SameNameAndVersion_Equal()
    {
        Assert.Equal(new ServableId("m", 2), new ServableId("m", 2));
        Assert.NotEqual(new ServableId("m", 2), new ServableId("M", 2));
        Assert.NotEqual(new ServableId("m", 2), new ServableId("m", 3));
        Assert.True(new ServableId("m", 1) < new ServableId("m", 2));
        Assert.Equal("m:2", new ServableId("m", 2).ToString());
    }

    [Fact]
    public void Requests_Factories_CarryKindVersionAndLabel()
    {
        Assert.Equal(ServableRequestKind.Latest, ServableRequest.Latest("m").Kind);
        Assert.Equal(ServableRequestKind.Earliest, ServableRequest.Earliest("m").Kind);
        ServableRequest specific = ServableRequest.Specific("m", 7);
        Assert.Equal((ServableRequestKind.Specific, 7L), (specific.Kind, specific.Version));
        ServableRequest labeled = ServableRequest.Labeled("m", "stable");
        Assert.Equal((ServableRequestKind.Labeled, "stable"), (labeled.Kind, labeled.Label));
        Assert.Equal(ServableRequest.Specific("m", 3), ServableRequest.FromId(new ServableId("m", 3)));
        Assert.Throws<ArgumentOutOfRangeException>(() => ServableRequest.Specific("m", -1));
        Assert.Throws<ArgumentException>(() => ServableRequest.Labeled("m", string.Empty));
    }
}
