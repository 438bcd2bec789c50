#!/usr/bin/env bash
# tests/e2e/cuda_emu.sh: the GPU test suite (tests/gpu: every CUDA kernel and
# the whole CUDA backend against the CPU reference) built against the CPU
# CUDA emulator in tools/cuda-emu, so CI (nvcc, no GPU) checks the CUDA code's
# indexing, varlen/slot semantics and host logic on every change. It says
# nothing about speed, inter-block races or CUDA graphs: `make test-gpu` on a
# real GPU is still the test of record for those.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=build/cuda-emu
mkdir -p build
EMU_BUILD_ONLY=1 bash tools/cuda-emu/run.sh "$B" >"$B.build.log" 2>&1 || { tail -40 "$B.build.log"; exit 1; }
CK_FORK=no "$B/check_gpu_emu" 2>&1 | grep -v "graph capture for batch" 
