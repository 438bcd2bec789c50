/* kernels/cpu/embed.h: token embedding lookup. Engine thread.
 *
 * defines: kern_cpu_embed
 */
#ifndef DS_KERNELS_CPU_EMBED_H
#define DS_KERNELS_CPU_EMBED_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x[t*C + i] = table[tokens[t]*C + i]; tokens must be < the table's rows
 * (the engine validates them first). */
void kern_cpu_embed(float *x, const float *table, const int32_t *tokens, int T, int C);

#ifdef __cplusplus
}
#endif
#endif
