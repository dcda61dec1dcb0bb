// SharpTune micro-benchmarks (one component each, not the product path: scripts/bench/compare-train.sh measures
// `sharptune train` / `generate` against transformers) and device checks. One JSON line per result on stdout.
//   bench decode  --shape qwen1.5b|llama8b|tiny [--device cuda] [--prefill 128] [--gen 128]
//   bench parity  --fixtures DIR [--device cuda]        bf16 logits vs transformers' (fixture logits_bf16_cuda)
//   bench load    --model DIR                           peak RSS while loading a checkpoint on the CPU
//   bench tokenize --model DIR [--corpus FILE]          single-thread encode speed
//   bench dequant-check [--device cuda]               fused dequantization kernels vs the stock ops, bit for bit
//   bench qlora-memory --model DIR [--quantization nf4] [--seq 2048] [--variants 1024,256,256o] [--offload] [--long 16384]
//                                                       a QLoRA step's GPU memory, phase by phase (allocator statistics)
//   bench native-build                                  builds the CUDA extensions into the cache (to overlap with other work)
//   bench native                                        CUDA extension check: a kernel, a CUDA graph of TorchSharp ops
//   bench layer-host [--device cpu] [--seq 64]          host cost of a checkpointed LoRA step, dense vs 4-bit (ops, ms)
//   bench train   --shape S [--device cuda] [--seq 2048] [--batch 2] [--steps 10] [--ckpt]   LoRA r=16, all seven projections
using SharpTune.Bench;

var a = new Args(args);
return a.Command switch
{
    "decode" => Benches.Decode(a),
    "parity" => Benches.Parity(a),
    "load" => Benches.Load(a),
    "train" => Benches.Train(a),
    "tokenize" => Benches.Tokenize(a),
    "dequant-check" => QLoraBenches.DequantCheck(a),
    "qlora-memory" => QLoraBenches.Memory(a),
    "native-build" => QLoraBenches.NativeBuild(a),
    "native" => NativeCheck.Run(a),
    "layer-host" => LayerHostBench.Run(a),
    _ => Args.Usage(),
};
