/* kernels/cpu/par.h: when a CPU op is worth an OpenMP parallel region.
 * Header-only; any thread.
 *
 * defines: KERN_CPU_PAR_WORK
 *
 * Waking a thread team and joining it costs microseconds on an idle machine
 * and far more when the cores are oversubscribed (a CI box running builds
 * beside the tests: measured 13x slower engine tests at load 11 on 2 cores
 * with a 64K threshold). Below about a million multiply-adds (or elements
 * for the memory-bound ops) one thread finishes first, so the tiny fixture
 * models run serially and real models still fan out.
 */
#ifndef DS_KERNELS_CPU_PAR_H
#define DS_KERNELS_CPU_PAR_H

#include <stdint.h>

#define KERN_CPU_PAR_WORK ((int64_t)1 << 20)

#endif
