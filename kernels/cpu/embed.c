/* kernels/cpu/embed.c: embedding rows copied out of the fp32 table. Engine thread. */
#include "kernels/cpu/embed.h"

#include <string.h>

void kern_cpu_embed(float *x, const float *table, const int32_t *tokens, int T, int C)
{
    for (int t = 0; t < T; t++)
        memcpy(x + (int64_t)t * C, table + (int64_t)tokens[t] * C, sizeof(float) * (size_t)C);
}
