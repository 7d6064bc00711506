using System.Buffers.Binary;
using System.Text;
using TorchSharp;

namespace Servables.Torch.Tests.Packaging;

/// <summary>What Servables.Torch's build targets did to this test project's own output folder (it imports the same targets the package ships).</summary>
public sealed class NativeLibraryPatchTests
{
    private const string Version = "GLIBCXX_3.4.32";

    [Fact]
    public void OutputCopy_WhereTheSystemLacksTheVersion_IsWeakAndTheNuGetCacheCopyIsNot()
    {
        string output = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        string cache = CachedLibrary();
        Assert.True(File.Exists(output), $"{output} is missing");
        bool systemHasIt = SystemLibStdCxx() is { } lib && ContainsString(File.ReadAllBytes(lib), Version);

        Assert.Equal(!systemHasIt, IsWeak(output));
        Assert.False(IsWeak(cache), $"{cache} was modified: the patch belongs to the output folder only.");
        Assert.Equal(new FileInfo(cache).Length, new FileInfo(output).Length);
    }

    [Fact]
    public void Torch_AfterTheBuildTargetsRan_LoadsAndComputes()
    {
        using torch.Tensor x = torch.ones(3, 3);
        using torch.Tensor y = x.matmul(x);

        Assert.Equal(27f, y.sum().item<float>());
    }

    /// <summary>The flags of the version need for GLIBCXX_3.4.32 in <paramref name="path"/> have VER_FLG_WEAK.</summary>
    internal static bool IsWeak(string path)
    {
        byte[] b = File.ReadAllBytes(path);
        long sectionTable = (long)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(0x28));
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(0x3A));
        int sections = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(0x3C));
        for (int i = 0; i < sections; i++)
        {
            int header = (int)(sectionTable + ((long)i * entrySize));
            if (BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(header + 4)) != 0x6ffffffe)
            {
                continue;
            }

            int need = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(header + 0x18));
            int link = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(header + 0x28));
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(header + 0x2C));
            int strings = (int)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)(sectionTable + ((long)link * entrySize)) + 0x18));
            for (int n = 0; n < count; n++)
            {
                int aux = need + (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(need + 8));
                for (int a = 0; a < BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(need + 2)); a++)
                {
                    int name = strings + (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(aux + 8));
                    if (b.AsSpan(name).StartsWith(Encoding.ASCII.GetBytes(Version + "\0")))
                    {
                        return (BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(aux + 4)) & 0x2) != 0;
                    }

                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(aux + 12));
                }

                need += (int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(need + 12));
            }
        }

        throw new InvalidOperationException($"{path} has no need for {Version}.");
    }

    internal static string CachedLibrary()
    {
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        return Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    internal static string? SystemLibStdCxx() =>
        new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6" }.FirstOrDefault(File.Exists);

    private static bool ContainsString(byte[] bytes, string value) => bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(value + "\0")) >= 0;
}
