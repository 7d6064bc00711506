using System.IO.Compression;
using System.Reflection.Metadata;
using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using Servables.Testing;
using Xunit.Abstractions;

namespace Servables.Sqlite.Tests.Packaging;

/// <summary>
/// What a package says about its source: packs Servables.Core from a clone of this repository whose <c>origin</c> is a
/// GitHub URL, as a published clone's is, with <c>ContinuousIntegrationBuild</c> on, and reads the repository URL and
/// commit in the nuspec and the SourceLink map in the symbol package's PDB, then packs again from scratch and compares the
/// assemblies (a deterministic build). The clone holds what is committed, so the test checks the committed build files.
/// </summary>
[Collection(nameof(ConsumerAppTests))]
public sealed class SourceLinkTests(ITestOutputHelper output) : IDisposable
{
    private const string Origin = "https://github.com/contoso/servables.git";
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);
    private static readonly Guid SourceLinkKind = new("CC110556-A091-4D38-9FEC-25AB9A351A6A");
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [SkippableFact]
    public async Task Pack_FromAGitHubClone_StampsUrlAndCommit_AndMapsTheSourcesToThatCommit()
    {
        string repo = ChildProcess.RepositoryRoot();
        Skip.IfNot(Directory.Exists(Path.Combine(repo, ".git")), $"{repo} is not a git clone (a source archive): there is no commit to stamp.");
        string clone = _folder.Combine("clone");
        await RunAsync("git", $"clone --quiet {repo} {clone}", _folder.Path);
        await RunAsync("git", $"remote set-url origin {Origin}", clone);
        string commit = (await RunAsync("git", "rev-parse HEAD", clone)).Trim();
        string feed = _folder.Combine("feed");
        await RunAsync("dotnet", $"pack src/Servables.Core/Servables.Core.csproj -c Release -o {feed} -p:ContinuousIntegrationBuild=true -nologo", clone);

        string version = XDocument.Load(Path.Combine(clone, "Directory.Build.props")).Descendants("Version").Single().Value;
        using (ZipArchive nupkg = ZipFile.OpenRead(Path.Combine(feed, $"Servables.Core.{version}.nupkg")))
        using (Stream nuspec = nupkg.GetEntry("Servables.Core.nuspec")!.Open())
        {
            XElement repository = XDocument.Load(nuspec).Descendants().Single(e => e.Name.LocalName == "repository");
            Assert.Equal("git", (string?)repository.Attribute("type"));
            Assert.Equal(Origin, (string?)repository.Attribute("url"));
            Assert.Equal(commit, (string?)repository.Attribute("commit"));
        }

        using ZipArchive snupkg = ZipFile.OpenRead(Path.Combine(feed, $"Servables.Core.{version}.snupkg"));
        using var pdb = new MemoryStream();
        using (Stream entry = snupkg.GetEntry("lib/net10.0/Servables.Core.pdb")!.Open())
        {
            await entry.CopyToAsync(pdb);
        }

        pdb.Position = 0;
        using MetadataReaderProvider provider = MetadataReaderProvider.FromPortablePdbStream(pdb);
        MetadataReader reader = provider.GetMetadataReader();
        BlobHandle sourceLink = reader.CustomDebugInformation
            .Select(reader.GetCustomDebugInformation)
            .Single(c => reader.GetGuid(c.Kind) == SourceLinkKind).Value;
        using JsonDocument map = JsonDocument.Parse(Encoding.UTF8.GetString(reader.GetBlobBytes(sourceLink)));
        output.WriteLine(map.RootElement.GetRawText());
        JsonProperty only = Assert.Single(map.RootElement.GetProperty("documents").EnumerateObject());
        Assert.Equal("/_/*", only.Name); // a CI build's paths do not name the machine's folders
        Assert.Equal($"https://raw.githubusercontent.com/contoso/servables/{commit}/*", only.Value.GetString());

        // Every source file of the package is under the mapped root, so a debugger can fetch each one.
        string[] documents = [.. reader.Documents.Select(d => reader.GetString(reader.GetDocument(d).Name))];
        Assert.Contains("/_/src/Servables.Core/Handles/ServableHandle.cs", documents);
        Assert.All(documents, d => Assert.StartsWith("/_/", d, StringComparison.Ordinal));

        // Deterministic: building it all again from the same commit gives the same assembly, byte for byte.
        string again = _folder.Combine("again");
        Directory.Delete(Path.Combine(clone, "src", "Servables.Core", "bin"), recursive: true);
        Directory.Delete(Path.Combine(clone, "src", "Servables.Core", "obj"), recursive: true);
        await RunAsync("dotnet", $"pack src/Servables.Core/Servables.Core.csproj -c Release -o {again} -p:ContinuousIntegrationBuild=true -nologo", clone);
        Assert.Equal(Assembly(feed, version), Assembly(again, version));
    }

    private static byte[] Assembly(string feed, string version)
    {
        using ZipArchive nupkg = ZipFile.OpenRead(Path.Combine(feed, $"Servables.Core.{version}.nupkg"));
        using Stream dll = nupkg.GetEntry("lib/net10.0/Servables.Core.dll")!.Open();
        using var bytes = new MemoryStream();
        dll.CopyTo(bytes);
        return bytes.ToArray();
    }

    private async Task<string> RunAsync(string file, string arguments, string workingDirectory) =>
        (await ChildProcess.RunAsync(file, arguments, workingDirectory, StepTimeout, output.WriteLine)).Output;
}
