using SharpTune.Cli;
using SharpTune.Tests.Serving;

namespace SharpTune.Tests.Cli;

/// <summary>`sharptune serve`'s mistakes: one error line, exit 1, before anything listens.</summary>
public class ServeCommandTests
{
    static (int Code, string Err) Run(params string[] args)
    {
        var stderr = new StringWriter();
        int code = CliApp.Run(args, new StringWriter(), stderr);
        return (code, stderr.ToString());
    }

    [Theory]
    [InlineData("--adapter", "/no/such/adapter", "--adapter /no/such/adapter: no such folder")]
    [InlineData("--kv-tokens", "1", "--kv-tokens must be at least 2, got 1")]
    [InlineData("--max-batch", "0", "--max-batch must be at least 1, got 0")]
    [InlineData("--max-model-len", "0", "--max-model-len must be from 2 to the model's context")]
    [InlineData("--max-model-len", "99999999", "--max-model-len must be from 2 to the model's context")]
    [InlineData("--port", "-1", "--port must be from 0 to 65535, got -1")]
    [InlineData("--port", "99999", "--port must be from 0 to 65535, got 99999")]
    [InlineData("--max-body-bytes", "0", "--max-body-bytes must be positive, got 0")]
    [InlineData("--host", "not a host", "--host expects an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost, got 'not a host'")]
    [InlineData("--host", "not..a..host", "--host expects an IP address")]
    [InlineData("--served-model-name", "", "--served-model-name must be a non-empty name")]
    public void MistakesAreOneErrorLine(string flag, string value, string expected)
    {
        var (code, err) = Run("serve", "--model", ServingSetup.Models.Plain, flag, value, "--device", "cpu");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: {expected}", err.Trim());
        Assert.DoesNotContain('\n', err.Trim());
    }

    [Fact]
    public void AnAdapterCannotTakeTheBaseModelsName()
    {
        var (code, err) = Run("serve", "--model", ServingSetup.Models.Plain, "--adapter", $"plain={ServingSetup.Models.AdapterA}", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.StartsWith($"error: --adapter plain={ServingSetup.Models.AdapterA}: the name plain is already taken", err.Trim());
    }
}
