#!/usr/bin/env python3
"""tools/bench_fla.py: FLA's GDN kernels on the shapes `deltaserve bench` uses,
for the side-by-side in docs/benchmarks.md.

Runs on the GPU machine (torch + triton there). FLA itself is not vendored:
copy the `fla` package of github fla-org/flash-linear-attention into a
git-ignored folder (default .scratch/fla) and pass it with --fla.

Shapes (OLMo-Hybrid-7B GDN layer): H = 30 heads, K = 96, V = 192, bf16 q/k/v,
fp32 log-decay g, bf16 beta, fp32 initial and final state, q/k L2 norm in the
kernel (as vLLM calls them).
  chunk_gated_delta_rule: 1x8192, 4x2048 and 16x512 (varlen, cu_seqlens), ns/token/layer
  fused_recurrent_gated_delta_rule: decode B = 1, 8, 64, 256 (one token each),
    us/layer and state traffic (read + write of the fp32 state) in TB/s
Timing: CUDA-graph replay median (triton.testing.do_bench_cudagraph) where it
works, else triton.testing.do_bench median. Output: one JSON object per line
(same fields as `deltaserve bench --json`) and a readable line on stderr.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fla", default=".scratch/fla")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    sys.path.insert(0, a.fla)
    import torch
    import triton
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
    import fla

    out = open(a.json, "w") if a.json else None
    dev = "cuda"
    H, K, V = 30, 96, 192
    torch.manual_seed(0)

    def emit(what, shape, value, unit, note=""):
        line = {"what": what, "shape": shape, "value": value, "unit": unit}
        print(json.dumps(line), file=out if out else sys.stdout, flush=True)
        print(f"  {what:40s} {shape:16s} {value:12.3f} {unit:8s} {note}", file=sys.stderr, flush=True)

    def timeit(fn):
        try:
            return triton.testing.do_bench_cudagraph(fn, rep=200, return_mode="median")
        except Exception as e:  # noqa: BLE001
            print(f"  (cudagraph timing failed: {e}; plain do_bench)", file=sys.stderr)
            return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")

    print(f"FLA {fla.__version__}, torch {torch.__version__}, triton {triton.__version__}, "
          f"{torch.cuda.get_device_name()}", file=sys.stderr)
    for N, L in [(1, 8192), (4, 2048), (16, 512)]:
        T = N * L
        q = torch.randn(1, T, H, K, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, T, H, K, device=dev, dtype=torch.bfloat16)
        v = torch.randn(1, T, H, V, device=dev, dtype=torch.bfloat16)
        g = -torch.rand(1, T, H, device=dev, dtype=torch.float32) * 0.5 - 0.01
        beta = (torch.rand(1, T, H, device=dev, dtype=torch.float32) * 1.8 + 0.1).to(torch.bfloat16)
        h0 = torch.randn(N, H, K, V, device=dev, dtype=torch.float32) * 0.1
        cu = torch.arange(0, T + 1, L, device=dev, dtype=torch.int32).to(torch.long)

        def run():
            return chunk_gated_delta_rule(q, k, v, g, beta, scale=K ** -0.5, initial_state=h0,
                                          output_final_state=True, use_qk_l2norm_in_kernel=True,
                                          cu_seqlens=cu)
        run()
        torch.cuda.synchronize()
        ms = timeit(run)
        emit("fla: chunk_gated_delta_rule", f"{N}x{L}", ms * 1e6 / T, "ns/tok",
             f"({ms*1e3:.1f} us per layer)")
    for B in [1, 8, 64, 256]:
        q = torch.randn(B, 1, H, K, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, 1, H, K, device=dev, dtype=torch.bfloat16)
        v = torch.randn(B, 1, H, V, device=dev, dtype=torch.bfloat16)
        g = -torch.rand(B, 1, H, device=dev, dtype=torch.float32) * 0.5 - 0.01
        beta = (torch.rand(B, 1, H, device=dev, dtype=torch.float32) * 1.8 + 0.1).to(torch.bfloat16)
        h0 = torch.randn(B, H, K, V, device=dev, dtype=torch.float32) * 0.1

        def run():
            return fused_recurrent_gated_delta_rule(q, k, v, g=g, beta=beta, scale=K ** -0.5,
                                                    initial_state=h0, output_final_state=True,
                                                    use_qk_l2norm_in_kernel=True)
        run()
        torch.cuda.synchronize()
        ms = timeit(run)
        tbs = 2.0 * B * H * K * V * 4 / (ms * 1e-3) / 1e12
        emit("fla: fused_recurrent decode state", f"B={B}", tbs, "TB/s", f"({ms*1e3:.1f} us per layer)")
    if out:
        out.close()


if __name__ == "__main__":
    main()
