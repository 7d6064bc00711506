using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Servables.AspNetCore;

/// <summary>Serves the servables' metadata and readiness in KServe V2's (the Open Inference Protocol's) REST shapes.</summary>
public static class ServableMetadataEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>GET {prefix}/models/{name}[/versions/{version}]</c> (metadata) and <c>GET {prefix}/models/{name}[/versions/{version}]/ready</c>
    /// (readiness) over the app's <see cref="IServableManager"/>.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item>Metadata: <c>200 {"name", "versions": ["1", "2"], "platform", "inputs": [{"name", "datatype", "shape"}], "outputs": […]}</c>,
    /// describing the newest available version or the one asked for, from its <see cref="IServableMetadata"/> (a servable that does
    /// not implement it reads with its .NET type as the platform and no inputs or outputs). <c>versions</c> lists every available
    /// version. A model or version that is not available: <c>404 {"error": "…"}</c>; a version that is not a number: <c>400</c>.</item>
    /// <item>Readiness: <c>200 {"name", "ready": true}</c> when a version (or the one asked for) is available, else
    /// <c>400 {"name", "ready": false}</c>: the status code is the answer, as the protocol says.</item>
    /// </list>
    /// </remarks>
    /// <param name="endpoints">The app's endpoint builder.</param>
    /// <param name="prefix">The protocol's root; <c>/v2</c> by default.</param>
    /// <returns>The route group, to add authorization and the like.</returns>
    /// <exception cref="InvalidOperationException">No <see cref="IServableManager"/> is registered (call <c>AddServables</c>).</exception>
    public static RouteGroupBuilder MapServableMetadata(this IEndpointRouteBuilder endpoints, string prefix = "/v2")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        IServableManager manager = endpoints.ServiceProvider.GetService<IServableManager>()
            ?? throw new InvalidOperationException("No IServableManager is registered: call services.AddServables() before mapping the servables' metadata.");

        RouteGroupBuilder group = endpoints.MapGroup(prefix + "/models/{name}").WithTags("models");
        group.MapGet(string.Empty, (string name) => Metadata(manager, name, null));
        group.MapGet("/versions/{version}", (string name, string version) => Metadata(manager, name, version));
        group.MapGet("/ready", (string name) => Ready(manager, name, null));
        group.MapGet("/versions/{version}/ready", (string name, string version) => Ready(manager, name, version));
        return group;
    }

    private static IResult Metadata(IServableManager manager, string name, string? version)
    {
        if (!TryRequest(name, version, out ServableRequest request, out IResult? invalid))
        {
            return invalid;
        }

        long[] versions = Versions(manager, name);
        if (versions.Length == 0 || !manager.TryGetServableHandle(request, out ServableHandle<object> handle))
        {
            return Error(StatusCodes.Status404NotFound, version is null
                ? $"Model '{name}' has no available version."
                : $"Version {version} of model '{name}' is not available{(versions.Length > 0 ? $" (available: {string.Join(", ", versions)})" : string.Empty)}.");
        }

        using (handle)
        {
            IServableMetadata? described = handle.Value as IServableMetadata;
            return Results.Json(new ModelMetadata(
                name,
                [.. versions.Select(v => v.ToString(CultureInfo.InvariantCulture))],
                described?.Platform ?? handle.Value.GetType().FullName ?? handle.Value.GetType().Name,
                [.. (described?.Inputs ?? []).Select(Tensor.From)],
                [.. (described?.Outputs ?? []).Select(Tensor.From)]));
        }
    }

    private static IResult Ready(IServableManager manager, string name, string? version)
    {
        if (!TryRequest(name, version, out _, out IResult? invalid))
        {
            return invalid;
        }

        long[] versions = Versions(manager, name);
        bool ready = version is null ? versions.Length > 0 : versions.Contains(long.Parse(version, CultureInfo.InvariantCulture));
        return Results.Json(new ModelReady(name, ready), statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    private static bool TryRequest(string name, string? version, out ServableRequest request, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out IResult? invalid)
    {
        invalid = null;
        if (version is null)
        {
            request = ServableRequest.Latest(name);
            return true;
        }

        if (long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out long number))
        {
            request = ServableRequest.Specific(name, number);
            return true;
        }

        request = default;
        invalid = Error(StatusCodes.Status400BadRequest, $"'{version}' is not a model version: versions are whole numbers, 0 or more.");
        return false;
    }

    private static long[] Versions(IServableManager manager, string name) =>
        [.. manager.ListAvailableServableIds().Where(id => string.Equals(id.Name, name, StringComparison.Ordinal)).Select(id => id.Version).Order()];

    private static IResult Error(int status, string message) => Results.Json(new ProtocolError(message), statusCode: status);

#pragma warning disable IDE1006, SA1300 // The protocol's property names.
    private sealed record ModelMetadata(string name, string[] versions, string platform, Tensor[] inputs, Tensor[] outputs);

    private sealed record Tensor(string name, string datatype, long[] shape)
    {
        public static Tensor From(TensorMetadata t) => new(t.Name, t.Datatype, [.. t.Shape]);
    }

    private sealed record ModelReady(string name, bool ready);

    private sealed record ProtocolError(string error);
#pragma warning restore IDE1006, SA1300
}
