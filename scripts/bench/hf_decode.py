"""transformers' batch-1 greedy decode speed on a random-weight model of a real shape, bf16, KV cache,
plus the card's measured copy bandwidth and the resulting weights-bound ceiling. One JSON line.
    python3 scripts/bench/hf_decode.py --shape qwen1.5b --prefill 128 --gen 128
"""
import argparse, json, time
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, LlamaConfig

SHAPES = {
    "qwen1.5b": lambda: Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                                    num_key_value_heads=2, vocab_size=151936, max_position_embeddings=131072, tie_word_embeddings=False),
    "llama8b": lambda: LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                                   num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
                                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 8192}),
}

def bandwidth():
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    for _ in range(3): y.copy_(x)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20): y.copy_(x)
    torch.cuda.synchronize()
    return 2 * x.numel() * 20 / (time.perf_counter() - t)   # bytes read + written per second

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen1.5b"); ap.add_argument("--prefill", type=int, default=128); ap.add_argument("--gen", type=int, default=128)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = SHAPES[a.shape]()
    with torch.device("cuda"):   # built on the GPU: seconds instead of a minute of CPU initialisation
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    model.generation_config.eos_token_id = None
    ids = torch.arange(1000, 1000 + a.prefill, device="cuda").unsqueeze(0)
    def run(n):
        torch.cuda.synchronize(); t = time.perf_counter()
        with torch.no_grad():
            model.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
        torch.cuda.synchronize(); return time.perf_counter() - t
    run(8)
    per_token = min((run(a.gen) - run(1)) / (a.gen - 1) for _ in range(3))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bw = bandwidth()
    print(json.dumps({"bench": "decode_hf", "shape": a.shape, "transformers_tokens_per_s": 1 / per_token, "ms_per_token": per_token * 1000,
                      "weight_bytes": weight_bytes, "copy_bandwidth_GBps": bw / 1e9, "bandwidth_bound_tokens_per_s": bw / weight_bytes,
                      "gpu": torch.cuda.get_device_name()}))

if __name__ == "__main__":
    main()
