/* tests/unit/util_fake_engine.c: fake eng_backend_ops for scheduler tests;
 * see util_fake_engine.h. Engine thread only. */
#include "tests/unit/util_fake_engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fake {
    struct cfg_model cfg;
    int32_t *kv;             /* [num_blocks * block_size] token per cell, -1 unwritten */
    uint64_t *slot_hash;     /* [num_slots] */
    int32_t *slot_count;     /* [num_slots] tokens absorbed */
    int errors, forwards;
    char msg[256];
    int markov_from;         /* rows at positions >= this depend on the last token only */
};

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_step(uint64_t h, int32_t tok, int32_t pos)
{
    return mix(h ^ ((uint64_t)(uint32_t)tok << 20) ^ (uint64_t)pos);
}

#define HASH0 0x1234567ull

static void logits_from_hash(int vocab, uint64_t h, float *out)
{
    for (int v = 0; v < vocab; v++) {
        uint64_t x = mix(h ^ ((uint64_t)v * 0xD1B54A32D192ED03ull));
        out[v] = (float)((double)(x >> 11) / 9007199254740992.0 * 8.0 - 4.0);
    }
}

void fake_engine_logits(int vocab, const int32_t *hist, int n, float *out)
{
    uint64_t h = HASH0;
    for (int i = 0; i < n; i++) h = hash_step(h, hist[i], i);
    logits_from_hash(vocab, h, out);
}

void fake_engine_markov_logits(int vocab, int32_t tok, float *out)
{
    logits_from_hash(vocab, mix(HASH0 ^ (uint64_t)(uint32_t)tok), out);
}

static void fail(struct fake *f, const char *fmt, int a, int b, int c)
{
    if (f->errors++ == 0) snprintf(f->msg, sizeof f->msg, fmt, a, b, c);
}

static int fake_init(struct engine *e) { (void)e; return 0; }
static void fake_destroy(struct engine *e) { (void)e; }

static int fake_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    struct fake *f = e->impl;
    const int bs = e->mem.block_size, V = f->cfg.vocab_size;
    f->forwards++;
    int lr = 0;
    for (int i = 0; i < b->num_seqs; i++) {
        int q0 = b->query_start[i], q1 = b->query_start[i + 1];
        int cl = b->cache_len[i], s = b->state_slot[i];
        const int32_t *bt = b->block_table + (size_t)i * b->max_blocks;
        /* verify rows: snap[t] receives the slot after token t (engine.h) */
        const int32_t *snap = NULL;
        if (i >= b->num_decode && i < b->num_decode + b->num_verify)
            snap = b->spec_slots + (size_t)(i - b->num_decode) * (size_t)(b->max_spec + 1);
        if (cl == 0) { /* has_initial_state false: the slot reads as zeros */
            f->slot_hash[s] = HASH0;
            f->slot_count[s] = 0;
        }
        if (f->slot_count[s] != cl)
            fail(f, "slot %d holds %d tokens but cache_len is %d", s, f->slot_count[s], cl);
        for (int t = q0; t < q1; t++) {
            int pos = b->positions[t];
            f->kv[(size_t)bt[pos / bs] * bs + pos % bs] = b->tokens[t];
            f->slot_hash[s] = hash_step(f->slot_hash[s], b->tokens[t], pos);
            f->slot_count[s]++;
            if (lr < b->num_logits && b->logits_rows[lr] == t) {
                /* the attention view: re-read the whole history from the KV cells */
                uint64_t h = HASH0;
                for (int p = 0; p <= pos; p++) {
                    int32_t tok = f->kv[(size_t)bt[p / bs] * bs + p % bs];
                    if (tok < 0) fail(f, "position %d of slot %d never written (block %d)", p, s, bt[p / bs]);
                    h = hash_step(h, tok, p);
                }
                if (h != f->slot_hash[s])
                    fail(f, "KV history disagrees with slot %d at position %d (seq %d)", s, pos, i);
                if (pos >= f->markov_from) fake_engine_markov_logits(V, b->tokens[t], logits + (size_t)lr * V);
                else logits_from_hash(V, h, logits + (size_t)lr * V);
                lr++;
            }
            if (snap) {
                f->slot_hash[snap[t - q0]] = f->slot_hash[s];
                f->slot_count[snap[t - q0]] = f->slot_count[s];
            }
        }
    }
    if (lr != b->num_logits) fail(f, "produced %d of %d logits rows (%d)", lr, b->num_logits, b->num_seqs);
    return 0;
}

static int fake_copy_slot(struct engine *e, int src, int dst)
{
    struct fake *f = e->impl;
    f->slot_hash[dst] = f->slot_hash[src];
    f->slot_count[dst] = f->slot_count[src];
    return 0;
}

static int fake_copy_block(struct engine *e, int src, int dst)
{
    struct fake *f = e->impl;
    int bs = e->mem.block_size;
    if (src < 0 || dst < 0 || src >= e->mem.num_kv_blocks || dst >= e->mem.num_kv_blocks) return -EINVAL;
    memcpy(f->kv + (size_t)dst * bs, f->kv + (size_t)src * bs, sizeof(int32_t) * (size_t)bs);
    return 0;
}

static const struct eng_backend_ops fake_ops = {
    .name = "fake",
    .init = fake_init,
    .destroy = fake_destroy,
    .forward = fake_forward,
    .copy_slot = fake_copy_slot,
    .copy_block = fake_copy_block,
};

struct engine *fake_engine_create(int vocab, const int *eos, int neos, int max_pos, int num_blocks,
                                  int block_size, int num_slots)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct engine *e = calloc(1, sizeof(*e));
    if (!f || !e) goto fail;
    f->cfg.vocab_size = vocab;
    f->cfg.max_position_embeddings = max_pos;
    f->cfg.num_eos = neos;
    for (int i = 0; i < neos && i < CFG_MAX_EOS; i++) f->cfg.eos_ids[i] = eos[i];
    f->markov_from = 0x7fffffff;
    f->cfg.bos_token_id = -1;
    f->cfg.pad_token_id = -1;
    f->kv = malloc(sizeof(int32_t) * (size_t)num_blocks * (size_t)block_size);
    f->slot_hash = calloc((size_t)num_slots, sizeof(uint64_t));
    f->slot_count = calloc((size_t)num_slots, sizeof(int32_t));
    if (!f->kv || !f->slot_hash || !f->slot_count) goto fail;
    memset(f->kv, 0xff, sizeof(int32_t) * (size_t)num_blocks * (size_t)block_size);
    e->cfg = &f->cfg;
    e->mem.num_kv_blocks = num_blocks;
    e->mem.block_size = block_size;
    e->mem.num_state_slots = num_slots;
    e->ops = &fake_ops;
    e->impl = f;
    return e;
fail:
    if (f) {
        free(f->kv);
        free(f->slot_hash);
        free(f->slot_count);
    }
    free(f);
    free(e);
    return NULL;
}

void fake_engine_destroy(struct engine *e)
{
    if (!e) return;
    struct fake *f = e->impl;
    free(f->kv);
    free(f->slot_hash);
    free(f->slot_count);
    free(f);
    free(e);
}

int fake_engine_errors(const struct engine *e) { return ((const struct fake *)e->impl)->errors; }
const char *fake_engine_error_msg(const struct engine *e) { return ((const struct fake *)e->impl)->msg; }
int fake_engine_forwards(const struct engine *e) { return ((const struct fake *)e->impl)->forwards; }
void fake_engine_set_markov_from(struct engine *e, int pos) { ((struct fake *)e->impl)->markov_from = pos; }
