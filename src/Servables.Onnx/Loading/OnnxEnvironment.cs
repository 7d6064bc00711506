using Microsoft.ML.OnnxRuntime;

namespace Servables.Onnx;

/// <summary>
/// The process-wide ONNX Runtime environment, and the thread pools that every session Servables
/// creates shares by default.
/// </summary>
/// <remarks>
/// <para>
/// ONNX Runtime gives each session its own intra-op pool, one thread per physical core, unless the
/// environment was created with global pools and the session opts out of its own. Per-session pools
/// oversubscribe a server: concurrent callers of one session each bring the pool's threads to work
/// (on 2 cores, 2 callers measured p99 several times the p50), and during a hot swap the old and the
/// new version's sessions each have a full pool. So Servables creates the environment with one set
/// of pools for the whole process, and a session whose <see cref="OnnxServableOptions.IntraOpThreads"/>
/// and <see cref="OnnxServableOptions.InterOpThreads"/> are both 0 (the defaults) runs on them; a
/// session given either count gets its own pools of that size, as ONNX Runtime does by default.
/// </para>
/// <para>
/// The pools are sized once, for the process: by default one intra-op thread per physical core, whose
/// idle threads sleep rather than spin (see <see cref="ConfigureSharedThreadPools"/> for the trade-off).
/// The environment is created once per process, when the first ONNX model loads (or
/// <see cref="SharedThreadPools"/> is read). Size the shared pools with
/// <see cref="ConfigureSharedThreadPools"/> before that. If the app created ONNX Runtime's environment
/// itself first (<see cref="OrtEnv.Instance"/> or <see cref="OrtEnv.CreateInstanceWithOptions"/>),
/// Servables uses that one, whose pools may not be shared: sessions then get their own pools, and the
/// loader logs a warning. Thread-safe.
/// </para>
/// </remarks>
public static class OnnxEnvironment
{
    private static readonly Lock s_gate = new();
    private static (int IntraOp, int InterOp, bool Spinning) s_pools = (0, 0, false);
    private static bool? s_shared; // null until the environment is created
    private static OrtThreadingOptions? s_threading; // kept for the process's lifetime, as the environment is

    /// <summary>Whether sessions with the default thread settings share the process's pools; creates the environment if it does not exist yet.</summary>
    /// <value>True when Servables created the environment (with shared pools); false when the app had created it first.</value>
    /// <exception cref="InvalidOperationException">ONNX Runtime's native library could not be loaded.</exception>
    public static bool SharedThreadPools
    {
        get
        {
            OnnxLoader.EnsureNativeLoaded(OnnxLoader.DefaultNativeProbe);
            return EnsureCreated();
        }
    }

    /// <summary>Sizes the thread pools that sessions share; call it once, at start-up, before the first ONNX model loads.</summary>
    /// <param name="intraOpThreads">Threads one operator may use, 1 to 1024 (the calling thread counts as one), or 0 for ONNX Runtime's default: one per physical core.</param>
    /// <param name="interOpThreads">Threads that run independent operators (for sessions with <see cref="ExecutionMode.ORT_PARALLEL"/>), 1 to 1024, or 0 for ONNX Runtime's default.</param>
    /// <param name="allowSpinning">
    /// Whether idle pool threads spin for a while before they sleep (ONNX Runtime's own default). Spinning
    /// lets a lone caller's run use every core at once, but concurrent callers then compete with spinning
    /// threads for the cores and wait for the scheduler: on 2 cores, 2 callers of a 0.1 ms model measured a
    /// p99 of 4.1 ms with spinning against 0.4 ms without, and 13% less throughput. Defaults to false, for
    /// servers with concurrent callers; true for a host whose calls come one at a time and must each be as
    /// fast as possible (the same model's lone caller: 0.057 ms with spinning, 0.099 ms without).
    /// </param>
    /// <exception cref="ArgumentOutOfRangeException">A count is out of range.</exception>
    /// <exception cref="InvalidOperationException">The environment exists already: a model loaded, or the app created it.</exception>
    public static void ConfigureSharedThreadPools(int intraOpThreads = 0, int interOpThreads = 0, bool allowSpinning = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(intraOpThreads);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(intraOpThreads, 1024);
        ArgumentOutOfRangeException.ThrowIfNegative(interOpThreads);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(interOpThreads, 1024);
        lock (s_gate)
        {
            if (s_shared is not null || OrtEnv.IsCreated)
            {
                throw new InvalidOperationException(
                    "ONNX Runtime's environment exists already (an ONNX model was loaded, or the app created it), and its thread pools are fixed when it is created. "
                    + "Call OnnxEnvironment.ConfigureSharedThreadPools at start-up, before the first ONNX model loads.");
            }

            s_pools = (intraOpThreads, interOpThreads, allowSpinning);
        }
    }

    /// <summary>Creates the environment with shared pools unless it exists; says whether its pools are shared.</summary>
    internal static bool EnsureCreated()
    {
        if (s_shared is { } known)
        {
            return known;
        }

        lock (s_gate)
        {
            if (s_shared is null)
            {
                if (OrtEnv.IsCreated)
                {
                    s_shared = false;
                }
                else
                {
                    s_threading = new OrtThreadingOptions
                    {
                        GlobalIntraOpNumThreads = s_pools.IntraOp,
                        GlobalInterOpNumThreads = s_pools.InterOp,
                        GlobalSpinControl = s_pools.Spinning,
                    };
                    var options = new EnvironmentCreationOptions { threadOptions = s_threading };
                    OrtEnv.CreateInstanceWithOptions(ref options);
                    s_shared = true;
                }
            }

            return s_shared.Value;
        }
    }
}
