/* server/bench.h: `deltaserve bench`, the GPU benchmark at the released 7B
 * shapes with random bf16 weights generated on the GPU (no download).
 *
 * Threads: main thread; runs to completion and returns the exit status.
 */
#ifndef DS_SERVER_BENCH_H
#define DS_SERVER_BENCH_H

/* argv holds the options after "bench" (argc of them). Returns 0 on success,
 * 2 for bad options or a build/machine without CUDA, 1 for a device failure. */
int bench_main(int argc, char **argv);

#endif
