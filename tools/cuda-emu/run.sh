#!/bin/bash
# tools/cuda-emu/run.sh [BUILD_DIR]: build the GPU tests (tests/gpu) against
# the CPU CUDA emulator and run them. A test tool for machines without a GPU
# (CI, this workstation): it checks the kernels' and the CUDA backend's
# logic (indexing, varlen/slot semantics, barriers, the eager path) against
# the CPU reference; it says nothing about speed, and graph capture is
# reported unsupported, so the graph path itself needs the real device.
# EMU_SAN="-fsanitize=address" builds it with AddressSanitizer: "device"
# memory is malloc'd, so out-of-bounds kernel accesses are reported
# (memcheck's job on the GPU). EMU_BUILD_ONLY=1 skips the run.
set -e
B=${1:-build/cuda-emu}
E=tools/cuda-emu
mkdir -p $B/obj
CFLAGS="$EMU_SAN -DDS_CUDA_EMU -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -I. -I$E/include -DDS_HAVE_CUDA -fopenmp -O2 -g $(pkg-config --cflags check libcjson libpcre2-8)"
CXXFLAGS="$EMU_SAN -DDS_CUDA_EMU -std=c++17 -O2 -g -I. -I$E/include -I$E -D__CUDACC__ -DDS_HAVE_CUDA -fopenmp -Wall -Wno-unused-function"
objs=""
for f in kernels/cuda/*.cu; do
    n=$(basename $f .cu)
    python3 $E/translate.py $f $B/obj/$n.cu.cpp
    g++ $CXXFLAGS -c $B/obj/$n.cu.cpp -o $B/obj/$n.cu.o &
    objs="$objs $B/obj/$n.cu.o"
done
g++ $CXXFLAGS -c $E/emu_runtime.cpp -o $B/obj/emu_runtime.o &
objs="$objs $B/obj/emu_runtime.o"
# the scheduler (and what it links: sampling, tokenizer, metrics) for the
# speculative greedy-identity test over the CUDA backend (check_gpu_spec.c)
for f in engine/cuda/*.c tests/gpu/*.c engine/engine.c engine/cpu_backend.c engine/config.c \
         engine/safetensors.c engine/weights.c engine/log.c kernels/cpu/*.c \
         scheduler/*.c engine/sampling.c engine/tok_*.c server/metrics.c; do
    o=$B/obj/$(echo $f | tr / _).o
    gcc $CFLAGS -c $f -o $o &
    objs="$objs $o"
done
wait
g++ $EMU_SAN -o $B/check_gpu_emu $objs $(pkg-config --libs check libcjson libpcre2-8) -fopenmp -lm -lpthread
echo "built $B/check_gpu_emu"
[ -n "$EMU_BUILD_ONLY" ] || CK_FORK=no $B/check_gpu_emu
