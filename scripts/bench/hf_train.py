"""transformers+peft LoRA training speed and memory on a random-weight model of a real shape (bf16, SDPA,
r=16 on all seven projections, AdamW), the peer of `SharpTune.Bench train`. One JSON line.
    python3 scripts/bench/hf_train.py --shape qwen1.5b --seq 2048 --batch 2 --steps 10 [--ckpt]
"""
import argparse, json, time
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from hf_decode import SHAPES

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen1.5b"); ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=2); ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3); ap.add_argument("--ckpt", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    cfg = SHAPES[a.shape]()
    with torch.device("cuda"):   # built on the GPU: seconds instead of a minute of CPU initialisation
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    if a.ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4, weight_decay=0.01)
    ids = [torch.randint(3, cfg.vocab_size, (a.batch, a.seq), device="cuda") for _ in range(4)]
    model.train()
    torch.cuda.reset_peak_memory_stats()
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            torch.cuda.synchronize(); t = time.perf_counter()
            print(json.dumps({"phase": "steady_start"}), flush=True)
        out = model(input_ids=ids[s % 4], labels=ids[s % 4])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    print(json.dumps({"phase": "steady_end"}), flush=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(json.dumps({"bench": "train_lora_hf", "shape": a.shape, "seq": a.seq, "batch": a.batch, "activation_checkpointing": a.ckpt,
                      "trainable": trainable, "tokens_per_s": a.steps * a.batch * a.seq / dt, "seconds_per_step": dt / a.steps,
                      "max_memory_allocated_GiB": torch.cuda.max_memory_allocated() / 2**30, "last_loss": out.loss.item()}))

if __name__ == "__main__":
    main()
