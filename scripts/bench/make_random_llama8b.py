"""Writes a random-weight Hugging Face checkpoint of the DeepSeek-R1-Distill-Llama-8B shape (hidden 4096, 32 layers,
32 heads, 8 KV heads, intermediate 14336, vocab 128256, llama3 rope scaling; bf16, N(0, 0.02), norms 1) in shards of
about 2 GB, made on the GPU and written one shard at a time, with a real tokenizer folder copied in.
    python3 scripts/bench/make_random_llama8b.py OUT_DIR TOKENIZER_DIR
"""
import json, os, shutil, sys
import torch
from safetensors.torch import save_file

out, tok = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
H, I, L, NH, NKV, V = 4096, 14336, 32, 32, 8, 128256
D = H // NH
config = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
    "num_hidden_layers": L, "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
    "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072, "tie_word_embeddings": False,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
    "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
    "bos_token_id": 128000, "eos_token_id": 128001,
}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
for f in os.listdir(tok):
    shutil.copy(os.path.join(tok, f), os.path.join(out, f))

g = torch.Generator(device="cuda").manual_seed(0)
def rnd(*shape):
    return (torch.randn(*shape, generator=g, device="cuda", dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

groups = [[("model.embed_tokens.weight", (V, H))], [("lm_head.weight", (V, H)), ("model.norm.weight", None)]]
for i in range(L):
    p = f"model.layers.{i}."
    if i % 4 == 0: groups.append([])
    groups[-1] += [(p + "self_attn.q_proj.weight", (NH * D, H)), (p + "self_attn.k_proj.weight", (NKV * D, H)),
                   (p + "self_attn.v_proj.weight", (NKV * D, H)), (p + "self_attn.o_proj.weight", (H, NH * D)),
                   (p + "mlp.gate_proj.weight", (I, H)), (p + "mlp.up_proj.weight", (I, H)), (p + "mlp.down_proj.weight", (H, I)),
                   (p + "input_layernorm.weight", None), (p + "post_attention_layernorm.weight", None)]
weight_map = {}
for k, group in enumerate(groups):
    name = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
    tensors = {n: (rnd(*s) if s else torch.ones(H, dtype=torch.bfloat16)) for n, s in group}
    save_file(tensors, os.path.join(out, name), metadata={"format": "pt"})
    weight_map.update({n: name for n in tensors})
    del tensors
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(out, "model.safetensors.index.json"), "w"))
print(json.dumps({"made": out, "shards": len(groups)}))
