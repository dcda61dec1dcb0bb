"""A random-weight model of a real shape with a real tokenizer, saved as transformers saves it (bf16 safetensors),
for `sharptune train` / `generate` benchmarks on the GPU machine.
    python3 scripts/bench/make_model.py --shape qwen1.5b --tokenizer DIR --out /tmp/models/qwen1.5b
DIR holds tokenizer.json and tokenizer_config.json (the repo's .cache/tokenizers/qwen3 or llama3).
"""
import argparse, os, shutil
import torch
from transformers import AutoModelForCausalLM
from hf_decode import SHAPES

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", required=True); ap.add_argument("--tokenizer", required=True); ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = SHAPES[a.shape]()
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = None
    os.makedirs(a.out, exist_ok=True)
    model.save_pretrained(a.out, max_shard_size="5GB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer, f), os.path.join(a.out, f))
    print(f"{a.shape}: {sum(p.numel() for p in model.parameters()):,} parameters in {a.out}")

if __name__ == "__main__":
    main()
