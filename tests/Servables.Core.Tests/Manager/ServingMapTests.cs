using System.Collections.Frozen;

namespace Servables.Core.Tests.Manager;

public sealed class ServingMapTests
{
    private readonly LoadedVersion _v1 = Loaded("m", 1);
    private readonly LoadedVersion _v3 = Loaded("m", 3);
    private readonly LoadedVersion _v7 = Loaded("m", 7);
    private readonly ServingMap _map;

    public ServingMapTests()
    {
        var labels = new Dictionary<string, long> { ["stable"] = 3, ["gone"] = 5 }.ToFrozenDictionary(StringComparer.Ordinal);
        _map = ServingMap.Create([new ServingVersions("m", [_v1, _v3, _v7], labels), new ServingVersions("other", [Loaded("other", 2)], FrozenDictionary<string, long>.Empty)]);
    }

    [Fact]
    public void Find_LatestAndEarliest_AreTheEndsOfTheAscendingVersions()
    {
        Assert.Same(_v7, _map.Find(ServableRequest.Latest("m")));
        Assert.Same(_v1, _map.Find(ServableRequest.Earliest("m")));
    }

    [Fact]
    public void Find_Specific_FindsThatVersionOnly()
    {
        Assert.Same(_v3, _map.Find(ServableRequest.Specific("m", 3)));
        Assert.Null(_map.Find(ServableRequest.Specific("m", 2)));
    }

    [Fact]
    public void Find_Labeled_FollowsTheLabel_AndALabelOnAMissingVersionFindsNothing()
    {
        Assert.Same(_v3, _map.Find(ServableRequest.Labeled("m", "stable")));
        Assert.Null(_map.Find(ServableRequest.Labeled("m", "gone")));
        Assert.Null(_map.Find(ServableRequest.Labeled("m", "unknown")));
    }

    [Fact]
    public void Find_UnknownName_FindsNothing_AndNamesAreCaseSensitive()
    {
        Assert.Null(_map.Find(ServableRequest.Latest("nope")));
        Assert.Null(_map.Find(ServableRequest.Latest("M")));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)] // the most names found by comparing them in turn
    [InlineData(9)] // hashed from here on
    [InlineData(100)]
    public void Find_ByName_FindsEachServable_WithAnEqualStringThatIsNotTheSameObject(int names)
    {
        LoadedVersion[] versions = [.. Enumerable.Range(0, names).Select(i => Loaded($"model-{i}", i + 1))];
        ServingMap map = ServingMap.Create(versions.Select(v => new ServingVersions(v.Id.Name, [v], FrozenDictionary<string, long>.Empty)));

        for (int i = 0; i < names; i++)
        {
            string name = new([.. $"model-{i}"]); // equal, not the same object
            Assert.Same(versions[i], map.Find(ServableRequest.Latest(name)));
        }

        Assert.Null(map.Find(ServableRequest.Latest($"model-{names}")));
        Assert.Null(map.Find(ServableRequest.Latest("model-")));
    }

    [Fact]
    public void Create_CountsEveryVersion_AndDropsNamesWithoutVersions()
    {
        ServingMap map = ServingMap.Create([new ServingVersions("m", [_v1, _v3], FrozenDictionary<string, long>.Empty), new ServingVersions("empty", [], FrozenDictionary<string, long>.Empty)]);

        Assert.Equal(2, map.Count);
        Assert.False(map.TryGetVersions("empty", out _));
        Assert.Equal(4, _map.Count);
    }

    [Fact]
    public void Create_NothingServed_ReturnsTheSharedEmptyMap()
    {
        Assert.Same(ServingMap.Empty, ServingMap.Create([]));
        Assert.Same(ServingMap.Empty, ServingMap.Create([new ServingVersions("empty", [], FrozenDictionary<string, long>.Empty)]));
        Assert.Null(ServingMap.Empty.Find(ServableRequest.Latest("m")));
    }

    private static LoadedVersion Loaded(string name, long version) =>
        new(new LoaderHarness(new ServableId(name, version), null, _ => { }), new object());
}
