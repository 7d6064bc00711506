namespace Servables.Torch;

/// <summary>What a version folder holds, and so how <see cref="TorchLoader"/> turns it into a module.</summary>
public enum TorchModelKind
{
    /// <summary>
    /// A TorchScript archive written by <c>torch.jit.save</c> (code and weights together), loaded with
    /// <c>torch.jit.load</c>. Default file name <c>model.pt</c>.
    /// </summary>
    TorchScript = 0,

    /// <summary>
    /// Weights in TorchSharp's own format (<c>module.save(path)</c>) for the module that
    /// <see cref="TorchServableOptions.ModuleFactory"/> builds. Default file name <c>model.dat</c>.
    /// </summary>
    TorchSharpWeights = 1,

    /// <summary>
    /// A PyTorch <c>state_dict</c> (<c>torch.save(model.state_dict(), path)</c>) for the module that
    /// <see cref="TorchServableOptions.ModuleFactory"/> builds, read with TorchSharp.PyBridge. Default file name <c>model.pth</c>.
    /// </summary>
    PyTorchStateDict = 2,

    /// <summary>
    /// A safetensors file for the module that <see cref="TorchServableOptions.ModuleFactory"/> builds,
    /// read with TorchSharp.PyBridge. Default file name <c>model.safetensors</c>.
    /// </summary>
    Safetensors = 3,
}
