/* tests/gpu/gpu_st_writer.c: the unit tests' safetensors writer and random
 * checkpoint builder (tests/unit/util_st_writer.c), compiled into the GPU
 * test binary too, so the whole-model test builds its checkpoints the same way
 * the CPU backend's tests do (the GPU binary links only the tests/gpu sources). */
#include "tests/unit/util_st_writer.c"
