namespace Servables;

/// <summary>Configures a <see cref="BatchScheduler{TTask}"/>: the workers its queues share, and its clock.</summary>
/// <remarks>The scheduler copies these values when it is constructed.</remarks>
public sealed class BatchSchedulerOptions
{
    /// <summary>
    /// How many batches may run at once, across all queues. A model whose run already uses every core
    /// (ONNX Runtime's and libtorch's default intra-op pools) gains little from more than one.
    /// </summary>
    /// <value>1 to 256. Defaults to 1.</value>
    [OptionRange(1, 256)]
    public int BatchWorkers { get; set; } = 1;

    /// <summary>The clock for batch timeouts and queue delays.</summary>
    /// <value>Defaults to <see cref="TimeProvider.System"/>.</value>
    [OptionRequired]
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>Lists what is wrong with these options; empty when they are valid.</summary>
    public IReadOnlyList<string> Validate() => BatchSchedulerOptionsValidator.Instance.Validate(null, this).Problems();
}
