/* kernels/cpu/swiglu.h: the SwiGLU MLP's activation, silu(gate) * up. Engine thread.
 *
 * defines: kern_cpu_swiglu
 */
#ifndef DS_KERNELS_CPU_SWIGLU_H
#define DS_KERNELS_CPU_SWIGLU_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* out[i] = silu(gate[i]) * up[i] for i < n; out may alias gate or up. */
void kern_cpu_swiglu(float *out, const float *gate, const float *up, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
