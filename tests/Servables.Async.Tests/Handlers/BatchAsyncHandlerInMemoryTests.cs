namespace Servables.Async.Tests.Handlers;

/// <summary>Every <see cref="BatchAsyncHandlerTests"/> test over the default in-memory store.</summary>
public sealed class BatchAsyncHandlerInMemoryTests : BatchAsyncHandlerTests;
