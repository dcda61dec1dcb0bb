using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharpTune.Serving;

namespace SharpTune.Server;

/// <summary>Where and how the server listens. Loopback unless <paramref name="Host"/> says otherwise; with an
/// <paramref name="ApiKey"/>, /v1 requests need "Authorization: Bearer KEY".</summary>
public sealed record ServerOptions(string Host = "127.0.0.1", int Port = 8080, string? ApiKey = null, long MaxBodyBytes = 1 << 20)
{
    /// <summary>Refuses values no server can listen or read with, before the model loads (a port of -1 or 99999
    /// used to load the model and then fail or wait).</summary>
    public void Validate()
    {
        if (Port is < 0 or > 65535) throw new SharpTuneException($"--port must be from 0 to 65535, got {Port}");
        // Kestrel listens on every interface for a name it cannot bind to as such: a typo must not expose the server
        if (Host != "localhost" && !System.Net.IPAddress.TryParse(Host, out _))
            throw new SharpTuneException($"--host expects an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got {SharpTuneException.Quote(Host)}");
        if (MaxBodyBytes < 1) throw new SharpTuneException($"--max-body-bytes must be positive, got {MaxBodyBytes}");
    }
}

/// <summary>
/// The OpenAI-compatible HTTP API over a <see cref="ServedModel"/>: /v1/chat/completions and /v1/completions
/// (JSON or server-sent events), /v1/models, /health, and the chat page at /. Every refusal is a 4xx with
/// OpenAI's error body: {"error": {"message", "type", "param", "code"}}.
/// </summary>
public static class OpenAiServer
{
    static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static WebApplication Create(ServedModel served, ServerOptions options)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = options.MaxBodyBytes);
        var app = builder.Build();
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string page = ChatPage();

        app.Use(async (ctx, next) =>
        {
            if (options.ApiKey is { } key && ctx.Request.Path.StartsWithSegments("/v1")
                && ctx.Request.Headers.Authorization.ToString() != $"Bearer {key}")
            {
                await Error(ctx, 401, "invalid_api_key", "Incorrect or missing API key: send the header 'Authorization: Bearer <key>'.", null, "invalid_request_error");
                return;
            }
            await next(ctx);
        });

        app.MapGet("/", () => Results.Content(page, "text/html; charset=utf-8"));
        app.MapGet("/health", () => Results.Json(new JsonObject
        {
            ["status"] = "ok", ["running"] = served.Engine.Running, ["waiting"] = served.Engine.Waiting, ["kv_free_tokens"] = served.Engine.FreeKvTokens,
        }));
        app.MapGet("/v1/models", () => Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(served.ModelNames.Select(name => (JsonNode)new JsonObject
            {
                ["id"] = name, ["object"] = "model", ["created"] = created, ["owned_by"] = "sharptune",
                ["root"] = name, ["parent"] = name == served.Name ? null : served.Name,
                ["max_model_len"] = served.ContextLength,
            }).ToArray()),
        }));
        app.MapPost("/v1/chat/completions", ctx => Handle(ctx, served, options, chat: true));
        app.MapPost("/v1/completions", ctx => Handle(ctx, served, options, chat: false));
        app.MapFallback(ctx => Error(ctx, 404, "not_found", $"No route {ctx.Request.Method} {ctx.Request.Path}; this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.", null));
        return app;
    }

    static async Task Handle(HttpContext ctx, ServedModel served, ServerOptions options, bool chat)
    {
        CompletionJob job;
        ResponseShape shape;
        try
        {
            var body = await ReadBody(ctx, options.MaxBodyBytes);
            CompletionRequest request;
            (request, shape) = chat ? OpenAiRequests.Chat(body) : OpenAiRequests.Completion(body);
            job = served.Submit(request, ctx.RequestAborted);
        }
        catch (ServingException e)
        {
            if (e.Status == 413) ctx.Response.Headers.Connection = "close";   // the rest of the body is not read
            await Error(ctx, e.Status, e.Code, e.Message, e.Param);
            return;
        }
        using (job)
        {
            var response = new OpenAiResponses(chat, job, shape);
            try
            {
                if (!shape.Stream)
                {
                    var result = await job.CollectAsync(ctx.RequestAborted);
                    await Results.Json(response.Complete(result), Json).ExecuteAsync(ctx);
                    return;
                }
                ctx.Response.ContentType = "text/event-stream";
                ctx.Response.Headers.CacheControl = "no-cache";
                if (chat) await Send(ctx, response.Opening());   // the role first, and headers out before the first token
                await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                await foreach (var update in job.ReadAsync(ctx.RequestAborted))
                    if (response.Chunk(update) is { } chunk) await Send(ctx, chunk);
                if (shape.IncludeUsage) await Send(ctx, response.UsageChunk());
                await ctx.Response.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
            }
            catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
            {
                // The client left; disposing the job took its sequences out of the batch.
            }
        }
    }

    static async Task Send(HttpContext ctx, JsonObject chunk)
    {
        await ctx.Response.WriteAsync($"data: {chunk.ToJsonString(Json)}\n\n", ctx.RequestAborted);
        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
    }

    static async Task<JsonObject> ReadBody(HttpContext ctx, long maxBytes)
    {
        if (ctx.Request.ContentLength > maxBytes) throw TooLarge(maxBytes);
        try
        {
            return await JsonNode.ParseAsync(ctx.Request.Body, cancellationToken: ctx.RequestAborted) as JsonObject
                ?? throw ServingException.BadRequest("the request body must be a JSON object");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge) { throw TooLarge(maxBytes); }
        catch (JsonException e) { throw ServingException.BadRequest($"the request body is not valid JSON: {e.Message}"); }
    }

    static ServingException TooLarge(long maxBytes) => new(413, "request_too_large", $"The request body is larger than this server accepts ({maxBytes} bytes).");

    static Task Error(HttpContext ctx, int status, string code, string message, string? param, string? type = null)
    {
        ctx.Response.StatusCode = status;
        return ctx.Response.WriteAsJsonAsync(new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["message"] = message,
                ["type"] = type ?? (status == 429 ? "rate_limit_error" : status == 404 && code == "not_found" ? "not_found_error" : "invalid_request_error"),
                ["param"] = param,
                ["code"] = code,
            },
        });
    }

    static string ChatPage()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("SharpTune.Server.index.html")!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
