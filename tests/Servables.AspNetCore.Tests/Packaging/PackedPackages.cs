using Servables.Testing;

namespace Servables.AspNetCore.Tests.Packaging;

/// <summary>The tests that build apps from every packed package; they share one pack and run one at a time.</summary>
[CollectionDefinition(nameof(PackedPackages), DisableParallelization = true)]
public sealed class PackedPackagesGroup : ICollectionFixture<PackedPackages>;

/// <summary>Every package of the library, packed once into a local folder for the tests of <see cref="PackedPackagesGroup"/>.</summary>
public sealed class PackedPackages : IAsyncLifetime
{
    /// <summary>How long one pack, restore or build may take.</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);

    private static readonly string[] Projects =
    [
        "src/Servables.Core/Servables.Core.csproj",
        "src/Servables.Async/Servables.Async.csproj",
        "src/Servables.Sqlite/Servables.Sqlite.csproj",
        "src/Servables.Redis/Servables.Redis.csproj",
        "src/Servables.Onnx/Servables.Onnx.csproj",
        "src/Servables.Torch/Servables.Torch.csproj",
        "src/Servables.AspNetCore/Servables.AspNetCore.csproj",
    ];

    private readonly TempFolder _folder = new();

    /// <summary>The folder the packages are in: a local package source.</summary>
    public string Feed => _folder.Combine("feed");

    /// <summary>The version they were packed at.</summary>
    public string Version { get; private set; } = "";

    /// <summary>What packing printed, for a test's output when something fails.</summary>
    public string Log { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var log = new System.Text.StringBuilder();
        Version = await ChildProcess.PackAsync(Feed, StepTimeout, line => log.AppendLine(line), Projects);
        Log = log.ToString();
    }

    public Task DisposeAsync()
    {
        _folder.Dispose();
        ChildProcess.RemoveFromGlobalPackages(Version.Length > 0 ? Version : null);
        return Task.CompletedTask;
    }
}
