using System.Diagnostics;

namespace Servables.AspNetCore.Tests.QuickStart;

/// <summary>The README's first command: the quick start runs every step it shows and exits 0.</summary>
public sealed class QuickStartTests
{
    [Fact]
    public async Task QuickStart_RunsEveryStep_AndSaysSo()
    {
        string dll = Path.Combine(AppContext.BaseDirectory.Replace(Path.Combine("tests", "Servables.AspNetCore.Tests"), Path.Combine("samples", "Servables.QuickStart"), StringComparison.Ordinal), "Servables.QuickStart.dll");
        Assert.True(File.Exists(dll), $"The quick start was not built at {dll}.");
        var info = new ProcessStartInfo(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(dll);
        using Process quickStart = Process.Start(info)!;
        Task<string> output = quickStart.StandardOutput.ReadToEndAsync();
        Task<string> errors = quickStart.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await quickStart.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            quickStart.Kill(entireProcessTree: true);
            throw;
        }

        string printed = await output + await errors;
        Assert.True(quickStart.ExitCode == 0, printed);
        Assert.Contains("Quick start OK", printed, StringComparison.Ordinal);
        Assert.Contains("in process | text | completed", printed, StringComparison.Ordinal); // plain output: the console is redirected
        Assert.Contains("HTTP | bytes | completed", printed, StringComparison.Ordinal);
        Assert.Contains("during |", printed, StringComparison.Ordinal);
        Assert.Contains("iris-torch:1:", printed, StringComparison.Ordinal);
    }
}
