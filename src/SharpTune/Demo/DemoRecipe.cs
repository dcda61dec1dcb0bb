namespace SharpTune.Demo;

/// <summary>The demo's recipe (Demo/demo-recipe.yaml, embedded): a tiny model trained on the bundled sample on
/// the CPU. Parsed by TrainOptions like any recipe.</summary>
public static class DemoRecipe
{
    public const string Name = "demo-recipe.yaml";

    public static string Yaml { get; } = Read();

    private static string Read()
    {
        using var stream = typeof(DemoRecipe).Assembly.GetManifestResourceStream("SharpTune.Demo." + Name)
            ?? throw new InvalidOperationException($"resource SharpTune.Demo.{Name} is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
