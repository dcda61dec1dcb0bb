using System.CommandLine;
using Microsoft.Extensions.Hosting;
using SharpTune.Server;
using SharpTune.Serving;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune serve`: an OpenAI-compatible server with a chat page, until Ctrl-C.</summary>
static class ServeCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model();
        var adapters = new Option<string[]>("--adapter") { Description = "LoRA adapter to serve, as NAME=DIR or DIR (named after its folder); repeatable. Requests pick it by \"model\": NAME" };
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
        var dtype = new Option<string>("--dtype") { Description = "auto (bf16 on GPU, fp32 on CPU), float32, bfloat16, float16", DefaultValueFactory = _ => "auto" };
        var host = new Option<string>("--host") { Description = "Address to bind; 0.0.0.0 exposes the server to the network", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port (0: any free port)", DefaultValueFactory = _ => 8080 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 requests (default: $SHARPTUNE_API_KEY if set)" };
        var name = new Option<string?>("--served-model-name") { Description = "The base model's name in requests (default: its folder's name)" };
        var kvTokens = new Option<int>("--kv-tokens") { Description = "KV-cache budget in tokens over all running requests (each reserves prompt + max_tokens)", DefaultValueFactory = _ => 32768 };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most sequences decoded together", DefaultValueFactory = _ => 128 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Most sequences waiting for room; more get HTTP 429", DefaultValueFactory = _ => 256 };
        var maxModelLen = new Option<int?>("--max-model-len") { Description = "Most tokens (prompt + answer) per request (default: the model's context)" };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "Largest request body accepted (HTTP 413 beyond)", DefaultValueFactory = _ => 1 << 20 };
        var cmd = new Command("serve", "Serve a model (and LoRA adapters) over an OpenAI-compatible HTTP API with a chat page at /")
            { model, adapters, device, dtype, host, port, apiKey, name, kvTokens, maxBatch, maxQueue, maxModelLen, maxBody };
        cmd.SetAction(async (p, ct) =>
        {
            string? key = p.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("SHARPTUNE_API_KEY");
            var serverOptions = new ServerOptions(p.GetValue(host)!, p.GetValue(port), key, p.GetValue(maxBody));
            serverOptions.Validate();
            var named = (p.GetValue(adapters) ?? []).Select(ParseAdapter).ToList();
            var options = new ServeOptions(new EngineOptions(p.GetValue(kvTokens), p.GetValue(maxBatch), p.GetValue(maxQueue)), p.GetValue(name), p.GetValue(maxModelLen));
            using var served = ServedModel.Load(ModelLocator.Resolve(p.GetValue(model)!), named, p.GetValue(device)!, p.GetValue(dtype)!, options);
            var app = OpenAiServer.Create(served, serverOptions);
            try { await app.StartAsync(ct); }
            catch (IOException e) { throw new SharpTuneException($"--host {p.GetValue(host)} --port {p.GetValue(port)}: cannot listen there ({e.Message})"); }
            long kvBytes = KvPool.BytesPerToken(served.Model.Config, served.Model.CausalLM.DType) * options.Engine!.KvTokens;
            stdout.WriteLine($"serving {string.Join(", ", served.ModelNames)} on {string.Join(", ", app.Urls)} "
                + $"(context {served.ContextLength} tokens, KV cache {options.Engine.KvTokens} tokens = {kvBytes / 1e6:0} MB{(key is null ? "" : ", API key required")})");
            stdout.WriteLine("chat page at / ; Ctrl-C stops");
            await app.WaitForShutdownAsync(ct);
            await app.DisposeAsync();
        });
        return cmd;
    }

    static NamedAdapter ParseAdapter(string value)
    {
        int eq = value.IndexOf('=');
        string dir = eq > 0 ? value[(eq + 1)..] : value;
        string name = eq > 0 ? value[..eq] : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
        if (!Directory.Exists(dir)) throw new SharpTuneException($"--adapter {value}: no such folder");
        return new NamedAdapter(name, dir);
    }
}
