namespace Servables.Torch;

/// <summary>Where libtorch runs a module.</summary>
public enum TorchDevice
{
    /// <summary>On the CPU; works with every libtorch package.</summary>
    Cpu = 0,

    /// <summary>
    /// On an NVIDIA GPU. Needs TorchSharp's CUDA package in the app (instead of <c>libtorch-cpu-linux-x64</c>
    /// or <c>TorchSharp-cpu</c>) and a usable device; otherwise the load fails with an error that says so.
    /// </summary>
    Cuda = 1,

    /// <summary>CUDA when it is usable, else the CPU; the fallback is logged as a warning.</summary>
    Auto = 2,
}
