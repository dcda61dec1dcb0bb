"""Load test of `sharptune serve` (OpenAI API, SSE streaming), and the single-stream transformers baseline.
    python3 serve_load.py make-model --tokenizer DIR --out /tmp/models/qwen1.5b-serve
    python3 serve_load.py load --port 8123 --clients 64 --requests 2 --tokens 256 > load.json
    python3 serve_load.py hf --model /tmp/models/qwen1.5b-serve --tokens 256 > hf.json
make-model: R1-Distill-Qwen-1.5B shape, random bf16 weights saved by transformers, with a real Qwen tokenizer
(DIR holds tokenizer.json and tokenizer_config.json, e.g. the repo's .cache/tokenizers/qwen3).
load: CLIENTS concurrent clients, each sending REQUESTS chat requests one after another (greedy, ignore_eos, so
every answer is exactly TOKENS tokens); prints aggregate tokens/s, time to first token and inter-token latency.
Standard library only (no openai package on the GPU machine).
"""
import argparse, asyncio, json, os, shutil, statistics, sys, time

QUESTIONS = [
    "A 54-year-old man weighing 82 kg is started on enoxaparin 1 mg/kg every 12 hours. What is each dose?",
    "An infusion of 900 mL runs over 6 hours with a drop factor of 20 drops/mL. What is the drip rate in drops per minute?",
    "A child of 14 kg needs amoxicillin 45 mg/kg/day in two doses. The suspension is 400 mg/5 mL. How many mL per dose?",
    "Compute the BMI of a patient who is 172 cm tall and weighs 95 kg, and say which category it falls in.",
    "Creatinine 1.4 mg/dL, age 67, weight 70 kg, female: estimate the creatinine clearance with Cockcroft-Gault.",
    "A heparin drip of 25,000 units in 500 mL must deliver 1,200 units/h. What rate in mL/h?",
    "Explain the steps to convert 2.5 mg/kg/min for a 60 kg patient into mL/h for a 400 mg in 250 mL bag.",
    "What is the anion gap with Na 140, Cl 104, HCO3 24, and what does a value above 12 suggest?",
]

def make_model(a):
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config
    torch.manual_seed(0)
    cfg = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                      vocab_size=151936, max_position_embeddings=131072, tie_word_embeddings=False, rope_theta=10000.0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = None
    model.generation_config.do_sample = False
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, max_shard_size="5GB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer, f), os.path.join(a.out, f))
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters in {a.out}", file=sys.stderr)

async def one_request(port, body):
    """Sends one streaming chat request; returns (send time, [arrival time of each piece of text], completion tokens)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    t0 = time.perf_counter()
    await writer.drain()
    status = (await reader.readline()).decode()
    if " 200 " not in status:
        rest = await reader.read()
        raise RuntimeError(f"{status.strip()}: {rest[-400:]!r}")
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    arrivals, tokens, buffer = [], None, b""
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            break
        buffer += chunk
        # HTTP/1.0: the body is the event stream itself, until the server closes
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            for line in event.split(b"\n"):
                line = line.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                msg = json.loads(line[6:])
                now = time.perf_counter()
                for c in msg.get("choices", []):
                    d = c.get("delta", {})
                    if d.get("content") or d.get("reasoning_content"):
                        arrivals.append(now)
                if msg.get("usage"):
                    tokens = msg["usage"]["completion_tokens"]
    writer.close()
    return t0, arrivals, tokens

async def load(a):
    async def client(i):
        out = []
        for r in range(a.requests):
            q = QUESTIONS[(i + r) % len(QUESTIONS)]
            body = {"model": a.model, "messages": [{"role": "user", "content": q}], "max_tokens": a.tokens, "temperature": 0,
                    "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
            out.append(await one_request(a.port, body))
        return out
    await one_request(a.port, {"model": a.model, "messages": [{"role": "user", "content": "warm up"}], "max_tokens": 8, "stream": True})
    single = await one_request(a.port, {"model": a.model, "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": a.tokens,
                                        "temperature": 0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}})
    start = time.perf_counter()
    results = [r for rs in await asyncio.gather(*(client(i) for i in range(a.clients))) for r in rs]
    wall = time.perf_counter() - start
    ttft = sorted(arr[0] - t0 for t0, arr, _ in results if arr)
    gaps = sorted(b - x for _, arr, _ in results for x, b in zip(arr, arr[1:]))
    tokens = sum(t or 0 for _, _, t in results)
    pct = lambda xs, p: xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")
    s_t0, s_arr, s_tok = single
    print(json.dumps({
        "clients": a.clients, "requests": len(results), "completion_tokens": tokens, "wall_s": wall,
        "aggregate_tokens_per_s": tokens / wall,
        "ttft_p50_ms": 1000 * pct(ttft, 50), "ttft_p99_ms": 1000 * pct(ttft, 99),
        "itl_p50_ms": 1000 * pct(gaps, 50), "itl_p99_ms": 1000 * pct(gaps, 99),
        "single_stream_tokens_per_s": (s_tok - 1) / (s_arr[-1] - s_arr[0]) if s_tok and len(s_arr) > 1 else None,
        "single_stream_ttft_ms": 1000 * (s_arr[0] - s_t0) if s_arr else None,
    }))

def hf(a):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    ids = tok.apply_chat_template([{"role": "user", "content": QUESTIONS[0]}], add_generation_prompt=True, return_tensors="pt")
    ids = (ids["input_ids"] if hasattr(ids, "keys") else ids).cuda()
    def run(n):
        torch.cuda.synchronize(); t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
        torch.cuda.synchronize(); return time.perf_counter() - t
    run(8)
    t_short, t_long = run(1), run(a.tokens)
    print(json.dumps({"prompt_tokens": ids.shape[1], "transformers_tokens_per_s": (a.tokens - 1) / (t_long - t_short)}))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["make-model", "load", "hf"])
    ap.add_argument("--tokenizer"); ap.add_argument("--out"); ap.add_argument("--model", default=None)
    ap.add_argument("--port", type=int, default=8123); ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2); ap.add_argument("--tokens", type=int, default=256)
    a = ap.parse_args()
    if a.what == "make-model": make_model(a)
    elif a.what == "load": asyncio.run(load(a))
    else: hf(a)

if __name__ == "__main__":
    main()
