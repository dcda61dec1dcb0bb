"""Helper of check-export-hf.sh.

adapter MODEL OUT: writes a PEFT LoRA adapter for MODEL with random A and B (so that merging changes the weights).
compare WORK: for each arch in WORK, logits of transformers on the merged checkpoint vs PEFT's base + adapter
(unmerged), in fp32 and bf16 on the GPU. The bf16 bound is PEFT's own merge_and_unload error times 2 (plus 1e-3 of
the logits' spread): our merge must be as close to the unmerged forward as PEFT's merge is.
"""
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

PROMPTS = [[1, 17, 230, 45, 99, 7, 512, 3, 88, 41, 600, 12], [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]]


def make_adapter(model_dir, out):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, init_lora_weights=False, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.save_pretrained(out)


def logits(model):
    ids = torch.tensor(PROMPTS, device="cuda")
    with torch.no_grad():
        return model(ids).logits.float()


def compare(work):
    rows, ok = [], True
    for arch in ["qwen2", "llama", "qwen3"]:
        base_dir, adapter, merged = f"{work}/{arch}", f"{work}/{arch}-adapter", f"{work}/{arch}-merged"
        for dtype in [torch.float32, torch.bfloat16]:
            peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype).cuda(), adapter).eval()
            reference = logits(peft)
            peft_merged = logits(peft.merge_and_unload())
            ours = logits(AutoModelForCausalLM.from_pretrained(merged, dtype=dtype).cuda().eval())
            plain = logits(AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype).cuda().eval())
            spread = reference.std().item()
            err = (ours - reference).abs().max().item() / spread
            peft_err = (peft_merged - reference).abs().max().item() / spread
            moved = (plain - reference).abs().max().item() / spread
            bound = 1e-4 if dtype == torch.float32 else 2 * peft_err + 1e-3
            passed = err <= bound and moved > 10 * bound
            ok &= passed
            rows.append((arch, str(dtype).split(".")[-1], err, peft_err, moved, bound, "ok" if passed else "FAIL"))
    print(f"{'arch':6} {'dtype':9} {'ours-vs-peft':>13} {'peft-merge':>11} {'adapter-effect':>15} {'bound':>9}  verdict")
    print("(max |logit difference| / std of PEFT's logits, on 2 prompts of 12 tokens)")
    for r in rows:
        print(f"{r[0]:6} {r[1]:9} {r[2]:13.2e} {r[3]:11.2e} {r[4]:15.2e} {r[5]:9.2e}  {r[6]}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if sys.argv[1] == "adapter":
        make_adapter(sys.argv[2], sys.argv[3])
    else:
        compare(sys.argv[2])
