using SharpTune.Hub;

namespace SharpTune.Tests.Hub;

public sealed class HubNamesTests
{
    [Theory]
    [InlineData("config.json")]
    [InlineData("sub/dir/model-00001-of-00002.safetensors")]
    [InlineData("weird name (1).json")]
    [InlineData("a..b/c")]
    public void Plain_relative_paths_are_safe(string path) => Assert.Null(HubNames.UnsafePathReason(path));

    [Theory]
    [InlineData("", "empty")]
    [InlineData("/etc/passwd", "absolute")]
    [InlineData("../x", "'..'")]
    [InlineData("a/../../x", "'..'")]
    [InlineData("a/./x", "'.'")]
    [InlineData("a//x", "empty path segment")]
    [InlineData("a/", "empty path segment")]
    [InlineData("a\\..\\x", "backslash")]
    [InlineData("C:x", "drive letter")]
    [InlineData("c:/x", "drive letter")]
    [InlineData("a\0b", "NUL")]
    public void Escaping_paths_are_refused_with_the_reason(string path, string reason) =>
        Assert.Contains(reason, HubNames.UnsafePathReason(path));

    [Theory]
    [InlineData("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", true)]
    [InlineData("Qwen/Qwen2.5-0.5B", true)]
    [InlineData("org_1/name.v2", true)]
    [InlineData("gpt2", false)]
    [InlineData("a/b/c", false)]
    [InlineData("org/-name", false)]
    [InlineData("org/name.", false)]
    [InlineData("org--x/name", false)]
    [InlineData("org/na..me", false)]
    [InlineData("../name", false)]
    [InlineData("org/", false)]
    public void Repo_ids_follow_the_hubs_rules(string id, bool valid) => Assert.Equal(valid, HubNames.IsRepoId(id, requireOrg: true));

    [Fact]
    public void Hex_checks_do_not_accept_a_trailing_newline()
    {
        Assert.True(HubNames.IsCommitHash(new string('a', 40)));
        Assert.False(HubNames.IsCommitHash(new string('a', 40) + "\n"));
        Assert.False(HubNames.IsSha256(new string('a', 64) + "\n"));
        Assert.Throws<SharpTuneException>(() => HubNames.CheckEtag("abc\n", "test"));
        Assert.Throws<SharpTuneException>(() => HubNames.CheckEtag("..", "test"));
    }
}

public sealed class FilePatternTests
{
    [Theory]
    [InlineData("*.safetensors", "model.safetensors", true)]
    [InlineData("*.safetensors", "sub/model.safetensors", true)] // fnmatch's '*' crosses '/'
    [InlineData("*.safetensors", "model.safetensors.index.json", false)]
    [InlineData("tokenizer*.json", "tokenizer_config.json", true)]
    [InlineData("tokenizer*.json", "tokenizer.model", false)]
    [InlineData("config.json", "sub/config.json", false)]
    [InlineData("config.json", "Config.json", false)]
    [InlineData("model-0000?-of-00002.safetensors", "model-00001-of-00002.safetensors", true)]
    [InlineData("data/", "data/train/part-0.parquet", true)]
    [InlineData("data/", "other/data/x", false)]
    [InlineData("[!a]*.json", "b.json", true)]
    [InlineData("[!a]*.json", "a.json", false)]
    [InlineData("[a-c].txt", "b.txt", true)]
    [InlineData("[].txt", "].txt", false)] // unclosed class after ']' : '[' is literal
    [InlineData("a.b", "axb", false)]
    [InlineData("a+(b)", "a+(b)", true)]
    public void Matches_like_fnmatch(string pattern, string path, bool expected) =>
        Assert.Equal(expected, new FilePattern(pattern).IsMatch(path));

    [Fact]
    public void Default_model_patterns_take_weights_config_tokenizer_and_template_only()
    {
        var patterns = HubClient.DefaultModelPatterns.Select(p => new FilePattern(p)).ToList();
        string[] wanted =
        [
            "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
            "model-00001-of-000002.safetensors", "model.safetensors.index.json", "chat_template.jinja", "chat_template.json",
        ];
        string[] skipped = ["pytorch_model.bin", "model.pth", "model-q4.gguf", "README.md", ".gitattributes", "figures/x.png"];
        Assert.All(wanted, f => Assert.True(FilePattern.AnyMatch(patterns, f), f));
        Assert.All(skipped, f => Assert.False(FilePattern.AnyMatch(patterns, f), f));
    }
}

public sealed class ModelSourceTests
{
    [Theory]
    [InlineData("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", null)]
    [InlineData("Qwen/Qwen2.5-0.5B@main", "Qwen/Qwen2.5-0.5B", "main")]
    [InlineData("org/name@refs/pr/3", "org/name", "refs/pr/3")]
    [InlineData("org/name@0123456789abcdef0123456789abcdef01234567", "org/name", "0123456789abcdef0123456789abcdef01234567")]
    public void Parses_repo_and_revision(string text, string repo, string? revision)
    {
        Assert.True(ModelSource.LooksLikeRepoId(text));
        Assert.Equal((repo, revision), ModelSource.Parse(text));
    }

    [Theory]
    [InlineData("./models/qwen")]
    [InlineData("/abs/path")]
    [InlineData("models/qwen/v1")]
    [InlineData("gpt2")]
    [InlineData("org/name@")]
    [InlineData("org/name@../x")]
    [InlineData("C:\\models\\qwen")]
    public void Rejects_what_is_not_org_name_revision(string text)
    {
        Assert.False(ModelSource.LooksLikeRepoId(text));
        Assert.Contains("org/name[@revision]", Assert.Throws<SharpTuneException>(() => ModelSource.Parse(text)).Message);
    }

    [Fact]
    public void Existing_local_folder_wins_over_a_repo_id()
    {
        // A relative folder "hubtest-<random>/model" has the shape of a repo id until it exists.
        string org = $"hubtest-{Guid.NewGuid():N}";
        string relative = $"{org}/model";
        Assert.True(ModelSource.LooksLikeRepoId(relative));
        Directory.CreateDirectory(relative);
        try
        {
            Assert.False(ModelSource.LooksLikeRepoId(relative));
        }
        finally
        {
            Directory.Delete(org, recursive: true);
        }
    }
}

public sealed class HubOptionsTests
{
    const string Home = "/home/u";

    static HubOptions From(params (string Name, string Value)[] vars) =>
        HubOptions.FromEnvironment(name => vars.FirstOrDefault(v => v.Name == name).Value, Home);

    [Fact]
    public void Defaults_match_huggingface_hub()
    {
        var options = From();
        Assert.Null(options.Endpoint);
        Assert.Null(options.Token);
        Assert.Equal("/home/u/.cache/huggingface/hub", options.CacheDir);
        Assert.False(options.Offline);
        Assert.Equal(8, options.MaxParallel);
    }

    [Fact]
    public void Cache_folder_precedence_is_hub_cache_then_hf_home_then_xdg()
    {
        Assert.Equal("/x/huggingface/hub", From(("XDG_CACHE_HOME", "/x")).CacheDir);
        Assert.Equal("/h/hub", From(("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")).CacheDir);
        Assert.Equal("/c", From(("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h")).CacheDir);
        Assert.Equal("/home/u/c", From(("HF_HUB_CACHE", "~/c")).CacheDir);
    }

    [Theory]
    [InlineData("1", true)]
    [InlineData("true", true)]
    [InlineData("ON", true)]
    [InlineData("yes", true)]
    [InlineData("0", false)]
    [InlineData("", false)]
    public void Offline_flag(string value, bool offline) => Assert.Equal(offline, From(("HF_HUB_OFFLINE", value)).Offline);

    [Fact]
    public void Endpoint_and_token_from_variables_then_token_file()
    {
        var options = From(("HF_ENDPOINT", "https://mirror.example/"), ("HF_TOKEN", " hf_abc \n"));
        Assert.Equal("https://mirror.example", options.Endpoint);
        Assert.Equal("hf_abc", options.Token);

        string home = Directory.CreateTempSubdirectory("sharptune-hfhome-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(home, "token"), "hf_from_file\n");
            Assert.Equal("hf_from_file", From(("HF_HOME", home)).Token);
            Assert.Equal("hf_env", From(("HF_HOME", home), ("HF_TOKEN", "hf_env")).Token);
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
