using System.CommandLine;
using System.Text.Json;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

/// <summary>Shows how a text splits into tokens, for people debugging their data.</summary>
static class TokenizeCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model();
        var text = new Option<string?>("--text") { Description = "Text to tokenize" };
        var file = new Option<string?>("--file") { Description = "File whose content to tokenize (UTF-8)" };
        var noSpecial = new Option<bool>("--no-special") { Description = "Do not add BOS/EOS as the tokenizer config would" };
        var json = CommonOptions.Json();
        var cmd = new Command("tokenize", "Print the ids and tokens of a text") { model, text, file, noSpecial, json };
        cmd.SetAction(p =>
        {
            string? t = p.GetValue(text), f = p.GetValue(file);
            if ((t is null) == (f is null)) throw new SharpTuneException("tokenize: give exactly one of --text or --file");
            if (f is not null && !File.Exists(f)) throw new SharpTuneException($"{f}: file not found");
            string input = t ?? File.ReadAllText(f!);
            var tokenizer = Tokenizer.Load(ModelLocator.Resolve(p.GetValue(model)!));
            var encoding = tokenizer.EncodeWithOffsets(input, addSpecialTokens: !p.GetValue(noSpecial));
            var rows = encoding.Ids.Select((id, i) => new
            {
                Id = id,
                Token = tokenizer.IdToToken(id) ?? "",
                Text = encoding.Offsets[i].End > encoding.Offsets[i].Start ? input[encoding.Offsets[i].Start..encoding.Offsets[i].End] : "",
                Special = tokenizer.IsSpecial(id),
            }).ToList();
            if (p.GetValue(json))
            {
                stdout.WriteLine(JsonSerializer.Serialize(new { Ids = encoding.Ids, Tokens = rows.Select(r => r.Token), Count = rows.Count }, JsonOptions.Indented));
                return;
            }
            stdout.WriteLine($"{rows.Count} tokens");
            foreach (var r in rows)
                stdout.WriteLine($"{r.Id,8}  {r.Token,-24} {JsonSerializer.Serialize(r.Text, JsonOptions.Indented)}{(r.Special ? "  (special)" : "")}");
        });
        return cmd;
    }
}
