/* kernels/cpu/swiglu.c: silu(gate) * up, elementwise (MLP(x) = down(silu(gate x) * up x)).
 * Engine thread. */
#include "kernels/cpu/swiglu.h"
#include "kernels/cpu/par.h"

#include "kernels/cpu/act.h"

void kern_cpu_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
#pragma omp parallel for schedule(static) if (n >= KERN_CPU_PAR_WORK)
    for (int64_t i = 0; i < n; i++) out[i] = kern_cpu_silu(gate[i]) * up[i];
}
