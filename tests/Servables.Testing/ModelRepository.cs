using System.Globalization;

namespace Servables.Testing;

/// <summary>Writes model versions into a model repository (<c>&lt;base&gt;/&lt;version&gt;/&lt;file&gt;</c>), as a file-system source polls it.</summary>
public static class ModelRepository
{
    /// <summary>Writes <paramref name="model"/> as <c>&lt;basePath&gt;/&lt;version&gt;/&lt;fileName&gt;</c> in place (the folder may be seen before the file is complete).</summary>
    /// <returns>The version's folder.</returns>
    public static string WriteVersion(string basePath, long version, byte[] model, string fileName)
    {
        string folder = Path.Combine(basePath, version.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, fileName), model);
        return folder;
    }

    /// <summary>Writes a version elsewhere and moves its folder into <paramref name="basePath"/>, so that a poller sees it whole.</summary>
    /// <returns>The version's folder.</returns>
    public static string MoveVersionIn(string basePath, long version, byte[] model, string fileName)
    {
        string staging = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(basePath))!, $"staging-{Guid.NewGuid():N}");
        string written = WriteVersion(staging, version, model, fileName);
        string target = Path.Combine(basePath, Path.GetFileName(written));
        Directory.Move(written, target);
        Directory.Delete(staging, recursive: true);
        return target;
    }
}
