namespace Servables;

/// <summary>One unit of work for a <see cref="BatchScheduler{TTask}"/>: a caller's request, with how much room it takes in a batch.</summary>
/// <remarks>Implementations carry their inputs and receive their outputs from the batch function; the scheduler only reads <see cref="Size"/>.</remarks>
public interface IBatchTask
{
    /// <summary>How much of a batch the task takes (its number of examples); at least 1, and the same on every read.</summary>
    int Size { get; }
}
