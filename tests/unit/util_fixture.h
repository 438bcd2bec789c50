/* tests/unit/util_fixture.h: reader for the engine reference fixtures made by
 * tools/make_fixtures.py (refs.json + refs.bin beside each model), and a
 * helper that opens a model directory as a CPU engine.
 *
 * defines: struct fx_refs, struct fx_seq, struct fx_model, fx_refs_load,
 *          fx_refs_free, fx_model_open, fx_model_close
 *
 * Test-only; single-threaded.
 */
#ifndef DS_TESTS_UTIL_FIXTURE_H
#define DS_TESTS_UTIL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/weights.h"

struct fx_seq {
    char name[32];
    int32_t *tokens;   /* owned [len] */
    int len;
    const float *lp;   /* borrowed from refs data: [len-1] log p(tokens[t+1] | ..t) */
};

struct fx_refs {
    int vocab;
    struct fx_seq *seqs;   /* owned [nseq] */
    int nseq;
    float *data;           /* owned: all of refs.bin */
    size_t ndata;
    int full_seq;          /* index into seqs of the sequence with full rows */
    int full_start, full_count;
    const float *full;     /* borrowed: [full_count][vocab] log-softmax rows */
    float *inv_freq;       /* owned [n_inv] HF's RoPE inverse frequencies, or NULL */
    int n_inv;
    double attn_scaling;   /* HF's cos/sin factor (1 unless yarn) */
    int32_t *greedy_prompt, *greedy_out; /* owned */
    int n_greedy_prompt, n_greedy_out;
};

/* Load DIR/refs.json and DIR/refs.bin. Returns 0, or -1 with err. */
int fx_refs_load(struct fx_refs *r, const char *dir, char *err, size_t errlen);
void fx_refs_free(struct fx_refs *r);
/* Index of the sequence called name, or -1. */
int fx_refs_find(const struct fx_refs *r, const char *name);

/* A model directory opened as a CPU engine with the given memory, one
 * worker thread (set e->num_threads to change it). */
struct fx_model {
    struct cfg_model cfg;
    struct eng_weights w;
    struct engine *e;
};
int fx_model_open(struct fx_model *m, const char *dir, int num_blocks, int block_size, int num_slots,
                  char *err, size_t errlen);
void fx_model_close(struct fx_model *m);

#endif
