namespace Servables.Core.Tests.Sources;

public sealed class SourceAdapterTests
{
    [Fact]
    public void SetAspiredVersions_TargetConnected_ConvertsEachVersion()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((id, path) => $"{id.Name}@{id.Version}:{path}");
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);

        adapter.SetAspiredVersions("m", [Data("m", 1, "/p/1"), Data("m", 2, "/p/2")]);

        (string name, IReadOnlyList<ServableData<string>> versions) = Assert.Single(target.Calls);
        Assert.Equal("m", name);
        Assert.Equal([new ServableId("m", 1), new ServableId("m", 2)], versions.Select(v => v.Id));
        Assert.Equal(["m@1:/p/1", "m@2:/p/2"], versions.Select(v => v.Value));
    }

    [Fact]
    public void SetAspiredVersions_ConversionThrows_ThatVersionCarriesTheErrorAndOthersConvert()
    {
        var failure = new FormatException("bad model folder");
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((id, path) => id.Version == 2 ? throw failure : path.ToUpperInvariant());
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);

        adapter.SetAspiredVersions("m", [Data("m", 1, "a"), Data("m", 2, "b"), Data("m", 3, "c")]);

        IReadOnlyList<ServableData<string>> versions = Assert.Single(target.CallsFor("m"));
        Assert.Equal([1L, 2L, 3L], versions.Select(v => v.Id.Version));
        Assert.Equal("A", versions[0].Value);
        Assert.False(versions[1].HasValue);
        Assert.Same(failure, versions[1].Error);
        Assert.Equal("C", versions[2].Value);
    }

    [Fact]
    public void SetAspiredVersions_ConversionReturnsNull_ThatVersionCarriesAnError()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, _) => null!);
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);

        adapter.SetAspiredVersions("m", [Data("m", 1, "a")]);

        ServableData<string> only = Assert.Single(Assert.Single(target.CallsFor("m")));
        Assert.False(only.HasValue);
        Assert.IsType<InvalidOperationException>(only.Error);
    }

    [Fact]
    public void SetAspiredVersions_UpstreamError_PassesThroughWithoutConverting()
    {
        int conversions = 0;
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, path) =>
        {
            conversions++;
            return path;
        });
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);
        var upstream = new IOException("storage unreachable");

        adapter.SetAspiredVersions("m", [ServableData.FromError<string>(new ServableId("m", 1), upstream), Data("m", 2, "b")]);

        IReadOnlyList<ServableData<string>> versions = Assert.Single(target.CallsFor("m"));
        Assert.Equal(new ServableId("m", 1), versions[0].Id);
        Assert.Same(upstream, versions[0].Error);
        Assert.Equal("b", versions[1].Value);
        Assert.Equal(1, conversions);
    }

    [Fact]
    public void SetAspiredVersions_EmptySet_IsForwardedEmpty()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, path) => path);
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);

        adapter.SetAspiredVersions("m", []);

        Assert.Empty(Assert.Single(target.CallsFor("m")));
    }

    [Fact]
    public void SetAspiredVersionsTarget_SetsSentBefore_DeliversLatestPerServable()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, path) => path);
        adapter.SetAspiredVersions("a", [Data("a", 1, "a1")]);
        adapter.SetAspiredVersions("b", [Data("b", 5, "b5")]);
        adapter.SetAspiredVersions("a", [Data("a", 1, "a1"), Data("a", 2, "a2")]);
        var target = new RecordingAspiredVersionsTarget<string>();

        adapter.SetAspiredVersionsTarget(target);

        Assert.Equal(2, target.Calls.Count);
        Assert.Equal(["a1", "a2"], Assert.Single(target.CallsFor("a")).Select(v => v.Value));
        Assert.Equal(["b5"], Assert.Single(target.CallsFor("b")).Select(v => v.Value));
    }

    [Fact]
    public void SetAspiredVersions_AfterHeldSetsDelivered_ForwardsOnlyTheNewSet()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, path) => path);
        adapter.SetAspiredVersions("a", [Data("a", 1, "a1")]);
        var target = new RecordingAspiredVersionsTarget<string>();
        adapter.SetAspiredVersionsTarget(target);

        adapter.SetAspiredVersions("a", [Data("a", 2, "a2")]);

        Assert.Equal(2, target.Calls.Count);
        Assert.Equal(["a2"], target.CallsFor("a")[1].Select(v => v.Value));
    }

    [Fact]
    public void SetAspiredVersionsTarget_Twice_Throws()
    {
        SourceAdapter<string, string> adapter = SourceAdapter.Create<string, string>((_, path) => path);
        adapter.SetAspiredVersionsTarget(new RecordingAspiredVersionsTarget<string>());

        Assert.Throws<InvalidOperationException>(() => adapter.SetAspiredVersionsTarget(new RecordingAspiredVersionsTarget<string>()));
    }

    [Fact]
    public void Convert_Subclass_IsCalledPerVersion()
    {
        var adapter = new LengthAdapter();
        var target = new RecordingAspiredVersionsTarget<int>();
        AspiredVersions.ConnectSourceToTarget(adapter, target);

        adapter.SetAspiredVersions("m", [Data("m", 1, "ab"), Data("m", 2, "abcd")]);

        Assert.Equal([2, 4], Assert.Single(target.CallsFor("m")).Select(v => v.Value));
    }

    [Fact]
    public void Create_NullConversion_Throws() =>
        Assert.Throws<ArgumentNullException>(() => SourceAdapter.Create<string, string>(null!));

    private static ServableData<string> Data(string name, long version, string value) => ServableData.Create(new ServableId(name, version), value);

    private sealed class LengthAdapter : SourceAdapter<string, int>
    {
        protected override int Convert(ServableId id, string data) => data.Length;
    }
}
