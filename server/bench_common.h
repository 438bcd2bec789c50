/* server/bench_common.h: what `deltaserve bench` (server/bench.c) and
 * `deltaserve bench --spec` (server/bench_spec.c) share: a monotonic clock,
 * the median of a sample, and the released OLMo-Hybrid-7B configuration
 * built in memory (no config.json, no download).
 *
 * Threads: any; pure except bench_median, which sorts its argument.
 */
#ifndef DS_SERVER_BENCH_COMMON_H
#define DS_SERVER_BENCH_COMMON_H

#include "engine/config.h"

/* Seconds from CLOCK_MONOTONIC. */
double bench_now_s(void);
/* Median of v[0..n) (n >= 1); sorts v in place. */
double bench_median(double *v, int n);
/* OLMo-Hybrid-7B shapes (MODEL.md) with `layers` layers, [linear x3, full]
 * repeating; layers <= the config's layer capacity. */
void bench_cfg_7b(struct cfg_model *c, int layers);

#endif
