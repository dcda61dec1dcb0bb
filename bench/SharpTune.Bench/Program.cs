// SharpTune micro-benchmarks (one component each, not the product path: scripts/bench/compare-train.sh measures
// `sharptune train` / `generate` against transformers) and device checks. One JSON line per result on stdout.
//   bench decode  --shape qwen1.5b|llama8b|tiny [--device cuda] [--prefill 128] [--gen 128]
//   bench parity  --fixtures DIR [--device cuda]        bf16 logits vs transformers' (fixture logits_bf16_cuda)
//   bench load    --model DIR                           peak RSS while loading a checkpoint on the CPU
//   bench tokenize --model DIR [--corpus FILE]          single-thread encode speed
//   bench native                                        CUDA extension check: a kernel, a CUDA graph of TorchSharp ops
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
    "native" => NativeCheck.Run(a),
    _ => Args.Usage(),
};
