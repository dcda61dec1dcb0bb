"""The peer of `sharptune eval` throughput: transformers' batched greedy `generate` (left padding) on the same
prompts (the r1-reasoning prompt format around the bundled sample's questions), 256 new tokens each. One JSON line.
    python3 scripts/bench/hf_eval_generate.py --model DIR --prompts 64 --batch 64 --new 256
"""
import argparse, json, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PREAMBLE = ("The task below comes with a question that gives its details. Write a reply that completes the task. "
            "Work through the problem step by step before answering, so that the reasoning is sound and the answer is accurate.")
INSTRUCTION = ("You are a medical expert skilled in clinical reasoning, diagnosis and treatment planning. "
               "Answer the medical question below.")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True); ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64); ap.add_argument("--new", type=int, default=256)
    a = ap.parse_args()
    questions = [r["Question"] for r in json.load(open("data/medical-calculations/train.json"))][:a.prompts]
    prompts = [f"{PREAMBLE}\n\n### Instruction:\n{INSTRUCTION}\n\n### Question:\n{q}\n\n### Response:\n" for q in questions]
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.padding_side = "left"
    if tok.pad_token is None: tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    def run(batch_prompts):
        enc = tok(batch_prompts, return_tensors="pt", padding=True).to("cuda")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=a.new, do_sample=False, pad_token_id=tok.pad_token_id)
        return int((out[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum())
    run(prompts[:2])   # warm-up
    torch.cuda.synchronize(); t = time.perf_counter()
    tokens = sum(run(prompts[i:i + a.batch]) for i in range(0, len(prompts), a.batch))
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    print(json.dumps({"bench": "hf_eval_generate", "prompts": len(prompts), "batch": a.batch, "new_tokens": a.new,
                      "seconds": dt, "samples_per_s": len(prompts) / dt, "generated_tokens": tokens, "tokens_per_s": tokens / dt}))

if __name__ == "__main__":
    main()
