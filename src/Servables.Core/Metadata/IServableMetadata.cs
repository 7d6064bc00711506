namespace Servables;

/// <summary>What a servable says about itself for model metadata endpoints (KServe V2): the platform that runs it, and its inputs and outputs.</summary>
/// <remarks>The ONNX and Torch servables implement it; a servable of the app's own may. Implementations are immutable while the version is loaded.</remarks>
public interface IServableMetadata
{
    /// <summary>The runtime, as KServe V2 names platforms: <c>onnxruntime_onnx</c>, <c>pytorch_torchscript</c>, <c>pytorch_torchsharp</c>, or one of the app's own.</summary>
    string Platform { get; }

    /// <summary>The servable's inputs, in order.</summary>
    IReadOnlyList<TensorMetadata> Inputs { get; }

    /// <summary>The servable's outputs, in order.</summary>
    IReadOnlyList<TensorMetadata> Outputs { get; }
}

/// <summary>One input or output of a servable, in KServe V2's terms.</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="Datatype">Its element type as KServe V2 spells it: <c>BOOL</c>, <c>UINT8</c> … <c>UINT64</c>, <c>INT8</c> … <c>INT64</c>, <c>FP16</c>, <c>BF16</c>, <c>FP32</c>, <c>FP64</c> or <c>BYTES</c>.</param>
/// <param name="Shape">Its dimensions; -1 for one that varies (a batch dimension, a symbolic one).</param>
public sealed record TensorMetadata(string Name, string Datatype, IReadOnlyList<long> Shape);
