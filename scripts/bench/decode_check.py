"""Teacher-forced check of `sharptune generate`'s decode path on the GPU (docs/benchmarks.md, "Decode correctness").
Every path is fed the same tokens: each row's prompt, then a fixed continuation one token per step, and the logits of
every step are compared with the truth, transformers in fp32 (the bf16 weights upcast, exact) over the whole sequence
without a cache. Paths: ours through `sharptune decode-logits` (bf16; CUDA graph + fused kernels as `generate` runs;
op by op with the fused kernels; op by op with SHARPTUNE_NATIVE=off), and transformers bf16 with its KV cache, one
token per step as its `generate` does. Rows of different prompt lengths run as one batch in ours (left padding),
one at a time in transformers.
    python3 scripts/bench/decode_check.py --app /tmp/app/SharpTune.Cli --model /tmp/models/qwen1.5b --out /tmp/check
Verdict (stated before it was run): a path of ours passes when its mean relative RMS error is at most 1.5x that of
transformers bf16, its largest relative error at most 3x, and its top-1 token equals the truth's at every step whose
top-2 margin exceeds twice the bf16 bound, 2x transformers bf16's largest absolute error (where an error within the
bound cannot flip the order).
Relative = divided by the standard deviation of that step's true logits over the vocabulary.
"""
import argparse, json, os, subprocess, sys, time
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

OURS = {
    "SharpTune, CUDA graph + fused kernels (as generate runs)": ([], {}),
    "SharpTune, op by op, fused kernels (--cuda-graphs false)": (["--cuda-graphs", "false"], {}),
    "SharpTune, op by op, SHARPTUNE_NATIVE=off": ([], {"SHARPTUNE_NATIVE": "off"}),
}
HF = "transformers bf16, KV cache, one token per step"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True); ap.add_argument("--model", required=True); ap.add_argument("--out", required=True)
    ap.add_argument("--prompt-lengths", default="153,97,33"); ap.add_argument("--steps", type=int, default=64); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ours", default="0,1,2", help="which of our paths to run (indices into OURS)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vocab = json.load(open(os.path.join(a.model, "config.json")))["vocab_size"]
    g = torch.Generator().manual_seed(a.seed)
    lengths = [int(x) for x in a.prompt_lengths.split(",")]
    prompts = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]
    conts = [torch.randint(0, vocab, (a.steps,), generator=g).tolist() for _ in lengths]
    rows = os.path.join(a.out, "rows.jsonl")
    with open(rows, "w") as f:
        for p, c in zip(prompts, conts): f.write(json.dumps({"prompt_ids": p, "continuation_ids": c}) + "\n")

    # Ours in the background (the first builds the native extensions), transformers meanwhile.
    procs = {}
    for i, (name, (flags, env)) in enumerate(OURS.items()):
        if str(i) not in a.ours.split(","): continue
        path = os.path.join(a.out, f"ours{i}.safetensors")
        log = open(os.path.join(a.out, f"ours{i}.log"), "w")
        cmd = [a.app, "decode-logits", "--model", a.model, "--input", rows, "--output", path, "--device", "cuda", "--dtype", "bfloat16", "--json"] + flags
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}), path, log.name)

    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16, attn_implementation="sdpa", device_map="cuda").eval()
    hf = []
    with torch.no_grad():
        for p, c in zip(prompts, conts):
            out = model(input_ids=torch.tensor([p], device="cuda"), use_cache=True)
            steps = [out.logits[0, -1].float()]
            for t in c[:-1]:
                out = model(input_ids=torch.tensor([[t]], device="cuda"), past_key_values=out.past_key_values, use_cache=True)
                steps.append(out.logits[0, -1].float())
            hf.append(torch.stack(steps))
        model = model.float()   # bf16 values are exact in fp32: the same model, computed in fp32
        truth = []
        for p, c in zip(prompts, conts):
            logits = model(input_ids=torch.tensor([p + c[:-1]], device="cuda")).logits[0].float()
            truth.append(logits[len(p) - 1:len(p) - 1 + a.steps])
    truth, hf = torch.stack(truth), torch.stack(hf)          # [B, S, V]
    del model; torch.cuda.empty_cache()
    print(f"transformers: {time.time() - t0:.0f} s", flush=True)

    paths = {}
    for name, (proc, path, log) in procs.items():
        rc = proc.wait()
        if rc != 0:
            print(f"{name} FAILED (rc {rc}): {open(log).read()[-800:]}", flush=True)
            continue
        with safe_open(path, "pt") as f: decode_path = f.metadata()["decode_path"]
        paths[name] = (load_file(path)["logits"].cuda(), decode_path)
    paths[HF] = (hf, "transformers")

    sigma = truth.std(-1)                                     # [B, S]
    top2 = truth.topk(2, -1).values
    margin = top2[..., 0] - top2[..., 1]
    truth_top1 = truth.argmax(-1)
    # The bf16 error bound: twice transformers bf16's largest error anywhere. Where the truth's top-2 margin exceeds
    # twice the bound, no path within the bound can change the top-1 token.
    hf_bound = 2 * (hf - truth).abs().amax().item()
    confident = margin > 2 * hf_bound

    def stats(x):
        d = (x - truth).abs()
        rel_max = d.amax(-1) / sigma
        rel_rms = d.pow(2).mean(-1).sqrt() / sigma
        top1 = x.argmax(-1) == truth_top1
        return {"rel_rms_mean": rel_rms.mean().item(), "rel_max": rel_max.max().item(), "abs_max": d.amax().item(),
                "top1_all": top1.float().mean().item(), "top1_confident": top1[confident].float().mean().item() if confident.any() else None}

    result = {"rows": len(prompts), "prompt_lengths": lengths, "steps": a.steps, "vocab": vocab, "logit_std_mean": sigma.mean().item(),
              "hf_abs_bound": hf_bound, "confident_steps": int(confident.sum()), "all_steps": confident.numel(), "paths": {}}
    ref = stats(hf)
    for name, (x, decode_path) in paths.items():
        s = stats(x)
        s["decode_path"] = decode_path
        if name != HF:
            s["pass"] = (s["rel_rms_mean"] <= 1.5 * ref["rel_rms_mean"] and s["rel_max"] <= 3 * ref["rel_max"]
                         and (s["top1_confident"] is None or s["top1_confident"] == 1.0))
        result["paths"][name] = s
    # What a real fault looks like on the same scale: every step given the logits of the next position.
    shifted = (truth[:, 1:] - truth[:, :-1]).abs()
    result["control_next_position"] = {"rel_rms_mean": (shifted.pow(2).mean(-1).sqrt() / sigma[:, :-1]).mean().item(),
                                       "rel_max": (shifted.amax(-1) / sigma[:, :-1]).max().item()}
    names = list(paths)
    result["pairwise_abs_max"] = {f"{names[i]} vs {names[j]}": (paths[names[i]][0] - paths[names[j]][0]).abs().amax().item()
                                  for i in range(len(names)) for j in range(i + 1, len(names))}
    json.dump(result, open(os.path.join(a.out, "decode_check.json"), "w"), indent=1)

    print(f"\n## decode, teacher-forced, {len(prompts)} rows (prompts {a.prompt_lengths} tokens) x {a.steps} steps, bf16, against transformers fp32 "
          f"(logit std {result['logit_std_mean']:.3f}; {result['confident_steps']} of {result['all_steps']} steps with a top-2 margin over "
          f"2 x {hf_bound:.4f}, the bf16 bound: 2 x transformers bf16's largest error)")
    print("| path | mean relative RMS error | largest relative error | top-1 = truth, confident steps | top-1 = truth, all steps | verdict |")
    print("|---|---|---|---|---|---|")
    for name, s in result["paths"].items():
        conf = "–" if s["top1_confident"] is None else f"{100 * s['top1_confident']:.1f}%"
        verdict = "reference" if name == HF else "pass" if s["pass"] else "FAIL"
        print(f"| {name} | {s['rel_rms_mean']:.4f} | {s['rel_max']:.4f} | {conf} | {100 * s['top1_all']:.1f}% | {verdict} |")
    c = result["control_next_position"]
    print(f"| control: the next position's true logits (what an off-by-one fault gives) | {c['rel_rms_mean']:.4f} | {c['rel_max']:.4f} | | | |")
    for k, v in result["pairwise_abs_max"].items(): print(f"max |Δ| {k}: {v:.4f}")
    for name, s in result["paths"].items(): print(f"{name}: {s['decode_path']}")
    sys.exit(0 if all(s.get("pass", True) for s in result["paths"].values()) and len(paths) == len(procs) + 1 else 1)

if __name__ == "__main__":
    main()
