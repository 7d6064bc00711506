using BenchmarkDotNet.Running;

namespace Servables.Benchmarks;

/// <summary>Runs the benchmarks picked on the command line (for example <c>--filter '*ServableHandle*'</c>).</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
