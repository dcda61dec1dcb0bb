using PuppeteerSharp;
using SharpTune.Generation;
using SharpTune.Serving;

namespace SharpTune.Tests.Serving;

/// <summary>The chat page at / in a real headless Chromium (Debian's package, which ./scripts/test.sh installs;
/// SHARPTUNE_CHROMIUM names another binary). Without a browser this test fails and says how to get one.</summary>
public class ChatPageBrowserTests
{
    static string Chromium()
    {
        string path = Environment.GetEnvironmentVariable("SHARPTUNE_CHROMIUM") ?? "/usr/bin/chromium";
        if (!File.Exists(path))
            Assert.Fail($"no Chromium at {path}: the chat page test needs a headless browser. Run ./scripts/test.sh (it installs Debian's "
                + "chromium) or `apt-get install -y chromium`, or set SHARPTUNE_CHROMIUM to a Chromium binary.");
        return path;
    }

    static Task<IBrowser> Launch() => Puppeteer.LaunchAsync(new LaunchOptions
    {
        Headless = true,
        ExecutablePath = Chromium(),
        Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });

    static Task<string> Text(IPage page, string selector) =>
        page.EvaluateFunctionAsync<string>("s => { const e = document.querySelector(s); return e ? e.textContent : null; }", selector);

    [Fact]
    public async Task ChatStreamsAnswersWithCollapsibleReasoningAdapterPickerStopAndNewChat()
    {
        using var s = new ServingSetup(reasoning: true);
        var expected = s.Reference("Weight 70 kg", 24, "a");
        Assert.True(expected.Reasoning.Length > 0);

        await using var browser = await Launch();
        await using var page = await browser.NewPageAsync();
        await page.GoToAsync(s.BaseUri.ToString());
        await page.WaitForSelectorAsync("body[data-ready=true]");
        Assert.Equal(["tiny", "a", "b"], await page.EvaluateExpressionAsync<string[]>("[...document.querySelectorAll('#model option')].map(o => o.value)"));

        // a streamed answer from adapter "a", its reasoning in a collapsed block that opens on a click
        await page.SelectAsync("#model", "a");
        await page.TypeAsync("#temperature", "0");
        await page.TypeAsync("#max-tokens", "24");
        await page.TypeAsync("#input", "Weight 70 kg");
        await page.Keyboard.PressAsync("Enter");
        await page.WaitForSelectorAsync(".assistant[data-finish]");
        Assert.Equal(expected.Finish, await page.EvaluateExpressionAsync<string>("document.querySelector('.assistant').dataset.finish"));
        Assert.Equal("Weight 70 kg", await Text(page, ".user .text"));
        Assert.Equal(expected.Reasoning, await Text(page, "[data-testid=reasoning] div"));
        Assert.Equal(expected.Content, await Text(page, "[data-testid=answer]"));
        Assert.False(await page.EvaluateExpressionAsync<bool>("document.querySelector('[data-testid=reasoning]').open"));
        await page.ClickAsync("[data-testid=reasoning] summary");
        Assert.True(await page.EvaluateExpressionAsync<bool>("document.querySelector('[data-testid=reasoning]').open"));

        // new chat empties the conversation
        await page.ClickAsync("#new-chat");
        Assert.Equal(0, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('#log .msg').length"));

        // stop: the engine is held mid-answer, the page stops, the server takes the sequence out of the batch
        var finished = new TaskCompletionSource<FinishedSequence>(TaskCreationOptions.RunContinuationsAsynchronously);
        s.Engine.SequenceFinished += f => finished.TrySetResult(f);
        using var gate = new EngineGate(s.Engine, active => active.Any(a => a.Generated == 4));
        await page.EvaluateExpressionAsync("document.getElementById('max-tokens').value = '1000'");
        await page.TypeAsync("#input", "BMI");
        await page.ClickAsync("#send");
        var held = (await gate.Held).Single();
        var noticed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = held.Cancellation.Register(() => noticed.SetResult());
        await page.WaitForSelectorAsync("#stop:not([hidden])");
        await page.ClickAsync("#stop");
        await page.WaitForSelectorAsync(".assistant[data-finish=stopped]");
        await noticed.Task.WaitAsync(TimeSpan.FromMinutes(1));
        gate.Release();
        var f = await finished.Task.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal((FinishReason.Cancelled, 4), (f.Reason, f.GeneratedTokens));
        Assert.False(await page.EvaluateExpressionAsync<bool>("document.getElementById('send').hidden"));
    }
}
