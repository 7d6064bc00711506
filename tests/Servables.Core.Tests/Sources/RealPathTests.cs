namespace Servables.Core.Tests.Sources;

public sealed class RealPathTests : IDisposable
{
    private readonly TempDirectory _root = new();

    public void Dispose() => _root.Dispose();

    [Fact]
    public void Resolve_NoLinks_ReturnsTheFullPath()
    {
        string folder = _root.CreateFolder("a/b");

        Assert.Equal(folder, RealPath.Resolve(Path.Combine(_root.Path, "a", ".", "x", "..", "b")));
    }

    [Fact]
    public void Resolve_LinkOnTheWay_FollowsIt_AndKeepsTheRest()
    {
        string target = _root.CreateFolder("real/models");
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "link"), target);

        Assert.Equal(Path.Combine(target, "1"), RealPath.Resolve(Path.Combine(_root.Path, "link", "1")));
    }

    [Fact]
    public void Resolve_RelativeLink_IsRelativeToTheLinksFolder()
    {
        string target = _root.CreateFolder("real");
        _root.CreateFolder("sub");
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "sub", "up"), Path.Combine("..", "real"));

        Assert.Equal(target, RealPath.Resolve(Path.Combine(_root.Path, "sub", "up")));
    }

    [Fact]
    public void Resolve_LinkToALink_FollowsBoth()
    {
        string target = _root.CreateFolder("real");
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "first"), target);
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "second"), Path.Combine(_root.Path, "first"));

        Assert.Equal(target, RealPath.Resolve(Path.Combine(_root.Path, "second")));
    }

    [Fact]
    public void Resolve_LinkLoop_ReturnsNull()
    {
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "ping"), Path.Combine(_root.Path, "pong"));
        Directory.CreateSymbolicLink(Path.Combine(_root.Path, "pong"), Path.Combine(_root.Path, "ping"));

        Assert.Null(RealPath.Resolve(Path.Combine(_root.Path, "ping", "1")));
    }

    [Fact]
    public void Resolve_MissingComponents_AreKeptAsTheyAre()
    {
        Assert.Equal(Path.Combine(_root.Path, "missing", "1"), RealPath.Resolve(Path.Combine(_root.Path, "missing", "1")));
    }
}
