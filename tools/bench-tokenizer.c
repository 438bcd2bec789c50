/* tools/bench-tokenizer.c: encode speed and load time of engine/tokenizer.c.
 * Built and run by tools/bench-tokenizer.sh (not part of make test).
 *
 *   bench-tokenizer TOKENIZER_JSON TEXT_FILE [PASSES]
 *
 * Prints one JSON line: load_ms (best of 5 loads), first-pass and best-pass
 * encode MB/s over PASSES passes of the whole text on the calling thread (one
 * core), and the token count. Wall-clock and thread CPU time are both given;
 * the CPU figure is what a loaded machine cannot inflate. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/tokenizer.h"

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [PASSES]\n", argv[0]);
        return 2;
    }
    int passes = argc > 3 ? atoi(argv[3]) : 10;
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "read failed\n"); return 1; }
    fclose(f);
    char err[512];
    double load_w = 1e9, load_c = 1e9;
    struct tokenizer *t = NULL;
    for (int i = 0; i < 5; i++) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        struct tokenizer *u = tok_load(argv[1], err, sizeof err);
        double w1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_THREAD_CPUTIME_ID);
        if (!u) { fprintf(stderr, "%s\n", err); return 1; }
        if (w1 - w0 < load_w) load_w = w1 - w0;
        if (c1 - c0 < load_c) load_c = c1 - c0;
        if (t) tok_free(t);
        t = u;
    }
    double first_w = 0, first_c = 0, best_w = 1e9, best_c = 1e9;
    int ntok = 0;
    for (int p = 0; p < passes; p++) {
        int32_t *ids;
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        ntok = tok_encode(t, text, (size_t)n, false, &ids);
        double w = now(CLOCK_MONOTONIC) - w0, c = now(CLOCK_THREAD_CPUTIME_ID) - c0;
        free(ids);
        if (p == 0) { first_w = w; first_c = c; }
        if (w < best_w) best_w = w;
        if (c < best_c) best_c = c;
    }
    double mb = (double)n / 1e6;
    printf("{\"impl\":\"deltaserve (C, PCRE2)\",\"bytes\":%ld,\"tokens\":%d,\"load_ms\":%.1f,\"load_cpu_ms\":%.1f,"
           "\"first_mbps\":%.1f,\"best_mbps\":%.1f,\"first_cpu_mbps\":%.1f,\"best_cpu_mbps\":%.1f}\n",
           n, ntok, load_w * 1e3, load_c * 1e3, mb / first_w, mb / best_w, mb / first_c, mb / best_c);
    tok_free(t);
    free(text);
    return 0;
}
