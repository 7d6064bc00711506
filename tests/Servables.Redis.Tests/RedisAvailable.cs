using Servables.Testing;

namespace Servables.Redis.Tests;

/// <summary>Where <c>redis-server</c> is not installed, the Redis tests skip with the reason.</summary>
internal static class RedisAvailable
{
    public static void SkipIfMissing() => Skip.If(RedisServer.Binary is null, RedisServer.MissingReason);
}
