using SharpTune.Demo;
using SharpTune.Export;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Tests.Export;

/// <summary>The Modelfile's Go template against our Jinja rendering, and the Go template interpreter itself
/// against outputs of Go's text/template (worked by hand from its documented semantics).</summary>
public sealed class OllamaTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void GoTemplateFollowsTextTemplateSemantics()
    {
        var data = new Dictionary<string, object?>
        {
            ["System"] = "",
            ["Messages"] = new List<object?>
            {
                new Dictionary<string, object?> { ["Role"] = "user", ["Content"] = "hi" },
                new Dictionary<string, object?> { ["Role"] = "assistant", ["Content"] = "yo" },
            },
        };
        const string t = "A  {{- if .System }}S{{ else }}no-system{{ end -}}  \n{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}[{{ $i }}:{{ .Role }}={{ $m.Content }}{{ if $last }}!{{ end }}]{{ end }}{{ \"\\n<end>\" }}";
        Assert.Equal("Ano-system[0:user=hi][1:assistant=yo!]\n<end>", GoTemplate.Render(t, data));
        Assert.Equal("ok", GoTemplate.Render("{{ if and (ne 1 2) (not .System) }}ok{{ else if .System }}s{{ end }}", data));
    }

    [Fact]
    public void TinyModelsR1TemplateBecomesAnOllamaTemplateThatRendersTheSame()
    {
        _ = TestPaths.Cpu;
        string dir = TestPaths.NewTinyModel();
        var modelfile = Ollama.Modelfile(dir, "./model.gguf");
        Assert.Contains("FROM ./model.gguf", modelfile.Text);
        Assert.Contains("PARAMETER stop \"<｜end▁of▁sentence｜>\"", modelfile.Text);
        Assert.Contains("PARAMETER temperature 0", modelfile.Text);        // the tiny model's generation_config: do_sample false
        // rendered by the interpreter: Ollama adds BOS itself (add_bos_token), so the template leaves it out
        var values = new Dictionary<string, object?>
        {
            ["System"] = "",
            ["Messages"] = new List<object?> { new Dictionary<string, object?> { ["Role"] = "user", ["Content"] = "Hi" } },
        };
        Assert.Equal("<｜User｜>Hi<｜Assistant｜><think>\n", GoTemplate.Render(modelfile.Template, values));
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    public void RealChatTemplatesTranslateOrAreRefusedWithTheDifference(string name)
    {
        _ = TestPaths.Cpu;
        string dir = TestPaths.NewTinyModel();
        string real = SharpTune.Tests.Tokenization.TokenizerTestData.RealTokenizerDir(name);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(Path.Combine(real, f), Path.Combine(dir, f), overwrite: true);
        var tok = Tokenizer.Load(dir);
        var jinja = ChatTemplate.Parse(tok.ChatTemplateSource!);
        try
        {
            var modelfile = Ollama.Modelfile(dir, "./model.gguf");
            // translated: check once more here on a conversation of our own
            List<ChatMessage> conversation = [new("system", "S"), new("user", "Q1"), new("assistant", "A1"), new("user", "Q2")];
            var values = new Dictionary<string, object?>
            {
                ["System"] = "S",
                ["Messages"] = conversation.Select(m => (object?)new Dictionary<string, object?> { ["Role"] = m.Role, ["Content"] = m.Content }).ToList(),
            };
            string bos = tok.AddBosToken ? tok.BosToken! : "";
            Assert.Equal(jinja.RenderChat(conversation, true, tok.BosToken, tok.EosToken), bos + GoTemplate.Render(modelfile.Template, values));
            output.WriteLine(modelfile.Text);
        }
        catch (SharpTuneException e)
        {
            Assert.Contains("Ollama", e.Message);   // refused, naming what could not be expressed
            output.WriteLine(e.Message);
        }
    }
}
