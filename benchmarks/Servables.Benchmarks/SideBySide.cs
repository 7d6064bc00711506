using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;

namespace Servables.Benchmarks;

/// <summary>
/// Runs a benchmark class's baseline and some of its other benchmarks in turn, in one process, in short
/// rounds, and reports medians and the median of the per-round ratios.
/// </summary>
/// <remarks>
/// BenchmarkDotNet runs each benchmark in its own processes, one after another, so on a machine whose
/// speed moves from minute to minute (a shared VM) a baseline and a benchmark can be measured at
/// different speeds. Alternating them every ~100 ms puts both in the same minute; the per-round ratio
/// is then stable where the absolute figures are not. It does not replace BenchmarkDotNet (no
/// statistics beyond medians, no memory diagnoser); it is for reading a ratio on such a machine.
/// </remarks>
internal static class SideBySide
{
    private static readonly TimeSpan Round = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan WarmUp = TimeSpan.FromSeconds(2);
    private static int s_sink; // results of int benchmarks go here, so that the JIT cannot drop the calls

    /// <summary>
    /// <c>--side-by-side &lt;class&gt; &lt;method&gt;... [--seconds N]</c>: the class's baseline against each method
    /// named, for N seconds (default 20) after a warm-up.
    /// </summary>
    public static async Task<int> RunAsync(string[] args)
    {
        int secondsAt = Array.IndexOf(args, "--seconds");
        int seconds = secondsAt >= 0 && secondsAt + 1 < args.Length ? int.Parse(args[secondsAt + 1], CultureInfo.InvariantCulture) : 20;
        string[] names = [.. args.Where((arg, i) => arg != "--side-by-side" && arg != "--seconds" && (secondsAt < 0 || i != secondsAt + 1))];
        if (names.Length < 2)
        {
            Console.Error.WriteLine("usage: --side-by-side <BenchmarkClass> <Method> [<Method>...] [--seconds N]");
            return 2;
        }

        Type type = typeof(SideBySide).Assembly.GetTypes().SingleOrDefault(t => t.Name == names[0])
            ?? throw new ArgumentException($"No benchmark class named '{names[0]}'.");
        object instance = Activator.CreateInstance(type)!;
        MethodInfo baseline = type.GetMethods().SingleOrDefault(m => m.GetCustomAttribute<BenchmarkAttribute>()?.Baseline == true)
            ?? throw new ArgumentException($"{type.Name} has no [Benchmark(Baseline = true)] method.");
        MethodInfo[] methods = [baseline, .. names.Skip(1).Select(name => type.GetMethod(name) ?? throw new ArgumentException($"{type.Name} has no method '{name}'."))];
        Func<long, Task>[] runs = [.. methods.Select(m => Invoker(instance, m))];
        int[] operations = [.. methods.Select(m => m.GetCustomAttribute<BenchmarkAttribute>()?.OperationsPerInvoke ?? 1)];

        Invoke(type, instance, typeof(GlobalSetupAttribute));
        try
        {
            var timings = methods.Select(_ => new List<double>()).ToArray();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < WarmUp + TimeSpan.FromSeconds(seconds))
            {
                bool measured = clock.Elapsed > WarmUp;
                for (int i = 0; i < runs.Length; i++)
                {
                    double nanoseconds = await TimeRoundAsync(runs[i], operations[i]);
                    if (measured)
                    {
                        timings[i].Add(nanoseconds);
                    }
                }
            }

            Console.WriteLine($"{type.Name}, side by side for {seconds} s in rounds of ~{Round.TotalMilliseconds:0} ms ({timings[0].Count} rounds each):");
            Console.WriteLine($"  {methods[0].Name,-32} {Median(timings[0]),10:0.0} ns/op  (baseline)");
            for (int i = 1; i < methods.Length; i++)
            {
                double[] ratios = [.. timings[i].Zip(timings[0], (mine, theirs) => mine / theirs).Order()];
                Console.WriteLine($"  {methods[i].Name,-32} {Median(timings[i]),10:0.0} ns/op  ratio {Median(ratios):0.00} (rounds: middle half {ratios[ratios.Length / 4]:0.00}–{ratios[ratios.Length * 3 / 4]:0.00})");
            }
        }
        finally
        {
            Invoke(type, instance, typeof(GlobalCleanupAttribute));
        }

        return 0;
    }

    /// <summary>Runs <paramref name="run"/> for about one round; nanoseconds per operation.</summary>
    /// <remarks>
    /// The clock is read once per batch, not per call, and the batch doubles until it takes a millisecond:
    /// a clock read (20–30 ns on this VM) or a reflection call per operation would be added to both sides and
    /// make a nanosecond-scale ratio look closer to 1 than it is.
    /// </remarks>
    private static async Task<double> TimeRoundAsync(Func<long, Task> run, int operationsPerInvoke)
    {
        long invocations = 0;
        long batch = 1;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < Round)
        {
            TimeSpan before = watch.Elapsed;
            await run(batch);
            invocations += batch;
            if (watch.Elapsed - before < TimeSpan.FromMilliseconds(1))
            {
                batch *= 2;
            }
        }

        return watch.Elapsed.TotalNanoseconds / (invocations * operationsPerInvoke);
    }

    /// <summary>Calls the benchmark method n times through a delegate (reflection only for shapes the suite does not use).</summary>
    private static Func<long, Task> Invoker(object instance, MethodInfo method)
    {
        if (method.ReturnType == typeof(Task<int>))
        {
            Func<Task<int>> call = method.CreateDelegate<Func<Task<int>>>(instance);
            return async n =>
            {
                for (long i = 0; i < n; i++)
                {
                    await call();
                }
            };
        }

        if (method.ReturnType == typeof(int))
        {
            Func<int> call = method.CreateDelegate<Func<int>>(instance);
            return n =>
            {
                int sink = 0;
                for (long i = 0; i < n; i++)
                {
                    sink += call();
                }

                Volatile.Write(ref s_sink, sink);
                return Task.CompletedTask;
            };
        }

        return async n =>
        {
            for (long i = 0; i < n; i++)
            {
                if (method.Invoke(instance, null) is Task task)
                {
                    await task;
                }
            }
        };
    }

    private static void Invoke(Type type, object instance, Type attribute)
    {
        foreach (MethodInfo method in type.GetMethods().Where(m => m.GetCustomAttribute(attribute) is not null))
        {
            method.Invoke(instance, null);
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? double.NaN : sorted[sorted.Length / 2];
    }
}
