using System.Text.Json.Nodes;

namespace Servables.Async.Tests.Handlers;

/// <summary>
/// Upper-cases each text of its batch and records every batch it receives. Texts steer it: "gate" holds the
/// batch on <see cref="BatchProbe.Gate"/> (honouring the batch's token), "fail" fails that request alone,
/// "throw" throws for the whole batch, "cancelme" waits for its own request's token, "short" returns one
/// result too few, "null" gives its request a null entry.
/// </summary>
public sealed class RecordingBatchHandler(BatchProbe probe, IAsyncHandlerMetrics metrics, AsyncHandlerConfig config) : IBatchAsyncHandler
{
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        probe.Initialized = true;
    }

    public async ValueTask<IReadOnlyList<AsyncBatchResult>> HandleBatchAsync(IReadOnlyList<AsyncBatchRequest> requests, CancellationToken cancellationToken)
    {
        if (!probe.Initialized)
        {
            throw new InvalidOperationException("handled before InitializeAsync completed");
        }

        probe.Record(requests);
        metrics.Increment("batch.calls");
        string[] texts = [.. requests.Select(r => r.Payload.Kind == AsyncPayloadKind.Text ? r.Payload.Text : r.Payload.Kind.ToString())];
        if (texts.Contains("gate"))
        {
            await probe.Gate.Task.WaitAsync(cancellationToken);
        }

        if (texts.Contains("throw"))
        {
            throw new InvalidOperationException("batch bug");
        }

        var results = new List<AsyncBatchResult?>(requests.Count);
        for (int i = 0; i < requests.Count; i++)
        {
            switch (texts[i])
            {
                case "fail":
                    results.Add(AsyncBatchResult.Failure(new ArgumentException("bad input")));
                    break;
                case "cancelme":
                    try
                    {
                        await Task.Delay(Timeout.InfiniteTimeSpan, requests[i].CancellationToken);
                    }
                    catch (OperationCanceledException ex)
                    {
                        results.Add(AsyncBatchResult.Failure(ex));
                    }

                    break;
                case "null":
                    results.Add(null);
                    break;
                default:
                    results.Add(AsyncBatchResult.Success(new JsonObject
                    {
                        ["upper"] = texts[i].ToUpperInvariant(),
                        ["id"] = requests[i].RequestId,
                        ["batch"] = requests.Count,
                        ["api"] = config.ApiName,
                    }));
                    break;
            }
        }

        if (texts.Contains("short"))
        {
            results.RemoveAt(results.Count - 1);
        }

        return results!;
    }
}

/// <summary>What <see cref="RecordingBatchHandler"/> received, and the gate that holds it.</summary>
public sealed class BatchProbe
{
    private readonly List<int> _sizes = [];
    private readonly List<string> _ids = [];

    public volatile bool Initialized;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The size of each batch, in the order they started.</summary>
    public IReadOnlyList<int> BatchSizes
    {
        get
        {
            lock (_sizes)
            {
                return [.. _sizes];
            }
        }
    }

    /// <summary>Every request id the handler received.</summary>
    public IReadOnlyList<string> SeenIds
    {
        get
        {
            lock (_sizes)
            {
                return [.. _ids];
            }
        }
    }

    public int Batches
    {
        get
        {
            lock (_sizes)
            {
                return _sizes.Count;
            }
        }
    }

    public void Record(IReadOnlyList<AsyncBatchRequest> requests)
    {
        lock (_sizes)
        {
            _sizes.Add(requests.Count);
            _ids.AddRange(requests.Select(r => r.RequestId));
        }
    }
}
