using Servables.Testing;
using Xunit.Abstractions;

namespace Servables.Sqlite.Tests.Packaging;

[CollectionDefinition(nameof(ConsumerAppTests), DisableParallelization = true)]
public sealed class ConsumerAppTestsRunAlone;

/// <summary>
/// The packages as a user gets them: packs Servables.Core, Servables.Async and Servables.Sqlite into a folder and
/// builds a throw-away app from there (nothing from this repository's build). With Servables.Async alone, the app
/// runs an API on the in-memory store and its output holds no SQLite assembly and no e_sqlite3 native; with
/// Servables.Sqlite added, the same app keeps its requests in a SQLite file, and both are there.
/// </summary>
[Collection(nameof(ConsumerAppTests))]
public sealed class ConsumerAppTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(5);
    private readonly TempFolder _folder = new();

    private string? _version;

    public void Dispose()
    {
        _folder.Dispose();
        ChildProcess.RemoveFromGlobalPackages(_version);
    }

    [Fact]
    public async Task InMemoryOnlyApp_HasNoSqliteInItsOutput_AndWithServablesSqliteTheStoreIsThereAndDurable()
    {
        string feed = _folder.Combine("feed");
        string version = _version = await ChildProcess.PackAsync(
            feed, StepTimeout, output.WriteLine, "src/Servables.Core/Servables.Core.csproj", "src/Servables.Async/Servables.Async.csproj", "src/Servables.Sqlite/Servables.Sqlite.csproj");
        string app = WriteApp(feed, version);
        foreach (string package in new[] { "Servables.Core", "Servables.Async", "Servables.Sqlite" })
        {
            // What a package page and a debugger need: its README, the license, the XML docs, and the symbols beside it.
            using System.IO.Compression.ZipArchive nupkg = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"{package}.{version}.nupkg"));
            string[] entries = [.. nupkg.Entries.Select(e => e.FullName)];
            Assert.Contains("README.md", entries);
            Assert.Contains("LICENSE", entries);
            Assert.Contains($"lib/net10.0/{package}.xml", entries);
            Assert.True(File.Exists(Path.Combine(feed, $"{package}.{version}.snupkg")), $"{package} has no symbol package");
        }

        await RunAsync("dotnet", "build -c Release -nologo -p:WithSqlite=false", app);
        string inMemory = Path.Combine(app, "bin/Release/net10.0/linux-x64");
        (string ran, int code) = await RunAsync("dotnet", $"{Path.Combine(inMemory, "Consumer.dll")} {_folder.Combine("memory.db")}", app, allowFailure: true);
        Assert.True(code == 0, ran);
        Assert.Contains("RESULT completed \"HELLO\"", ran, StringComparison.Ordinal);
        Assert.False(File.Exists(_folder.Combine("memory.db")));
        Assert.Empty(SqliteFiles(inMemory));
        Assert.DoesNotContain("Sqlite", File.ReadAllText(Path.Combine(inMemory, "Consumer.deps.json")), StringComparison.OrdinalIgnoreCase);

        await RunAsync("dotnet", "build -c Debug -nologo -p:WithSqlite=true", app);
        string withSqlite = Path.Combine(app, "bin/Debug/net10.0/linux-x64");
        string db = _folder.Combine("durable.db");
        (ran, code) = await RunAsync("dotnet", $"{Path.Combine(withSqlite, "Consumer.dll")} {db}", app, allowFailure: true);
        Assert.True(code == 0, ran);
        Assert.Contains("RESULT completed \"HELLO\"", ran, StringComparison.Ordinal);
        Assert.True(File.Exists(db)); // the request went through the SQLite store
        string[] found = [.. SqliteFiles(withSqlite).Select(Path.GetFileName)!];
        Assert.Contains("Microsoft.Data.Sqlite.dll", found);
        Assert.Contains(found, f => f!.Contains("e_sqlite3", StringComparison.Ordinal));
    }

    /// <summary>The SQLite assemblies and natives anywhere under <paramref name="folder"/>.</summary>
    private static IEnumerable<string> SqliteFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(f =>
        {
            string name = Path.GetFileName(f);
            return name.StartsWith("Microsoft.Data.Sqlite", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("SQLitePCLRaw", StringComparison.OrdinalIgnoreCase)
                || name.Contains("e_sqlite3", StringComparison.OrdinalIgnoreCase);
        });

    private string WriteApp(string feed, string version)
    {
        string app = ConsumerApp.Write(
            _folder.Combine("app"),
            feed,
            $"""
                <PackageReference Include="Servables.Async" Version="{version}" />
                <PackageReference Include="Servables.Sqlite" Version="{version}" Condition="'$(WithSqlite)' == 'true'" />
                <PackageReference Include="Microsoft.Extensions.Hosting" Version="11.0.0" />
            """,
            """
                <DefineConstants Condition="'$(WithSqlite)' == 'true'">$(DefineConstants);WITH_SQLITE</DefineConstants>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Microsoft.Extensions.DependencyInjection;
            using Microsoft.Extensions.Hosting;
            using Microsoft.Extensions.Logging;
            using Servables.Async;

            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddAsyncHandler<Upper>(o =>
            {
            #if WITH_SQLITE
                o.UseSqliteStore(args[0]);
            #endif
            });
            using IHost host = builder.Build();
            await host.StartAsync();
            IAsyncApiClient api = host.Services.GetRequiredService<IAsyncApiClient>();
            AsyncRequestStatus done = await api.WaitForCompletionAsync(await api.SubmitTextAsync("hello"), TimeSpan.FromSeconds(30));
            Console.WriteLine($"RESULT {done.Status} {done.ResultJson}");
            await host.StopAsync();
            return done.State == AsyncRequestState.Completed ? 0 : 1;

            sealed class Upper : IAsyncHandler
            {
                public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken) =>
                    ValueTask.FromResult<object?>(payload.Text.ToUpperInvariant());
            }
            """);
        return app;
    }

    private Task<(string Output, int ExitCode)> RunAsync(string file, string arguments, string workingDirectory, bool allowFailure = false) =>
        ChildProcess.RunAsync(file, arguments, workingDirectory, StepTimeout, output.WriteLine, allowFailure);
}
