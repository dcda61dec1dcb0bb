using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using OpenAI.Chat;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Server;
using SharpTune.Serving;
using static TorchSharp.torch;

namespace SharpTune.Tests.Serving;

/// <summary>The server through the official OpenAI .NET client, Microsoft.Extensions.AI's OpenAI IChatClient and
/// raw HTTP, against the tiny model. Every greedy answer is compared with the library's TextGenerator alone.</summary>
public class OpenAiServerTests
{
    static ChatCompletionOptions Greedy(int maxTokens) => new() { MaxOutputTokenCount = maxTokens, Temperature = 0 };

    [Fact]
    public async Task ChatNonStreamingAndStreamingGiveTheGreedyAnswerAndUsage()
    {
        using var s = new ServingSetup();
        var expected = s.Reference("Weight 70 kg", 24);
        Assert.True(expected.Content.Length > 4);

        ChatCompletion whole = await s.Client().CompleteChatAsync([new UserChatMessage("Weight 70 kg")], Greedy(24));
        Assert.Equal(expected.Content, whole.Content[0].Text);
        Assert.Equal(expected.Finish == "length" ? OpenAI.Chat.ChatFinishReason.Length : OpenAI.Chat.ChatFinishReason.Stop, whole.FinishReason);
        Assert.Equal(expected.Tokens, whole.Usage.OutputTokenCount);
        Assert.Equal(s.Model.EncodeChat([new("user", "Weight 70 kg")]).Length, whole.Usage.InputTokenCount);

        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        int chunks = 0;
        await foreach (var update in s.Client().CompleteChatStreamingAsync([new UserChatMessage("Weight 70 kg")], Greedy(24)))
        {
            foreach (var part in update.ContentUpdate) { streamed.Append(part.Text); chunks++; }
            usage ??= update.Usage;
        }
        Assert.Equal(expected.Content, streamed.ToString());
        Assert.True(chunks > 2, "the answer arrives in pieces");
        Assert.NotNull(usage);
        Assert.Equal(expected.Tokens, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task StopStringsCutAtTheEarliestAndNeverStreamAPrefix()
    {
        using var s = new ServingSetup();
        var full = s.Reference("Height 180 cm", 30);
        string late = full.Content.Substring(full.Content.Length / 2, 3), early = full.Content.Substring(2, 2);
        var expected = s.Reference("Height 180 cm", 30, stops: [late, early]);
        int first = Math.Min(full.Content.IndexOf(late, StringComparison.Ordinal), full.Content.IndexOf(early, StringComparison.Ordinal));
        Assert.Equal(full.Content[..first], expected.Content);

        var options = Greedy(30);
        options.StopSequences.Add(late);
        options.StopSequences.Add(early);
        ChatCompletion whole = await s.Client().CompleteChatAsync([new UserChatMessage("Height 180 cm")], options);
        Assert.Equal(expected.Content, whole.Content[0].Text);
        Assert.Equal(OpenAI.Chat.ChatFinishReason.Stop, whole.FinishReason);

        var streamed = new StringBuilder();
        await foreach (var update in s.Client().CompleteChatStreamingAsync([new UserChatMessage("Height 180 cm")], options))
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        Assert.Equal(expected.Content, streamed.ToString());
    }

    [Fact]
    public async Task ConcurrentRequestsAreBatchedAndEachEqualsItsAnswerAlone()
    {
        using var s = new ServingSetup();
        var cases = new (string Prompt, int Max, string Model)[]
        {
            ("Weight 70 kg", 20, "tiny"), ("Height 180 cm and weight 80 kg", 33, "a"), ("BMI", 9, "b"),
            ("Dose 5 mg/kg for 12 kg", 27, "tiny"), ("Creatinine 1.2", 15, "a"), ("Age 40", 25, "b"),
        };
        var expected = cases.Select(c => s.Reference(c.Prompt, c.Max, c.Model == "tiny" ? null : c.Model)).ToList();
        Assert.NotEqual(s.Reference("Weight 70 kg", 20, "a").Content, expected[0].Content);   // the adapters change the answer

        // Hold the first step until every other request waits, so all of them decode in one batch.
        int maxBatch = 0;
        s.Engine.Stepped += active => maxBatch = Math.Max(maxBatch, active.Count);
        using var gate = new EngineGate(s.Engine, _ => true);
        var first = s.Client(cases[0].Model).CompleteChatAsync([new UserChatMessage(cases[0].Prompt)], Greedy(cases[0].Max));
        await gate.Held;
        var rest = cases.Skip(1).Select(c => s.Client(c.Model).CompleteChatAsync([new UserChatMessage(c.Prompt)], Greedy(c.Max))).ToList();
        while (s.Engine.Waiting < rest.Count) await Task.Delay(5);
        gate.Release();
        var answers = await Task.WhenAll(rest.Prepend(first));
        for (int i = 0; i < cases.Length; i++)
        {
            Assert.Equal(expected[i].Content, answers[i].Value.Content[0].Text);
            Assert.Equal(expected[i].Tokens, answers[i].Value.Usage.OutputTokenCount);
        }
        Assert.Equal(cases.Length, maxBatch);
    }

    [Fact]
    public async Task KvBudgetBoundsTheBatchAndEveryRequestStillFinishes()
    {
        // Each request reserves prompt + 20 slots (about 30): a 64-token budget holds two at a time.
        using var s = new ServingSetup(engine: new EngineOptions(KvTokens: 64));
        int maxBatch = 0;
        s.Engine.Stepped += active => maxBatch = Math.Max(maxBatch, active.Count);
        var prompts = new[] { "Weight 70 kg", "BMI", "Age 40", "Dose 5 mg" };
        var answers = await Task.WhenAll(prompts.Select(p => s.Client().CompleteChatAsync([new UserChatMessage(p)], Greedy(20))));
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(s.Reference(prompts[i], 20).Content, answers[i].Value.Content[0].Text);
        Assert.InRange(maxBatch, 1, 2);
        Assert.Equal(63, s.Engine.FreeKvTokens);   // all memory back

        // a request larger than the whole budget can never run: refused, not queued forever
        Assert.Equal(63, s.Served.ContextLength);
        var tooBig = await Assert.ThrowsAsync<ClientResultException>(() => s.Client().CompleteChatAsync([new UserChatMessage("BMI")], Greedy(62)));
        Assert.Equal(400, tooBig.Status);
    }

    [Fact]
    public async Task ADisconnectedClientStopsItsGeneration()
    {
        using var s = new ServingSetup();
        var finished = new TaskCompletionSource<FinishedSequence>(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Engine.SequenceFinished += f => finished.TrySetResult(f);
        using var gate = new EngineGate(s.Engine, active => active.Any(a => a.Generated == 5));
        using var cts = new CancellationTokenSource();
        var reading = Task.Run(async () =>
        {
            await foreach (var _ in s.Client().CompleteChatStreamingAsync([new UserChatMessage("Weight 70 kg")], Greedy(1000), cts.Token)) { }
        });
        var held = (await gate.Held).Single();
        var noticed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = held.Cancellation.Register(() => noticed.SetResult());
        cts.Cancel();   // the client goes away mid-answer
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reading);
        await noticed.Task.WaitAsync(TimeSpan.FromMinutes(1));   // the server saw the disconnect
        gate.Release();
        var f = await finished.Task.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(FinishReason.Cancelled, f.Reason);
        Assert.Equal(5, f.GeneratedTokens);
    }

    [Fact]
    public async Task LimitsAnswerWithOpenAiErrors()
    {
        using var s = new ServingSetup(engine: new EngineOptions(KvTokens: 4096, MaxBatch: 1, MaxQueue: 1), maxBodyBytes: 4096);
        using var http = s.Http();

        // prompt + max_tokens over the context
        var tooLong = await Assert.ThrowsAsync<ClientResultException>(() => s.Client().CompleteChatAsync([new UserChatMessage("hi")], Greedy(5000)));
        Assert.Equal(400, tooLong.Status);
        await AssertError(await Post(http, "/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"max_tokens":5000}"""), 400, "context_length_exceeded");

        // unknown model
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => s.Client("nope").CompleteChatAsync([new UserChatMessage("hi")], Greedy(5)));
        Assert.Equal(404, unknown.Status);
        await AssertError(await Post(http, "/v1/chat/completions", """{"model":"nope","messages":[{"role":"user","content":"hi"}]}"""), 404, "model_not_found", "model");

        // malformed JSON, and well-formed JSON of the wrong shape
        await AssertError(await Post(http, "/v1/chat/completions", """{"messages": [{"role":"user","content":"hi"}"""), 400, "invalid_request_error");
        await AssertError(await Post(http, "/v1/chat/completions", """{"messages":"hi"}"""), 400, "invalid_request_error", "messages");
        await AssertError(await Post(http, "/v1/completions", """{"prompt":"hi","temperature":"hot"}"""), 400, "invalid_request_error", "temperature");

        // body size
        string big = $$"""{"messages":[{"role":"user","content":"{{new string('x', 5000)}}"}]}""";
        await AssertError(await Post(http, "/v1/chat/completions", big), 413, "request_too_large");
        using (var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))) })
        {
            chunked.Headers.TransferEncodingChunked = true;   // no Content-Length: the limit applies while reading
            await AssertError(await http.SendAsync(chunked), 413, "request_too_large");
        }

        // a full queue: one request running (held), one waiting, the next refused
        using var gate = new EngineGate(s.Engine, _ => true);
        var running = s.Client().CompleteChatAsync([new UserChatMessage("Weight 70 kg")], Greedy(8));
        await gate.Held;
        var waiting = s.Client().CompleteChatAsync([new UserChatMessage("BMI")], Greedy(8));
        while (s.Engine.Waiting < 1) await Task.Delay(5);
        var busy = await Assert.ThrowsAsync<ClientResultException>(() => s.Client().CompleteChatAsync([new UserChatMessage("Age")], Greedy(8)));
        Assert.Equal(429, busy.Status);
        await AssertError(await Post(http, "/v1/chat/completions", """{"messages":[{"role":"user","content":"Age"}],"max_tokens":8}"""), 429, "rate_limit_exceeded");
        gate.Release();
        Assert.Equal(s.Reference("Weight 70 kg", 8).Content, (await running).Value.Content[0].Text);
        Assert.Equal(s.Reference("BMI", 8).Content, (await waiting).Value.Content[0].Text);
    }

    [Fact]
    public async Task AnApiKeyIsRequiredWhenSet()
    {
        using var s = new ServingSetup(apiKey: "sk-test");
        var denied = await Assert.ThrowsAsync<ClientResultException>(() => s.Client(key: "wrong").CompleteChatAsync([new UserChatMessage("hi")], Greedy(3)));
        Assert.Equal(401, denied.Status);
        using var http = s.Http();
        await AssertError(await http.GetAsync("/v1/models"), 401, "invalid_api_key");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health")).StatusCode);
        ChatCompletion ok = await s.Client().CompleteChatAsync([new UserChatMessage("hi")], Greedy(3));
        Assert.Equal(s.Reference("hi", 3).Content, ok.Content[0].Text);
    }

    [Fact]
    public async Task ModelsHealthAndTheChatPage()
    {
        using var s = new ServingSetup();
        using var http = s.Http();
        var models = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!;
        Assert.Equal(["tiny", "a", "b"], models["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));
        Assert.Equal("tiny", models["data"]![1]!["parent"]!.GetValue<string>());
        var health = JsonNode.Parse(await http.GetStringAsync("/health"))!;
        Assert.Equal("ok", health["status"]!.GetValue<string>());
        var page = await http.GetAsync("/");
        Assert.Equal("text/html; charset=utf-8", page.Content.Headers.ContentType!.ToString());
        Assert.Contains("/v1/chat/completions", await page.Content.ReadAsStringAsync());
        await AssertError(await http.GetAsync("/v2/nothing"), 404, "not_found");

        // without --host the server listens on loopback only
        var app = OpenAiServer.Create(s.Served, new ServerOptions(Port: 0));
        await app.StartAsync();
        try { Assert.StartsWith("http://127.0.0.1:", app.Urls.Single()); }
        finally { await app.StopAsync(); await app.DisposeAsync(); }
    }

    [Fact]
    public async Task ReasoningComesApartAsReasoningContent()
    {
        using var s = new ServingSetup(reasoning: true);
        var expected = s.Reference("Weight 70 kg", 24);
        Assert.True(expected.Reasoning.Length > 4);
        using var http = s.Http();
        var response = await Post(http, "/v1/chat/completions", """{"model":"tiny","messages":[{"role":"user","content":"Weight 70 kg"}],"max_tokens":24,"temperature":0}""");
        var message = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!["message"]!;
        Assert.Equal(expected.Reasoning, message["reasoning_content"]!.GetValue<string>());
        Assert.Equal(expected.Content, message["content"]!.GetValue<string>());

        var stream = await Post(http, "/v1/chat/completions", """{"messages":[{"role":"user","content":"Weight 70 kg"}],"max_tokens":24,"temperature":0,"stream":true}""");
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType!.MediaType);
        var events = (await stream.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1]);
        Assert.DoesNotContain(events, e => e.Contains("\"usage\""));   // usage only when stream_options.include_usage asks
        var deltas = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!["choices"]![0]!["delta"]!).ToList();
        Assert.Equal(expected.Reasoning, string.Concat(deltas.Select(d => d["reasoning_content"]?.GetValue<string>())));
        Assert.Equal(expected.Content, string.Concat(deltas.Select(d => d["content"]?.GetValue<string>())));
    }

    [Fact]
    public async Task CompletionsLogprobsSeedAndN()
    {
        using var s = new ServingSetup();
        using var http = s.Http();
        var body = JsonNode.Parse(await (await Post(http, "/v1/completions", """{"prompt":"Weight 70 kg","max_tokens":12,"temperature":0,"logprobs":0}""")).Content.ReadAsStringAsync())!;
        var choice = body["choices"]![0]!;
        var logprobs = choice["logprobs"]!["token_logprobs"]!.AsArray().Select(x => x!.GetValue<double>()).ToArray();
        Assert.Equal(12, logprobs.Length);
        Assert.Equal(string.Concat(choice["logprobs"]!["tokens"]!.AsArray().Select(t => t!.GetValue<string>())), choice["text"]!.GetValue<string>());

        // the chosen tokens' log-probabilities, against a full forward pass over prompt + answer (the engine scores in fp32: 1e-5)
        using (var scope = NewDisposeScope())
        using (no_grad())
        using (var reference = LoadReference(s))
        {
            var prompt = reference.EncodeText("Weight 70 kg");
            var alone = new TextGenerator(reference.CausalLM, reference.Tokenizer).Generate([prompt], new GenerationOptions(12, null, reference.EosTokenIds))[0];
            Assert.Equal(alone.Text, choice["text"]!.GetValue<string>());
            var answer = alone.OutputIds;
            Assert.Equal(answer.Length, logprobs.Length);
            var ids = tensor(prompt.Concat(answer).Select(i => (long)i).ToArray()).view(1, -1);
            var logp = reference.CausalLM.Forward(ids).log_softmax(-1)[0];
            for (int t = 0; t < answer.Length; t++)
                Assert.Equal(logp[prompt.Length - 1 + t, answer[t]].item<double>(), logprobs[t], 1e-5);
        }

        // n choices with a seed: reproducible, and each choice its own sample
        string sampled = """{"prompt":"Weight 70 kg","max_tokens":16,"temperature":1.0,"seed":7,"n":3,"ignore_eos":true}""";
        var once = JsonNode.Parse(await (await Post(http, "/v1/completions", sampled)).Content.ReadAsStringAsync())!;
        var twice = JsonNode.Parse(await (await Post(http, "/v1/completions", sampled)).Content.ReadAsStringAsync())!;
        var texts = once["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()).ToList();
        Assert.Equal(3, texts.Count);
        Assert.Equal(texts, twice["choices"]!.AsArray().Select(c => c!["text"]!.GetValue<string>()));
        Assert.True(texts.Distinct().Count() > 1, "choices sample with different seeds");
        Assert.Equal(3 * 16, once["usage"]!["completion_tokens"]!.GetValue<int>());

        // unseeded choices with the same settings are sampled together; top_k 1 leaves one token to sample: the greedy one
        var greedy = JsonNode.Parse(await (await Post(http, "/v1/completions", """{"prompt":"Weight 70 kg","max_tokens":16,"temperature":0}""")).Content.ReadAsStringAsync())!;
        var topOne = JsonNode.Parse(await (await Post(http, "/v1/completions", """{"prompt":"Weight 70 kg","max_tokens":16,"temperature":0.8,"top_k":1,"n":3}""")).Content.ReadAsStringAsync())!;
        Assert.All(topOne["choices"]!.AsArray(), c => Assert.Equal(greedy["choices"]![0]!["text"]!.GetValue<string>(), c!["text"]!.GetValue<string>()));
    }

    [Fact]
    public async Task MicrosoftExtensionsAiOpenAiClientTalksToTheServer()
    {
        using var s = new ServingSetup();
        IChatClient chat = s.Client("a").AsIChatClient();
        var expected = s.Reference("Weight 70 kg", 18, "a");
        var response = await chat.GetResponseAsync("Weight 70 kg", new ChatOptions { MaxOutputTokens = 18, Temperature = 0 });
        Assert.Equal(expected.Content, response.Text);
        Assert.Equal(expected.Tokens, (int)response.Usage!.OutputTokenCount!);
        var streamed = new StringBuilder();
        await foreach (var update in chat.GetStreamingResponseAsync("Weight 70 kg", new ChatOptions { MaxOutputTokens = 18, Temperature = 0 }))
            streamed.Append(update.Text);
        Assert.Equal(expected.Content, streamed.ToString());
    }

    static PretrainedModel LoadReference(ServingSetup s) => PretrainedModel.Load(s.Model.Directory, "cpu", "float64");

    static Task<HttpResponseMessage> Post(HttpClient http, string path, string json) =>
        http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    static async Task AssertError(HttpResponseMessage response, int status, string code, string? param = null)
    {
        string text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"expected {status}, got {(int)response.StatusCode}: {text}");
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.NotNull(error["type"]);
        if (param is not null) Assert.Equal(param, error["param"]!.GetValue<string>());
    }
}
