namespace Servables.Onnx;

/// <summary>Where ONNX Runtime runs a model.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>On the CPU; works with every ONNX Runtime package.</summary>
    Cpu = 0,

    /// <summary>
    /// On an NVIDIA GPU through the CUDA execution provider. Needs the GPU package
    /// (<c>Microsoft.ML.OnnxRuntime.Gpu</c>) in the app instead of the CPU one, and a usable device;
    /// otherwise the load fails with an error that says so.
    /// </summary>
    Cuda = 1,

    /// <summary>CUDA when it is usable, else the CPU; the fallback is logged as a warning.</summary>
    Auto = 2,
}
