namespace Servables.Torch;

/// <summary>
/// A <see cref="TorchServable"/> was called with inputs the module cannot run: a wrong element type,
/// rank, shape or count. The message names the servable, the inputs and what is wrong (libtorch's own
/// words when it was libtorch that refused them); the module stays usable.
/// </summary>
/// <remarks>The inner exception, when there is one, is libtorch's own (with its TorchScript traceback).</remarks>
public sealed class TorchInputException : ArgumentException
{
    /// <summary>Creates the exception for <paramref name="id"/>.</summary>
    /// <param name="id">The servable version that was called.</param>
    /// <param name="problem">What is wrong, in one sentence.</param>
    /// <param name="inputs">The inputs as given, such as <c>(Float64[2, 3] on cpu)</c>.</param>
    /// <param name="innerException">libtorch's exception; null when the mismatch was found before running.</param>
    public TorchInputException(ServableId id, string problem, string inputs, Exception? innerException = null)
        : base($"Servable {id} cannot run the inputs {inputs}: {problem}", innerException)
    {
        Id = id;
        Problem = problem;
        Inputs = inputs;
    }

    /// <summary>Creates the exception with a message.</summary>
    public TorchInputException(string message)
        : base(message)
    {
        Problem = message;
        Inputs = string.Empty;
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public TorchInputException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problem = message;
        Inputs = string.Empty;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public TorchInputException()
        : this("The inputs do not fit the module.")
    {
    }

    /// <summary>The servable version that was called.</summary>
    public ServableId Id { get; }

    /// <summary>What is wrong with the inputs, in one sentence.</summary>
    public string Problem { get; }

    /// <summary>The inputs as given: element type, shape and device of each.</summary>
    public string Inputs { get; }
}
