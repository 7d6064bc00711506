using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Servables.Async.Tests.Queue;

/// <summary>Echoes what it received; "throw", "cycle", "func" and "slow" texts trigger faults.</summary>
public sealed class EchoHandler(AsyncHandlerConfig config, IAsyncHandlerMetrics metrics, ILogger<EchoHandler> logger, HandlerProbe probe) : IAsyncHandler
{
    public async ValueTask InitializeAsync(CancellationToken cancellationToken)
    {
        await Task.Yield();
        probe.Initialized = true;
    }

    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        if (!probe.Initialized)
        {
            throw new InvalidOperationException("handled before InitializeAsync completed");
        }

        metrics.Increment("echo.calls");
        logger.LogInformation("echo {Kind}", payload.Kind);
        probe.Started(requestId);
        if (payload.Kind == AsyncPayloadKind.Text)
        {
            switch (payload.Text)
            {
                case "throw":
                    throw new InvalidOperationException("handler bug");
                case "cycle":
                    var node = new Node();
                    node.Next = node;
                    return node;
                case "func":
                    return new { F = (Func<int>)(() => 1) };
                case "slow":
                    await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
                    break;
                case "gate":
                    await probe.Gate.Task.WaitAsync(cancellationToken);
                    break;
            }
        }

        return new JsonObject
        {
            ["kind"] = payload.Kind.ToString(),
            ["text"] = payload.Kind == AsyncPayloadKind.Text ? payload.Text : null,
            ["json"] = payload.Kind == AsyncPayloadKind.Json ? payload.ToJsonNode() : null,
            ["bytes"] = payload.RawBytes.Length,
            ["greeting"] = config.GetValue("greeting", "none"),
            ["api"] = config.ApiName,
            ["id"] = requestId,
        };
    }

    public sealed class Node
    {
        public Node? Next { get; set; }
    }
}

/// <summary>Lets tests see into and hold back the handler.</summary>
public sealed class HandlerProbe
{
    private readonly List<string> _started = [];

    public volatile bool Initialized;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<string> StartedIds
    {
        get
        {
            lock (_started)
            {
                return [.. _started];
            }
        }
    }

    public void Started(string id)
    {
        lock (_started)
        {
            _started.Add(id);
        }
    }
}

/// <summary>Returns its input upper-cased, after asking the "echo" API for a greeting: a chained call.</summary>
public sealed class ChainHandler(IAsyncApiClientFactory apis) : IAsyncHandler
{
    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        IAsyncApiClient echo = apis.GetClient("echo");
        string inner = await echo.SubmitTextAsync(payload.Text, $"{requestId}-inner", cancellationToken);
        AsyncRequestStatus done = await echo.WaitForCompletionAsync(inner, TimeSpan.FromSeconds(10), cancellationToken);
        return new { upper = payload.Text.ToUpperInvariant(), inner = done.Result!.Value.GetProperty("greeting").GetString() };
    }
}
