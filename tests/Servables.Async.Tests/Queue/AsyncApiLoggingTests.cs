using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Servables.Async.Tests.Queue;

public sealed class AsyncApiLoggingTests
{
    [Fact]
    public async Task EveryRequestLogLine_CarriesRequestIdAndApiScope()
    {
        var provider = new ScopeCapturingProvider();
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("echo"), logs: provider);
        IAsyncApiClient client = host.Client("echo");

        string ok = await client.SubmitTextAsync("x");
        string bad = await client.SubmitTextAsync("throw");
        await client.WaitForCompletionAsync(ok, TimeSpan.FromSeconds(10));
        await client.WaitForCompletionAsync(bad, TimeSpan.FromSeconds(10));

        LogLine handlerLine = Assert.Single(provider.Lines, l => l.Message == "echo Text" && Equals(l.Scope.GetValueOrDefault("request_id"), ok));
        Assert.Equal("echo", handlerLine.Scope["api"]);
        LogLine threw = Assert.Single(provider.Lines, l => l.EventId == 205);
        Assert.Equal(bad, threw.Scope["request_id"]);
        Assert.Contains(provider.Lines, l => l.EventId == 204 && Equals(l.Scope.GetValueOrDefault("request_id"), bad));
        Assert.Contains(provider.Lines, l => l.EventId == 200);
    }

    [Fact]
    public async Task RejectedSubmits_WithControlCharactersOrHugeContentType_LogNoControlCharactersAndStayShort()
    {
        var provider = new ScopeCapturingProvider();
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("echo"), logs: provider);
        IAsyncApiClient client = host.Client("echo");

        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitAsync("x"u8.ToArray(), "text/plain\r\n2026-12-01 ERROR forged line"));
        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitAsync("x"u8.ToArray(), "not a type " + new string('z', 100_000)));
        await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await client.SubmitTextAsync("x", "id\nforged"));

        LogLine[] rejected = [.. provider.Lines.Where(l => l.EventId == 211)];
        Assert.Equal(3, rejected.Length);
        Assert.All(rejected, l => Assert.DoesNotContain(l.Message, char.IsControl));
        Assert.All(rejected, l => Assert.InRange(l.Message.Length, 1, 1_000));
    }

    public sealed record LogLine(int EventId, string Message, Dictionary<string, object?> Scope);

    internal sealed class ScopeCapturingProvider : ILoggerProvider, ISupportExternalScope
    {
        private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();

        public ConcurrentQueue<LogLine> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

        public void Dispose()
        {
        }

        private sealed class Logger(ScopeCapturingProvider owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => owner._scopes.Push(state);

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var scope = new Dictionary<string, object?>();
                owner._scopes.ForEachScope(
                    (s, bag) =>
                    {
                        if (s is IEnumerable<KeyValuePair<string, object?>> pairs)
                        {
                            foreach (KeyValuePair<string, object?> pair in pairs)
                            {
                                bag[pair.Key] = pair.Value;
                            }
                        }
                    },
                    scope);
                owner.Lines.Enqueue(new LogLine(eventId.Id, formatter(state, exception), scope));
            }
        }
    }
}
