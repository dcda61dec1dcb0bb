using System.CommandLine;
using System.Text.Json;
using SharpTune.Models;

namespace SharpTune.Cli.Commands;

static class InfoCommand
{
    public static Command Create(TextWriter stdout)
    {
        var model = CommonOptions.Model();
        var json = CommonOptions.Json();
        var cmd = new Command("info", "Describe a model: architecture, parameters, bytes, dtype, context length") { model, json };
        cmd.SetAction(p =>
        {
            var info = ModelInfo.Read(ModelLocator.Resolve(p.GetValue(model)!));
            stdout.WriteLine(p.GetValue(json) ? JsonSerializer.Serialize(info, JsonOptions.Indented) : info.ToText());
        });
        return cmd;
    }
}
