using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Servables.Async.Tests.Queue;

/// <summary>Echoes what it received; "throw", "cycle", "func", "generic" and "slow" texts trigger faults.</summary>
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
                case "generic":
                    return new List<Func<int>> { () => 1 };
                case "slow":
                    await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
                    break;
                case "gate":
                    await probe.Gate.Task.WaitAsync(cancellationToken);
                    break;
                case "big":
                    return new string('r', 300_000);
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

/// <summary>
/// Records whether it, or the API's store, was disposed while a request ran in it. "gate" waits for
/// <see cref="LifetimeProbe.Gate"/> and honours cancellation; "stubborn" waits for it and ignores cancellation.
/// </summary>
public sealed class LifetimeHandler(LifetimeProbe probe) : IAsyncHandler, IAsyncDisposable
{
    public async ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref probe.Running);
        try
        {
            switch (payload.Text)
            {
                case "gate":
                    await probe.Gate.Task.WaitAsync(cancellationToken);
                    break;
                case "stubborn":
                    await probe.Gate.Task; // ignores its token
                    break;
            }

            return payload.Text;
        }
        finally
        {
            if (probe.Disposed || probe.StoreDisposed)
            {
                probe.DisposedUnderARunningRequest = true;
            }

            Interlocked.Decrement(ref probe.Running);
        }
    }

    public ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref probe.Running) > 0)
        {
            probe.DisposedUnderARunningRequest = true;
        }

        probe.Disposed = true;
        probe.DisposedOnce.TrySetResult();
        return ValueTask.CompletedTask;
    }
}

/// <summary>What <see cref="LifetimeHandler"/> saw.</summary>
public sealed class LifetimeProbe
{
    public int Running;

    public volatile bool Disposed;

    public volatile bool StoreDisposed;

    public volatile bool DisposedUnderARunningRequest;

    public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource DisposedOnce { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A store that tells this probe when it is disposed, and that counts as disposed if a request runs when it is.</summary>
    public IAsyncResultStore Store(AsyncResultStoreOptions options) => new Results.ForwardingResultStore(
        new InMemoryAsyncResultStore(options),
        () =>
        {
            if (Volatile.Read(ref Running) > 0)
            {
                DisposedUnderARunningRequest = true;
            }

            StoreDisposed = true;
        });
}
