namespace Servables.Core.Tests.Sources;

/// <summary>A uniquely named folder under the system temp path, deleted (with everything in it) on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "servables-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    /// <summary>The folder's full path.</summary>
    public string Path { get; }

    /// <summary>Creates the folder <paramref name="relative"/> under this one (and its parents) and returns its full path.</summary>
    public string CreateFolder(string relative) => Directory.CreateDirectory(System.IO.Path.Combine(Path, relative)).FullName;

    /// <summary>Writes a small file at <paramref name="relative"/> and returns its full path.</summary>
    public string CreateFile(string relative)
    {
        string path = System.IO.Path.Combine(Path, relative);
        File.WriteAllText(path, "not a version folder");
        return path;
    }

    public void Dispose()
    {
        try
        {
            // Links are deleted, not followed, so a link to a folder outside is left intact.
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
