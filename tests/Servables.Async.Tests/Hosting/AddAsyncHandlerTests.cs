using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Servables.Async.Tests.Queue;

namespace Servables.Async.Tests.Hosting;

public sealed class AddAsyncHandlerTests
{
    [Fact]
    public async Task AddAsyncHandler_Twice_RegistersOneApiAndAddsConfiguration()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s
            .AddAsyncHandler<EchoHandler>(o => o.Config["greeting"] = "first")
            .AddAsyncHandler<EchoHandler>(o => o.Config["greeting"] = "second"));

        Assert.Single(host.Host.Services.GetServices<IHostedService>(), h => h.GetType().Name == "AsyncApiHostedService");
        Assert.Same(host.Client(), host.Host.Services.GetRequiredService<IAsyncApiClient>());
        string id = await host.Client().SubmitTextAsync("x");
        Assert.Equal("second", (await host.Client().WaitForCompletionAsync(id, TimeSpan.FromSeconds(10))).Result!.Value.GetProperty("greeting").GetString());
    }

    [Fact]
    public async Task BareServiceProvider_DisposedSynchronously_StopsTheApiWithoutThrowing()
    {
        ServiceProvider provider = new ServiceCollection().AddLogging().AddSingleton<HandlerProbe>().AddAsyncHandler<EchoHandler>().BuildServiceProvider();
        foreach (IHostedService service in provider.GetServices<IHostedService>())
        {
            await service.StartAsync(CancellationToken.None);
        }

        IAsyncApiClient api = provider.GetRequiredService<IAsyncApiClient>();
        Assert.Equal(AsyncRequestState.Completed, (await api.WaitForCompletionAsync(await api.SubmitTextAsync("x"), TimeSpan.FromSeconds(10))).State);

        provider.Dispose(); // as `using var provider = services.BuildServiceProvider()` does, in tests and tools

        AsyncRequestRejectedException refused = await Assert.ThrowsAsync<AsyncRequestRejectedException>(async () => await api.SubmitTextAsync("y"));
        Assert.Equal(AsyncRejection.Stopping, refused.Reason);
    }

    [Fact]
    public void AddAsyncHandler_SameNameOtherHandler_Throws()
    {
        var services = new ServiceCollection().AddAsyncHandler<EchoHandler>("x");
        InvalidOperationException error = Assert.Throws<InvalidOperationException>(() => services.AddAsyncHandler<ChainHandler>("x"));
        Assert.Contains("already registered", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => services.AddAsyncHandler<EchoHandler>("bad name"));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(601)]
    public void Validate_AbandonTimeoutOutOfRange_NamesIt(int seconds)
    {
        IReadOnlyList<string> errors = new AsyncApiOptions { AbandonTimeout = TimeSpan.FromSeconds(seconds) }.Validate();
        Assert.Contains(errors, e => e.StartsWith("AbandonTimeout must be between 0 and 10 minutes", StringComparison.Ordinal));
        Assert.Equal(TimeSpan.FromSeconds(5), new AsyncApiOptions().AbandonTimeout);
        Assert.Empty(new AsyncApiOptions { AbandonTimeout = TimeSpan.Zero }.Validate());
    }

    [Fact]
    public void Validate_StoreRetriesOutOfRange_NamesThem()
    {
        IReadOnlyList<string> errors = new AsyncApiOptions { StoreRetries = 11, StoreRetryDelay = TimeSpan.Zero }.Validate();
        Assert.Contains(errors, e => e.StartsWith("StoreRetries must be between 0 and 10", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("StoreRetryDelay must be between 1 ms and 1 minute", StringComparison.Ordinal));
        Assert.Equal((3, TimeSpan.FromMilliseconds(200)), (new AsyncApiOptions().StoreRetries, new AsyncApiOptions().StoreRetryDelay));
    }

    [Fact]
    public async Task InvalidOptions_FailHostStartNamingTheProblem()
    {
        OptionsValidationException error = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("bad", o => (o.WorkerCount, o.QueueCapacity) = (0, 0))));
        Assert.Contains("Async API 'bad': WorkerCount", error.Message, StringComparison.Ordinal);
        Assert.Contains("QueueCapacity", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedApis_ResolvableByKeyAndFactory()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<EchoHandler>("echo").AddAsyncHandler<ChainHandler>("chain"));
        var factory = host.Host.Services.GetRequiredService<IAsyncApiClientFactory>();

        Assert.Equal(["chain", "echo"], factory.ApiNames.Order());
        Assert.Same(host.Client("echo"), factory.GetClient("echo"));
        Assert.Equal("chain", factory.GetClient("chain").ApiName);
        Assert.Same(host.Client("echo"), host.Host.Services.GetRequiredService<IAsyncApiClient>()); // the first registered
        InvalidOperationException unknown = Assert.Throws<InvalidOperationException>(() => factory.GetClient("nope"));
        Assert.Contains("Registered: echo, chain", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handler_ConstructedOnceAndInitializedBeforeRequests()
    {
        await using AsyncHost host = await AsyncHost.StartAsync(s => s.AddAsyncHandler<CountingHandler>());
        string[] ids = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => host.Client().SubmitTextAsync("x").AsTask()));
        foreach (string id in ids)
        {
            Assert.Equal(AsyncRequestState.Completed, (await host.Client().WaitForCompletionAsync(id, TimeSpan.FromSeconds(10))).State);
        }

        Assert.Equal(1, CountingHandler.Constructed);
    }

    public sealed class CountingHandler : IAsyncHandler
    {
        private static int s_constructed;

        public CountingHandler() => Interlocked.Increment(ref s_constructed);

        public static int Constructed => Volatile.Read(ref s_constructed);

        public ValueTask<object?> HandleAsync(AsyncPayload payload, string requestId, CancellationToken cancellationToken) => ValueTask.FromResult<object?>(requestId);
    }
}
