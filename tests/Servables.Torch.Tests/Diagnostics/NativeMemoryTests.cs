using System.Globalization;
using Servables.Testing;
using Servables.Testing.Torch;
using TorchSharp;
using Xunit.Abstractions;

namespace Servables.Torch.Tests.Diagnostics;

[CollectionDefinition(nameof(NativeMemoryTests), DisableParallelization = true)]
public sealed class NativeMemoryTestsRunAlone;

/// <summary>Resident memory across many load/unload cycles through the manager; alone, so that no other test's allocations blur it.</summary>
[Collection(nameof(NativeMemoryTests))]
public sealed class NativeMemoryTests(ITestOutputHelper output) : IDisposable
{
    private const int Features = 1024;
    private const int Cycles = 50;

    /// <summary>The bound on RSS growth over 50 cycles: 32 MiB, four to eight times one model's weights (4 or 8 MiB); keeping one module per cycle would be 200 or 400 MiB.</summary>
    private const long GrowthBound = 32L << 20;

    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task LoadUnload_FiftyCyclesOfATorchSharpModule_ResidentMemoryGrowsLessThanTheBound()
    {
        string path = Path.Combine(_folder.Path, "model.dat");
        using (TorchSharp.Modules.Linear source = torch.nn.Linear(Features, Features))
        {
            source.save(path);
        }

        var options = new TorchServableOptions { ModelKind = TorchModelKind.TorchSharpWeights, ModuleFactory = _ => torch.nn.Linear(Features, Features) };
        await using var driver = new ManagerDriver();

        await CycleAsync(driver, path, options, 5); // allocator arenas and libtorch's caches reach their steady size
        long before = ResidentBytes();
        await CycleAsync(driver, path, options, Cycles);
        long growth = ResidentBytes() - before;

        output.WriteLine(Describe("TorchSharp module (4 MiB of weights)", growth));
        Assert.True(growth < GrowthBound, $"RSS grew {growth >> 20} MiB over {Cycles} load/unload cycles; bound {GrowthBound >> 20} MiB.");
    }

    /// <summary>
    /// TorchSharp 0.107.0 with libtorch 2.10 keeps a TorchScript module allocated after
    /// <c>torch.jit.load</c> and <c>Dispose</c>, weights and all, outside Servables (measured here with raw
    /// calls; the same with an archive libtorch itself wrote with <c>torch.jit.save</c>). The servable empties
    /// the module's tensors before disposing it, so that serving stays within the bound where raw calls do not.
    /// </summary>
    [Fact]
    public async Task LoadUnload_FiftyCyclesOfTorchScript_ResidentMemoryGrowsLessThanTheBound()
    {
        // Two 1024 × 1024 layers in submodules (8 MiB of weights), so that nested tensors are emptied too.
        var w = new float[Features, Features];
        for (int i = 0; i < Features; i++)
        {
            w[i, i] = 1;
        }

        string folder = TestModels.WriteVersion(_folder.Path, 1, TorchScriptWriter.NestedMlp(w, new float[Features], w, new float[Features]));
        string path = Path.Combine(folder, "model.pt");
        await using var driver = new ManagerDriver();

        await CycleAsync(driver, path, new TorchServableOptions(), 5);
        long start = ResidentBytes();
        await CycleAsync(driver, path, new TorchServableOptions(), Cycles);
        long served = ResidentBytes() - start;
        start = ResidentBytes();
        for (int i = 0; i < Cycles; i++)
        {
            torch.jit.load(path).Dispose();
        }

        long raw = ResidentBytes() - start;

        output.WriteLine(Describe("TorchScript through the manager", served));
        output.WriteLine(Describe("raw torch.jit.load + Dispose, for comparison", raw));
        Assert.True(served < GrowthBound, $"Serving grew RSS {served >> 20} MiB over {Cycles} cycles (raw jit.load/Dispose: {raw >> 20} MiB); bound {GrowthBound >> 20} MiB.");
    }

    private static async Task CycleAsync(ManagerDriver driver, string path, TorchServableOptions options, int cycles)
    {
        float[] x = TestModels.Inputs(8, Features);
        for (int i = 0; i < cycles; i++)
        {
            var id = new ServableId("big", 1);
            driver.Manager.SetAspiredVersions("big", [ServableData.Create<Loader>(id, new TorchLoader(id, path, options))]);
            await driver.SettleAsync();
            using (ServableHandle<TorchServable> handle = driver.Manager.GetServableHandle<TorchServable>(ServableRequest.Latest("big")))
            {
                Assert.Equal(8 * Features, TestModels.RunFloat(handle.Value, x, Features).Length);
            }

            driver.Manager.SetAspiredVersions("big", []);
            await driver.SettleAsync();
            Assert.Empty(driver.Manager.ListAvailableServableIds());
        }
    }

    private static string Describe(string what, long growth) =>
        string.Create(CultureInfo.InvariantCulture, $"{what}: RSS growth over {Cycles} load/unload cycles {growth / 1024.0 / 1024.0:F1} MiB (bound {GrowthBound >> 20} MiB)");

    private static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }
}
