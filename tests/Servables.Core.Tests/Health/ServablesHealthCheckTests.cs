using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Servables.Testing;

namespace Servables.Core.Tests.Health;

/// <summary>The servables health check through <c>AddHealthChecks().AddServables()</c> and the real <see cref="HealthCheckService"/>.</summary>
public sealed class ServablesHealthCheckTests
{
    [Fact]
    public async Task CheckHealthAsync_ServingThenNewerVersionFails_HealthyThenDegradedWithTheError()
    {
        await using ServiceProvider services = Build();
        AspiredVersionsManager manager = services.GetRequiredService<AspiredVersionsManager>();
        var v1 = new FakeLoader("m", 1);
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(v1.Id, v1)]);
        await manager.ManageStateAsync();

        HealthReport healthy = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal("Healthy: version 1 serves", healthy.Entries["servables"].Data["m"]);

        FakeLoader v2 = new FakeLoader("m", 2).FailLoads(1);
        v2.Failure = new InvalidDataException("v2 weights are truncated");
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(v1.Id, v1), ServableData.Create<Loader>(v2.Id, v2)]);
        await manager.ManageStateAsync();
        await manager.ManageStateAsync();

        HealthReport degraded = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        string reason = (string)degraded.Entries["servables"].Data["m"];
        Assert.StartsWith("Degraded: version 1 serves, but version 2 failed", reason, StringComparison.Ordinal);
        Assert.Contains("v2 weights are truncated", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckHealthAsync_RegisteredServableWithNothingServing_Unhealthy_AndTagsMapReadiness()
    {
        await using ServiceProvider services = Build(s => s.AddServables().AddStoragePathServable("never", "/nonexistent/servables-health", (_, id, _) => new FakeLoader(id)));
        HealthCheckService health = services.GetRequiredService<HealthCheckService>();

        HealthReport ready = await health.CheckHealthAsync(r => r.Tags.Contains("ready"));
        HealthReport live = await health.CheckHealthAsync(r => r.Tags.Contains("live"));

        Assert.Equal(HealthStatus.Unhealthy, ready.Status);
        Assert.Contains("'never' (no version found yet)", ready.Entries["servables"].Description, StringComparison.Ordinal);
        Assert.Equal(HealthStatus.Healthy, live.Status); // no check carries "live": the process is alive
        Assert.Empty(live.Entries);
    }

    [Fact]
    public async Task CheckHealthAsync_OnlyVersionFailed_ReportsTheFailureStatusWithTheError()
    {
        await using ServiceProvider services = Build(configureChecks: b => b.AddServables(failureStatus: HealthStatus.Degraded, tags: ["models"]));
        AspiredVersionsManager manager = services.GetRequiredService<AspiredVersionsManager>();
        FakeLoader v1 = new FakeLoader("m", 1).FailLoads(1);
        manager.SetAspiredVersions("m", [ServableData.Create<Loader>(v1.Id, v1)]);
        await manager.ManageStateAsync();

        HealthReport report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        HealthReportEntry entry = report.Entries["servables"];
        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(["models"], entry.Tags);
        Assert.Contains("no version serves; version 1 failed", (string)entry.Data["m"], StringComparison.Ordinal);
    }

    private static ServiceProvider Build(Action<IServiceCollection>? configure = null, Action<IHealthChecksBuilder>? configureChecks = null)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddServables(o => (o.ManageStateInterval, o.MaxLoadRetries) = (Timeout.InfiniteTimeSpan, 0));
        configure?.Invoke(services);
        IHealthChecksBuilder checks = services.AddHealthChecks();
        if (configureChecks is null)
        {
            checks.AddServables();
        }
        else
        {
            configureChecks(checks);
        }

        return services.BuildServiceProvider();
    }
}
