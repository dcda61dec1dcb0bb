using System.Globalization;
using System.Text;
using System.Text.Json;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Export;

/// <summary>A Modelfile's text and the checks its template passed.</summary>
public sealed record OllamaModelfile(string Text, string Template, IReadOnlyList<string> Checks);

/// <summary>
/// An Ollama Modelfile for an exported GGUF: FROM, the chat template in Ollama's Go template language, the stop
/// tokens and generation_config's sampling parameters.
///
/// Jinja cannot be translated to Go templates in general, so the template is learned from the Jinja template's
/// own output: conversations with marker contents are rendered, and the text around the markers gives the
/// pieces (start, system block, user and assistant turns, generation prompt). The Go template built from them is
/// then rendered (<see cref="GoTemplate"/>) on test conversations and must equal our Jinja rendering, less the
/// BOS token that Ollama adds itself. A template whose shape does not fit (say, one that rewrites message
/// contents) is refused with the conversation that differs.
/// </summary>
public static class Ollama
{
    const string Sys = "\u0002SYSTEM\u0003", U1 = "\u0002USER1\u0003", A1 = "\u0002ASSISTANT1\u0003", U2 = "\u0002USER2\u0003";

    public static OllamaModelfile Modelfile(string modelDir, string ggufPath)
    {
        var tokenizer = Tokenizer.Load(modelDir);
        var defaults = GenerationDefaults.Load(modelDir);
        var config = ModelConfig.Load(modelDir);
        string configPath = Path.Combine(modelDir, "tokenizer_config.json");
        if (tokenizer.ChatTemplateSource is null) throw new SharpTuneException($"{configPath}: no chat_template; an Ollama Modelfile needs one");
        var jinja = ChatTemplate.Parse(tokenizer.ChatTemplateSource);
        string Render(IReadOnlyList<ChatMessage> m, bool gen) => jinja.RenderChat(m, gen, tokenizer.BosToken, tokenizer.EosToken);
        string bos = tokenizer.AddBosToken ? tokenizer.BosToken ?? "" : "";
        string template = Translate(Render, bos, configPath);

        var conversations = ExportVerifier.ProbeConversations.Concat(
        [
            [new("system", "Be brief."), new("user", "a"), new("assistant", "b"), new("user", "c"), new("assistant", "d"), new("user", "e")],
            [new("user", "Line one\nline two: {{ not a template }}")],
        ]).ToList();
        foreach (var c in conversations)
        {
            string expected = Render(c, true);
            string go = bos + GoTemplate.Render(template, Values(c));
            if (go != expected)
                throw new SharpTuneException($"{configPath}: the chat template could not be written in Ollama's template language: on {Show(string.Join(" | ", c.Select(m => $"{m.Role}: {m.Content}")))} "
                    + $"Jinja renders {Show(expected)} but the Modelfile template {Show(go)}");
        }

        var eos = (defaults.EosTokenIds.Length > 0 ? defaults.EosTokenIds : config.EosTokenIds).Append(tokenizer.EosTokenId ?? -1)
            .Where(id => id >= 0).Distinct().Select(id => tokenizer.IdToToken(id)).OfType<string>().ToList();
        var sb = new StringBuilder();
        sb.AppendLine($"# Written by sharptune export from {Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd('/'))}; the template reproduces the model's chat template (checked on {conversations.Count} conversations).");
        sb.AppendLine($"FROM {ggufPath}");
        sb.AppendLine($"TEMPLATE \"\"\"{template}\"\"\"");
        foreach (var stop in eos) sb.AppendLine($"PARAMETER stop {Quote(stop)}");
        bool sample = defaults.DoSample ?? defaults.Temperature is not null;
        if (!sample) sb.AppendLine("PARAMETER temperature 0");
        else
        {
            if (defaults.Temperature is { } t) sb.AppendLine($"PARAMETER temperature {t.ToString(CultureInfo.InvariantCulture)}");
            if (defaults.TopP is { } p) sb.AppendLine($"PARAMETER top_p {p.ToString(CultureInfo.InvariantCulture)}");
            if (defaults.TopK is { } k) sb.AppendLine($"PARAMETER top_k {k}");
        }
        return new OllamaModelfile(sb.ToString(), template,
            [$"ollama template: equals the Jinja chat template on {conversations.Count} conversations; stop {string.Join(", ", eos)}"]);
    }

    /// <summary>The Go template whose output, after <paramref name="bos"/>, is the Jinja template's.</summary>
    static string Translate(Func<IReadOnlyList<ChatMessage>, bool, string> render, string bos, string source)
    {
        string Cut(string text, string prefix, string what)
        {
            if (!text.StartsWith(prefix, StringComparison.Ordinal))
                throw new SharpTuneException($"{source}: the chat template's {what} does not have a fixed shape Ollama's template language can express");
            return text[prefix.Length..];
        }
        (string Before, string After) Around(string text, string marker) =>
            text.IndexOf(marker, StringComparison.Ordinal) is int i and >= 0 ? (text[..i], text[(i + marker.Length)..])
            : throw new SharpTuneException($"{source}: the chat template drops a message's content; Ollama's template cannot be derived from it");

        string oneUser = render([new("user", U1)], false);
        var (head, userSuffix) = Around(oneUser, U1);                               // head = start + user prefix
        string full = render([new("user", U1), new("assistant", A1), new("user", U2)], true);
        var (_, afterU1) = Around(full, U1);
        var (ua, afterA1) = Around(afterU1, A1);
        var (au, tail) = Around(afterA1, U2);
        string assistantPrefix = Cut(ua, userSuffix, "user turn");
        string closed = render([new("user", U1), new("assistant", A1)], false);
        string assistantSuffix = Around(closed, A1).After;
        string userPrefix = Cut(au, assistantSuffix, "assistant turn");
        string generation = Cut(tail, userSuffix, "generation prompt");
        if (!head.EndsWith(userPrefix, StringComparison.Ordinal))
            throw new SharpTuneException($"{source}: the chat template's first user turn differs from later ones; Ollama's template cannot express it");
        string start = Cut(head[..^userPrefix.Length], bos, "start");
        string withSystem = render([new("system", Sys), new("user", U1)], false);
        var (beforeSystem, afterSystem) = Around(withSystem, Sys);
        string systemPrefix = Cut(beforeSystem, bos, "system turn");
        string systemSuffix = Around(afterSystem, U1).Before;
        if (!systemSuffix.EndsWith(userPrefix, StringComparison.Ordinal))
            throw new SharpTuneException($"{source}: the chat template's system turn does not have a fixed shape");
        systemSuffix = systemSuffix[..^userPrefix.Length];

        const string shape = """
            {{- if .System }}@systemPrefix@{{ .System }}@systemSuffix@
            {{- else }}@start@
            {{- end }}
            {{- range $i, $_ := .Messages }}
            {{- $last := eq (len (slice $.Messages $i)) 1 }}
            {{- if eq .Role "user" }}@userPrefix@{{ .Content }}@userSuffix@
            {{- else if eq .Role "assistant" }}@assistantPrefix@{{ .Content }}{{ if not $last }}@assistantSuffix@{{ end }}
            {{- end }}
            {{- if and $last (ne .Role "assistant") }}@generation@{{ end }}
            {{- end }}
            """;
        return shape.Replace("@systemPrefix@", Lit(systemPrefix)).Replace("@systemSuffix@", Lit(systemSuffix)).Replace("@start@", Lit(start))
            .Replace("@userPrefix@", Lit(userPrefix)).Replace("@userSuffix@", Lit(userSuffix)).Replace("@assistantPrefix@", Lit(assistantPrefix))
            .Replace("@assistantSuffix@", Lit(assistantSuffix)).Replace("@generation@", Lit(generation));
    }

    /// <summary>A Go string literal action printing <paramref name="s"/> (empty text prints nothing).</summary>
    static string Lit(string s) => s.Length == 0 ? "" : "{{ " + Quote(s) + " }}";

    static string Quote(string s) => JsonSerializer.Serialize(s, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    static string Show(string s) => Quote(s.Length > 200 ? s[..200] + "…" : s);

    /// <summary>What Ollama passes a template: .System (the system messages joined) and .Messages.</summary>
    static Dictionary<string, object?> Values(IReadOnlyList<ChatMessage> messages) => new()
    {
        ["System"] = string.Join("\n\n", messages.Where(m => m.Role == "system").Select(m => m.Content)),
        ["Messages"] = messages.Select(m => (object?)new Dictionary<string, object?> { ["Role"] = m.Role, ["Content"] = m.Content }).ToList(),
    };
}
