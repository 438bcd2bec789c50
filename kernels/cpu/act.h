/* kernels/cpu/act.h: scalar activations shared by the CPU reference ops,
 * written as torch computes them in fp32. Header-only; any thread.
 *
 * defines: kern_cpu_silu, kern_cpu_sigmoid, kern_cpu_softplus
 */
#ifndef DS_KERNELS_CPU_ACT_H
#define DS_KERNELS_CPU_ACT_H

#include <math.h>

/* silu(x) = x * sigmoid(x) = x / (1 + e^-x) */
static inline float kern_cpu_silu(float x) { return x / (1.0f + expf(-x)); }

static inline float kern_cpu_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus with beta 1, threshold 20: x itself above 20. */
static inline float kern_cpu_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

#endif
