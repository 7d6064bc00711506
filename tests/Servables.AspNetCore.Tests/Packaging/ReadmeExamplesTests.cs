using System.Text;
using System.Text.RegularExpressions;
using Servables.Testing;
using Xunit.Abstractions;

namespace Servables.AspNetCore.Tests.Packaging;

/// <summary>
/// The README's examples as a user copies them: every <c>csharp</c> block of README.md and of each package's README compiles
/// in an ASP.NET Core app outside the repository that references the packed packages. An example with <c>using</c> lines gets only those
/// (and the web SDK's implicit ones), so a missing one fails; an example without any continues the ones before it and
/// gets all of theirs. The names examples leave to the reader (<c>MyModel</c>, <c>features</c>, <c>builder</c>…) are
/// declared by the test; a new one fails the build until it is added to <see cref="Placeholders"/>.
/// </summary>
[Collection(nameof(PackedPackages))]
public sealed partial class ReadmeExamplesTests(PackedPackages packages, ITestOutputHelper output) : IDisposable
{
    /// <summary>What an example may use without declaring it, as the method parameters it is wrapped in.</summary>
    private static readonly (string Type, string Name)[] Context =
    [
        ("string[]", "args"),
        ("global::Microsoft.AspNetCore.Builder.WebApplicationBuilder", "builder"),
        ("global::Microsoft.AspNetCore.Builder.WebApplication", "app"),
        ("global::Servables.IServableManager", "manager"),
        ("float[]", "features"),
        ("float[]", "scores"),
        ("global::ReadmeExamples.PredictImage", "image"),
        ("CancellationToken", "cancellationToken"),
    ];

    /// <summary>The reader's own types the examples name.</summary>
    private const string Placeholders = """
        using Servables;

        namespace ReadmeExamples;

        public sealed class LinearModel
        {
            public static Task<LinearModel> ReadAsync(string path, CancellationToken cancellationToken) => Task.FromResult(new LinearModel());
            public float Predict(float x) => x;
        }

        public sealed class MyModel
        {
            public Task<string> SummarizeAsync(string text, CancellationToken cancellationToken) => Task.FromResult(text);
            public Task<float[]?[]> EmbedAsync(string[] texts, CancellationToken cancellationToken) => Task.FromResult(new float[]?[texts.Length]);
        }

        public sealed class MyResNetLoader(string path) : Loader<MyModel>
        {
            public string Path { get; } = path;
            protected override Task<MyModel> CreateAsync(CancellationToken cancellationToken) => Task.FromResult(new MyModel());
        }

        public sealed class PredictImage;

        public sealed class Summarizer : Servables.Async.IAsyncHandler // the handler of README.md, which the packages' READMEs use
        {
            public ValueTask<object?> HandleAsync(Servables.Async.AsyncPayload payload, string requestId, CancellationToken cancellationToken) => ValueTask.FromResult<object?>(null);
        }

        public sealed class PredictTask(PredictImage image) : IBatchTask
        {
            public PredictImage Image { get; } = image;
            public int Size => 1;
        }

        public static class Batches
        {
            public static ValueTask RunBatchAsync(Batch<PredictTask> batch, CancellationToken cancellationToken) => ValueTask.CompletedTask;
        }
        """;

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task EveryCSharpExample_CompilesAgainstThePackedPackages()
    {
        string repo = ChildProcess.RepositoryRoot();
        // The repository's README and each package's (the page a package shows where it is published).
        (string Name, List<Example> Examples)[] documents =
        [
            .. new[] { "README.md" }.Concat(Directory.GetDirectories(Path.Combine(repo, "src")).Order(StringComparer.Ordinal).Select(d => Path.Combine("src", Path.GetFileName(d), "README.md")))
                .Where(f => File.Exists(Path.Combine(repo, f)))
                .Select(f => (f, Examples(File.ReadAllText(Path.Combine(repo, f))))),
        ];
        Assert.True(documents[0].Examples.Count >= 10, $"README.md has {documents[0].Examples.Count} C# examples; the test expects the ten it was written with, or more.");
        Assert.True(documents.Length >= 8, $"Found {documents.Length - 1} package READMEs; there are seven packages.");

        string version = packages.Version;
        string app = ConsumerApp.Write(
            _folder.Combine("app"),
            packages.Feed,
            $"""
                <PackageReference Include="Servables.Async" Version="{version}" />
                <PackageReference Include="Servables.Sqlite" Version="{version}" />
                <PackageReference Include="Servables.Redis" Version="{version}" />
                <PackageReference Include="Servables.Onnx" Version="{version}" />
                <PackageReference Include="Servables.Torch" Version="{version}" />
                <PackageReference Include="Servables.AspNetCore" Version="{version}" />
                <PackageReference Include="OpenTelemetry.Extensions.Hosting" Version="1.20.1" />
            """,
            "<NoWarn>$(NoWarn);CS1998;CS0168;CS0219;CS8321;CS9113;CS4014</NoWarn>",
            sdk: "Microsoft.NET.Sdk.Web");
        File.WriteAllText(Path.Combine(app, "Program.cs"), "return 0;\n");
        File.WriteAllText(Path.Combine(app, "Placeholders.cs"), Placeholders);
        foreach ((string name, List<Example> examples) in documents)
        {
            // Each document in a namespace of its own, so that two may declare a type of the same name.
            string prefix = name.Replace('/', '.').Replace(".md", "", StringComparison.Ordinal);
            string ns = "ReadmeExamples." + prefix.Replace(".", "", StringComparison.Ordinal).Replace("README", "Readme", StringComparison.Ordinal);
            IEnumerable<string> allUsings = examples.SelectMany(e => e.Usings).Distinct();
            foreach (Example example in examples)
            {
                File.WriteAllText(Path.Combine(app, $"{prefix}.line{example.Line}.cs"), example.Wrap(ns, example.Usings.Count > 0 ? example.Usings : allUsings));
            }
        }

        (string built, int code) = await ChildProcess.RunAsync("dotnet", "build -c Release -nologo", app, PackedPackages.StepTimeout, output.WriteLine, allowFailure: true);
        string[] errors = [.. built.Split('\n').Select(l => l.Trim()).Where(l => l.Contains(": error ", StringComparison.Ordinal)).Distinct()];
        Assert.True(code == 0, $"README examples do not compile (a file README.lineN.cs is the example at line N of README.md, src.Servables.X.README.lineN.cs one of src/Servables.X/README.md):\n{string.Join('\n', errors)}\n{(errors.Length == 0 ? built : "")}");
    }

    /// <summary>The <c>csharp</c> blocks of <paramref name="readme"/>, with the line each starts at.</summary>
    private static List<Example> Examples(string readme)
    {
        var examples = new List<Example>();
        foreach (Match block in CSharpBlock().Matches(readme))
        {
            int line = readme[..block.Index].Count(c => c == '\n') + 2; // the block's first line of code
            examples.Add(Example.Parse(line, block.Groups[1].Value));
        }

        return examples;
    }

    [GeneratedRegex(@"^```csharp\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline)]
    private static partial Regex CSharpBlock();

    /// <summary>One example: its using lines, the types it declares and its statements.</summary>
    private sealed partial record Example(int Line, IReadOnlyList<string> Usings, string Types, string Statements)
    {
        public static Example Parse(int line, string code)
        {
            var usings = new List<string>();
            var types = new StringBuilder();
            var statements = new StringBuilder();
            string[] lines = code.Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (UsingLine().Match(lines[i]) is { Success: true } directive)
                {
                    usings.Add(directive.Groups[1].Value);
                }
                else if (TypeStart().IsMatch(lines[i]))
                {
                    // A type declared at the example's top level ends at the first closing brace in column 0.
                    for (; i < lines.Length; i++)
                    {
                        types.AppendLine(lines[i]);
                        if (lines[i].StartsWith('}'))
                        {
                            break;
                        }
                    }
                }
                else
                {
                    statements.AppendLine(lines[i]);
                }
            }

            return new Example(line, usings, types.ToString(), statements.ToString());
        }

        /// <summary>A file of its own: the usings, the types, and the statements in a method whose parameters are the context the example does not declare itself.</summary>
        public string Wrap(string ns, IEnumerable<string> usings)
        {
            string parameters = string.Join(", ", Context
                .Where(c => !Regex.IsMatch(Statements, $@"\b(?:var|[A-Z][\w<>.]*)\s+{c.Name}\s*="))
                .Select(c => $"{c.Type} {c.Name}"));
            return $$"""
                {{string.Join('\n', usings.Select(u => $"using {u};"))}}
                using static ReadmeExamples.Batches;

                namespace {{ns}};

                {{Types}}
                internal static class ReadmeLine{{Line}}
                {
                    public static async Task RunAsync({{parameters}})
                    {
                {{Statements}}
                    }
                }
                """;
        }

        [GeneratedRegex(@"^using ((?:static )?[A-Za-z][\w.]*);")]
        private static partial Regex UsingLine();

        [GeneratedRegex(@"^(?:public |internal )?(?:sealed |static |abstract |partial )*(?:class|record|struct|interface) ")]
        private static partial Regex TypeStart();
    }
}
