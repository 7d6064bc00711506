using System.Buffers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Servables.Async;

namespace Servables.AspNetCore;

/// <summary>Puts an async API on an HTTP route, with Cortex's AsyncAPI wire shapes.</summary>
public static class AsyncApiEndpointRouteBuilderExtensions
{
    /// <summary>The header that carries the caller's request id on a submit.</summary>
    public const string RequestIdHeader = "x-request-id";

    /// <summary>
    /// Maps the async API <paramref name="apiName"/> (registered with <c>AddAsyncHandler</c>) at <paramref name="pattern"/>:
    /// <c>POST</c> submits, <c>GET {id}</c> reads a status, <c>DELETE {id}</c> cancels.
    /// </summary>
    /// <remarks>
    /// <list type="bullet">
    /// <item><c>POST pattern</c> with any Content-Type: the body goes to the API with its Content-Type unchanged (charset
    /// included), read once into the array the API keeps; <c>x-request-id</c> names the request. <c>200 {"id": "…"}</c>.</item>
    /// <item><c>GET pattern/{id}</c>: <c>200</c> with the status in Cortex's shape (<see cref="AsyncRequestStatusJsonConverter"/>);
    /// <c>404</c> with <c>{"id", "status": "not_found"}</c> for an unknown id.</item>
    /// <item><c>DELETE pattern/{id}</c>: cancels a queued or running request: <c>200</c> with its status once it has ended
    /// (failed, "Cancelled by the caller…"), <c>202</c> with its status while its handler has not returned yet (the request
    /// ends failed when it does, unless the handler completes it anyway); <c>404</c> unknown; <c>409</c> finished already.</item>
    /// </list>
    /// Caller's mistakes are 4xx with a problem details body (<c>application/problem+json</c>): no Content-Type or a
    /// malformed id or body 400, an id in use 409, a body over <see cref="AsyncApiOptions.MaxPayloadBytes"/> 413 (refused from
    /// its Content-Length, or once that many bytes were read), a full queue 429 with <c>Retry-After</c>. The API stopping, or
    /// its store unavailable or full, is 503.
    /// </remarks>
    /// <param name="endpoints">The app's endpoint builder.</param>
    /// <param name="pattern">The route, such as <c>/summarize</c>.</param>
    /// <param name="apiName">The async API's name; <see cref="AsyncApiOptions.DefaultName"/> for one registered without a name.</param>
    /// <returns>The route group, to add authorization, rate limiting, OpenAPI and the like as on any endpoint.</returns>
    /// <exception cref="InvalidOperationException">No async API named <paramref name="apiName"/> is registered.</exception>
    public static RouteGroupBuilder MapAsyncApi(this IEndpointRouteBuilder endpoints, string pattern, string apiName = AsyncApiOptions.DefaultName)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        ArgumentException.ThrowIfNullOrEmpty(apiName);
        AsyncApi api = endpoints.ServiceProvider.GetKeyedService<AsyncApi>(apiName)
            ?? throw new InvalidOperationException($"No async API named '{apiName}' is registered: call services.AddAsyncHandler<THandler>(\"{apiName}\") before mapping it.");

        RouteGroupBuilder group = endpoints.MapGroup(pattern).WithTags(apiName);
        group.MapPost(string.Empty, (Delegate)((HttpContext context) => SubmitAsync(api, context)))
            .WithName($"{apiName}.submit")
            .Produces(StatusCodes.Status200OK, contentType: "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status429TooManyRequests);
        group.MapGet("/{id}", (string id, CancellationToken cancellationToken) => StatusAsync(api, id, cancellationToken))
            .WithName($"{apiName}.status")
            .Produces<AsyncRequestStatus>()
            .Produces<AsyncRequestStatus>(StatusCodes.Status404NotFound);
        group.MapDelete("/{id}", (string id, CancellationToken cancellationToken) => CancelAsync(api, id, cancellationToken))
            .WithName($"{apiName}.cancel")
            .Produces<AsyncRequestStatus>()
            .Produces<AsyncRequestStatus>(StatusCodes.Status202Accepted)
            .ProducesProblem(StatusCodes.Status409Conflict);
        return group;
    }

    private static async Task<IResult> SubmitAsync(AsyncApi api, HttpContext context)
    {
        HttpRequest request = context.Request;
        if (string.IsNullOrEmpty(request.ContentType))
        {
            return Problem(StatusCodes.Status400BadRequest, "Content-Type is missing", $"A submit to async API '{api.ApiName}' needs a Content-Type header that says what its body is (application/json, text/plain; charset=…, or any other type for bytes).");
        }

        string? requestId = request.Headers[RequestIdHeader] is { Count: > 0 } header ? header.ToString() : null;
        int limit = api.MaxPayloadBytes;
        if (request.ContentLength > limit)
        {
            return TooLarge(api, $"its Content-Length is {request.ContentLength}");
        }

        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize && bodySize.MaxRequestBodySize < limit + 1L)
        {
            bodySize.MaxRequestBodySize = limit + 1L; // the API's limit governs (Kestrel's default is 30 MB)
        }

        byte[]? body;
        try
        {
            body = await ReadBodyAsync(request, limit, context.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex)
        {
            return Problem(ex.StatusCode, "The body could not be read", ex.Message);
        }

        if (body is null)
        {
            return TooLarge(api, "it is longer");
        }

        try
        {
            string id = await api.SubmitOwnedAsync(body, request.ContentType, requestId, context.RequestAborted).ConfigureAwait(false);
            return Results.Json(new SubmitResponse(id));
        }
        catch (AsyncRequestRejectedException ex)
        {
            return ex.Reason switch
            {
                AsyncRejection.DuplicateId => Problem(StatusCodes.Status409Conflict, "The request id is in use", ex.Message),
                AsyncRejection.TooLarge => Problem(StatusCodes.Status413PayloadTooLarge, "The body is too large", ex.Message),
                AsyncRejection.Stopping => Problem(StatusCodes.Status503ServiceUnavailable, "The API is stopping", ex.Message),
                _ => Problem(StatusCodes.Status400BadRequest, "The request is malformed", ex.Message),
            };
        }
        catch (AsyncQueueFullException ex)
        {
            context.Response.Headers.RetryAfter = "1";
            return Problem(StatusCodes.Status429TooManyRequests, "The queue is full", ex.Message);
        }
        catch (Exception ex) when (ex is AsyncStoreUnavailableException or AsyncStoreFullException)
        {
            context.Response.Headers.RetryAfter = "1";
            return Problem(StatusCodes.Status503ServiceUnavailable, "The result store cannot take the request", ex.Message);
        }
    }

    private static Task<IResult> StatusAsync(AsyncApi api, string id, CancellationToken cancellationToken) => ForIdAsync(id, async () =>
    {
        AsyncRequestStatus status = await api.GetStatusAsync(id, cancellationToken).ConfigureAwait(false);
        return Results.Json(status, statusCode: status.State == AsyncRequestState.NotFound ? StatusCodes.Status404NotFound : StatusCodes.Status200OK);
    });

    private static Task<IResult> CancelAsync(AsyncApi api, string id, CancellationToken cancellationToken) => ForIdAsync(id, async () =>
    {
        bool cancelled = await api.CancelAsync(id, cancellationToken).ConfigureAwait(false);
        AsyncRequestStatus status = await api.GetStatusAsync(id, cancellationToken).ConfigureAwait(false);
        return cancelled || status.State == AsyncRequestState.NotFound
            ? Results.Json(status, statusCode: status.State switch
            {
                AsyncRequestState.NotFound => StatusCodes.Status404NotFound,
                AsyncRequestState.InQueue or AsyncRequestState.InProgress => StatusCodes.Status202Accepted, // its handler has not returned yet
                _ => StatusCodes.Status200OK,
            })
            : Problem(StatusCodes.Status409Conflict, "The request has finished", $"Request {id} of async API '{api.ApiName}' is {status.Status} already: there is nothing to cancel.");
    });

    /// <summary>Answers a request about one id: 400 for a malformed id, 503 when the store cannot be read, else <paramref name="answer"/>'s.</summary>
    private static async Task<IResult> ForIdAsync(string id, Func<Task<IResult>> answer)
    {
        if (!AsyncRequestIds.IsWellFormed(id))
        {
            return MalformedId(id);
        }

        try
        {
            return await answer().ConfigureAwait(false);
        }
        catch (AsyncStoreUnavailableException ex)
        {
            return Problem(StatusCodes.Status503ServiceUnavailable, "The result store is unavailable", ex.Message);
        }
    }

    /// <summary>Reads the whole body into an array of its exact length, one copy from the connection; null when it is longer than <paramref name="limit"/>.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, int limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength is long length)
        {
            byte[] exact = new byte[length];
            int read = 0;
            while (read < exact.Length)
            {
                int got = await request.Body.ReadAsync(exact.AsMemory(read), cancellationToken).ConfigureAwait(false);
                if (got == 0)
                {
                    throw new BadHttpRequestException($"The body ended after {read} of the {length} bytes its Content-Length announced.", StatusCodes.Status400BadRequest);
                }

                read += got;
            }

            return exact;
        }

        // No Content-Length (chunked): pooled chunks up to the limit, then the exact array.
        var chunks = new List<(byte[] Buffer, int Count)>();
        long total = 0;
        try
        {
            while (true)
            {
                byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
                int got = await request.Body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                chunks.Add((buffer, got));
                if (got == 0)
                {
                    break;
                }

                total += got;
                if (total > limit)
                {
                    return null;
                }
            }

            byte[] body = new byte[total];
            int at = 0;
            foreach ((byte[] buffer, int count) in chunks)
            {
                buffer.AsSpan(0, count).CopyTo(body.AsSpan(at));
                at += count;
            }

            return body;
        }
        finally
        {
            foreach ((byte[] buffer, _) in chunks)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static IResult TooLarge(AsyncApi api, string why) =>
        Problem(StatusCodes.Status413PayloadTooLarge, "The body is too large", $"Request rejected by async API '{api.ApiName}': the body may have at most {api.MaxPayloadBytes} bytes (MaxPayloadBytes), and {why}.");

    private static IResult MalformedId(string id) =>
        Problem(StatusCodes.Status400BadRequest, "The request id is malformed", $"'{EchoedText.Quote(id)}' is not a request id: ids have 1 to {AsyncRequestIds.MaxLength} characters of A-Z a-z 0-9 - _ . ~.");

    private static IResult Problem(int status, string title, string detail) => Results.Problem(detail: detail, statusCode: status, title: title);

    /// <summary>What a submit answers: Cortex's <c>{"id": "…"}</c>.</summary>
    private sealed record SubmitResponse(string id);
}
