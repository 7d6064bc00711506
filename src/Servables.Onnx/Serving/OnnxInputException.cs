namespace Servables.Onnx;

/// <summary>
/// A <see cref="OnnxServable"/> was run with inputs or outputs that do not match the model: an
/// unknown or missing name, a wrong element type, rank or dimension. The message names the
/// servable, what is wrong and the model's full signature; the session stays usable.
/// </summary>
/// <remarks>The inner exception, when there is one, is ONNX Runtime's own.</remarks>
public sealed class OnnxInputException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="id"/>.</summary>
    /// <param name="id">The servable version that was run.</param>
    /// <param name="problem">What is wrong, in one sentence.</param>
    /// <param name="signature">The model's signature, such as <c>(X: float[batch, 4]) -&gt; (Y: float[batch, 2])</c>.</param>
    /// <param name="innerException">ONNX Runtime's exception; null when the mismatch was found before running.</param>
    public OnnxInputException(ServableId id, string problem, string signature, Exception? innerException = null)
        : base(
            $"Servable {id} cannot run these inputs: {problem} The model's signature is {signature}."
            + (innerException is null ? string.Empty : $" ONNX Runtime said: {innerException.Message}"),
            innerException)
    {
        Id = id;
        Problem = problem;
        Signature = signature;
    }

    /// <summary>Creates the exception with a message.</summary>
    public OnnxInputException(string message)
        : base(message)
    {
        Problem = message;
        Signature = string.Empty;
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public OnnxInputException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problem = message;
        Signature = string.Empty;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public OnnxInputException()
        : this("The inputs do not match the model's signature.")
    {
    }

    /// <summary>The servable version that was run.</summary>
    public ServableId Id { get; }

    /// <summary>What is wrong with the inputs, in one sentence.</summary>
    public string Problem { get; }

    /// <summary>The model's signature, inputs then outputs.</summary>
    public string Signature { get; }
}
