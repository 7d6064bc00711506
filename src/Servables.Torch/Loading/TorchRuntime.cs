using System.Runtime.InteropServices;
using TorchSharp;

namespace Servables.Torch;

/// <summary>
/// The settings of libtorch that belong to the whole process rather than to one servable, and the
/// check that a native libtorch is there at all.
/// </summary>
/// <remarks>
/// <para>
/// libtorch keeps one intra-op thread pool (threads that one operator may use) and one inter-op pool
/// (threads that run independent operators of a TorchScript graph) per process, shared by every
/// module loaded in it. That is why <see cref="TorchServableOptions"/> has no thread option: a per-servable
/// setting would silently change every other servable. Call <see cref="SetThreads"/> once at start-up,
/// before the first model loads.
/// </para>
/// <para>
/// The native runtime is the app's choice: <c>libtorch-cpu-linux-x64</c> (or <c>TorchSharp-cpu</c>) for the
/// CPU, TorchSharp's CUDA package for GPUs. When none is there, or it cannot load, the first load fails
/// with an error that names the packages and the likely cause. Thread-safe.
/// </para>
/// </remarks>
public static class TorchRuntime
{
    /// <summary>The packages that carry the CPU libtorch, named in errors.</summary>
    internal const string CpuPackages = "libtorch-cpu-linux-x64 (or TorchSharp-cpu, which brings libtorch for every platform)";

    /// <summary>The packages that carry a CUDA libtorch, named in errors.</summary>
    internal const string CudaPackages = "TorchSharp-cuda-linux (Linux) or TorchSharp-cuda-windows (Windows), in place of the CPU package";

    private static readonly Lazy<Exception?> s_loadFailure = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Threads one operator may use (libtorch's intra-op pool, shared by the whole process).</summary>
    /// <exception cref="InvalidOperationException">No native libtorch could be loaded.</exception>
    public static int IntraOpThreads
    {
        get
        {
            EnsureNativeLoaded();
            return torch.get_num_threads();
        }
    }

    /// <summary>Threads that run independent operators of a graph (libtorch's inter-op pool, shared by the whole process).</summary>
    /// <exception cref="InvalidOperationException">No native libtorch could be loaded.</exception>
    public static int InterOpThreads
    {
        get
        {
            EnsureNativeLoaded();
            return torch.get_num_interop_threads();
        }
    }

    /// <summary>Sets libtorch's process-wide thread pools; call it once, at start-up, before the first model loads.</summary>
    /// <param name="intraOpThreads">Threads one operator may use, 1 to 1024. It is libtorch's one setting for every module, but each thread reads it the first time it runs parallel work (libtorch's OpenMP build): a later change reaches the calling thread and threads that have not run any yet, not those that have. Hence: before the first model loads.</param>
    /// <param name="interOpThreads">Threads that run independent operators, 1 to 1024, or 0 to leave libtorch's default. libtorch accepts this only once per process and only before its first parallel work; a later attempt throws.</param>
    /// <exception cref="ArgumentOutOfRangeException">A count is out of range.</exception>
    /// <exception cref="InvalidOperationException">No native libtorch could be loaded, or libtorch refused the inter-op count (set before, or too late).</exception>
    public static void SetThreads(int intraOpThreads, int interOpThreads = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(intraOpThreads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(intraOpThreads, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(interOpThreads);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(interOpThreads, 1024);
        EnsureNativeLoaded();
        if (interOpThreads > 0 && torch.get_num_interop_threads() != interOpThreads)
        {
            try
            {
                torch.set_num_interop_threads(interOpThreads);
            }
            catch (ExternalException ex)
            {
                throw new InvalidOperationException(
                    $"libtorch refused to set its inter-op threads to {interOpThreads}: {TorchErrors.FirstLine(ex)} It accepts this once per process, before its first parallel work: call TorchRuntime.SetThreads at start-up.",
                    ex);
            }
        }

        torch.set_num_threads(intraOpThreads);
    }

    /// <summary>Throws a clear error when no native libtorch can be loaded in this process.</summary>
    internal static void EnsureNativeLoaded()
    {
        if (s_loadFailure.Value is { } failure)
        {
            throw new InvalidOperationException(
                $"TorchSharp could not load its native libtorch: {failure.Message.Split('\n')[0].Trim()} "
                + $"Add one native package to the app: {CpuPackages} for the CPU, or {CudaPackages} for CUDA. "
                + "On Debian 12 / Ubuntu 22.04 the cause can also be libLibTorchSharp.so needing GLIBCXX_3.4.32 (run ldd on it): "
                + "Servables.Torch's build targets fix the copy in the output folder unless ServablesTorchPatchLibStdCxx is false.",
                failure);
        }
    }

    private static Exception? Probe()
    {
        try
        {
            _ = torch.get_num_threads();
            return null;
        }
        catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or NotSupportedException or EntryPointNotFoundException or BadImageFormatException)
        {
            return ex is TypeInitializationException { InnerException: { } inner } ? inner : ex;
        }
    }
}
