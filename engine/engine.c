/* engine/engine.c: the backend-independent half of the engine: creation,
 * memory sizes for the plan, and the validation of every batch against the
 * contract in engine/engine.h before a backend sees it.
 *
 * Threads: eng_create / eng_destroy on the main thread; eng_forward and the
 * copies on the engine (scheduler) thread only.
 *
 * Why validate here and not in each backend: a batch is built by the
 * scheduler from request data, so a scheduler bug must come back as -EINVAL,
 * never as an out-of-bounds write into a KV pool or a state slot (on the GPU
 * that would corrupt other requests silently). The checks are O(T + N *
 * max_blocks) and cheap next to any forward.
 */
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"

size_t eng_slot_bytes(const struct cfg_model *c, int elem)
{
    /* the conv window is fp32 on every backend; only the SSM state may be bf16 */
    size_t conv = (size_t)(c->linear_conv_kernel_dim - 1) * (size_t)cfg_gdn_conv_dim(c);
    size_t ssm = (size_t)c->linear_num_value_heads * c->linear_key_head_dim * c->linear_value_head_dim;
    return (size_t)c->num_gdn_layers * (conv * 4u + ssm * (size_t)elem);
}

size_t eng_kv_block_bytes(const struct cfg_model *c, int block_size, int elem)
{
    return (size_t)c->num_attn_layers * 2u * (size_t)block_size * (size_t)c->num_key_value_heads *
           (size_t)c->head_dim * (size_t)elem;
}

struct engine *eng_create(const struct cfg_model *c, const struct eng_weights *w,
                          const struct eng_backend_ops *ops, const struct eng_memory *mem,
                          char *err, size_t errlen)
{
    struct engine *e = NULL;
    if (!c || !w || !ops || !mem) {
        snprintf(err, errlen, "eng_create: missing config, weights, backend or memory plan");
        return NULL;
    }
    if (mem->block_size <= 0 || mem->num_kv_blocks <= 0 || mem->num_state_slots <= 0) {
        snprintf(err, errlen,
                 "eng_create: memory plan needs block_size, num_kv_blocks and num_state_slots > 0 "
                 "(got %d, %d, %d)",
                 mem->block_size, mem->num_kv_blocks, mem->num_state_slots);
        return NULL;
    }
    if (c->linear_num_key_heads <= 0 || c->linear_num_value_heads % c->linear_num_key_heads ||
        c->num_key_value_heads <= 0 || c->num_attention_heads % c->num_key_value_heads) {
        snprintf(err, errlen, "eng_create: head counts do not group (GDN %d/%d, attention %d/%d)",
                 c->linear_num_value_heads, c->linear_num_key_heads, c->num_attention_heads,
                 c->num_key_value_heads);
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(err, errlen, "eng_create: out of memory");
        return NULL;
    }
    e->cfg = c;
    e->w = w;
    e->mem = *mem;
    e->ops = ops;
    if (ops->init(e) != 0) {
        snprintf(err, errlen, "eng_create: %s backend failed to initialise (see log)", ops->name);
        goto fail;
    }
    return e;
fail:
    free(e);
    return NULL;
}

void eng_destroy(struct engine *e)
{
    if (!e) return;
    if (e->ops && e->impl) e->ops->destroy(e);
    free(e);
}

/* Log why a batch was refused (once per call; a refused batch is a
 * scheduler bug worth seeing) and return -EINVAL. */
#define BAD(...)                                        \
    do {                                                \
        char m_[200];                                   \
        snprintf(m_, sizeof m_, __VA_ARGS__);           \
        LOG_ERROR("eng_forward: bad batch: %s", m_);    \
        rc = -EINVAL;                                   \
        goto out;                                       \
    } while (0)

static int validate(const struct engine *e, const struct eng_batch *b, const float *logits)
{
    int rc = 0;
    const struct cfg_model *c = e->cfg;
    const int N = b->num_seqs, T = b->num_tokens, bs = e->mem.block_size;
    unsigned char *slot_used = NULL, *block_used = NULL;

    if (N <= 0 || T <= 0) BAD("num_seqs %d, num_tokens %d (both must be > 0)", N, T);
    if (!b->tokens || !b->positions || !b->query_start || !b->cache_len || !b->state_slot ||
        !b->block_table)
        BAD("a required array is NULL");
    if (b->num_decode < 0 || b->num_verify < 0 || b->num_decode + b->num_verify > N)
        BAD("num_decode %d + num_verify %d outside [0, num_seqs %d]", b->num_decode, b->num_verify,
            N);
    if (b->max_blocks <= 0) BAD("max_blocks %d", b->max_blocks);
    if (b->num_logits < 0 || b->num_logits > T) BAD("num_logits %d of %d tokens", b->num_logits, T);
    if (b->num_logits > 0 && (!b->logits_rows || !logits)) BAD("logits_rows or logits is NULL");
    if (b->query_start[0] != 0) BAD("query_start[0] = %d", b->query_start[0]);
    if (b->query_start[N] != T) BAD("query_start[N] = %d, num_tokens %d", b->query_start[N], T);
    if (b->num_verify > 0) {
        if (b->max_spec < 0 || !b->spec_slots) BAD("verify rows without spec_slots/max_spec");
    }

    slot_used = calloc((size_t)e->mem.num_state_slots, 1);
    block_used = calloc((size_t)e->mem.num_kv_blocks, 1);
    if (!slot_used || !block_used) {
        rc = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < N; i++) {
        int q0 = b->query_start[i], q1 = b->query_start[i + 1];
        int n = q1 - q0, cl = b->cache_len[i];
        if (n <= 0) BAD("sequence %d: query_start not strictly increasing (%d -> %d)", i, q0, q1);
        if (q1 > T) BAD("sequence %d: query_start %d past num_tokens %d", i, q1, T);
        if (i < b->num_decode && n != 1) BAD("decode sequence %d has %d tokens", i, n);
        if (cl < 0) BAD("sequence %d: cache_len %d", i, cl);
        int ctx = cl + n;
        int nblk = (ctx + bs - 1) / bs;
        if (nblk > b->max_blocks)
            BAD("sequence %d: context %d needs %d blocks, max_blocks %d", i, ctx, nblk, b->max_blocks);
        int s = b->state_slot[i];
        if (s < 0 || s >= e->mem.num_state_slots)
            BAD("sequence %d: state slot %d outside [0, %d)", i, s, e->mem.num_state_slots);
        if (slot_used[s]) BAD("sequence %d: state slot %d used twice", i, s);
        slot_used[s] = 1;
        const int32_t *bt = b->block_table + (size_t)i * b->max_blocks;
        for (int j = 0; j < nblk; j++) {
            int blk = bt[j];
            if (blk < 0 || blk >= e->mem.num_kv_blocks)
                BAD("sequence %d: block_table[%d] = %d outside [0, %d)", i, j, blk,
                    e->mem.num_kv_blocks);
            /* Blocks that receive new tokens are written: they must be this
             * sequence's alone. Earlier blocks may be shared (prefix cache). */
            if ((j + 1) * bs > cl) {
                if (block_used[blk]) BAD("sequence %d: writable block %d shared", i, blk);
                block_used[blk] = 1;
            }
        }
        for (int t = q0; t < q1; t++) {
            if (b->positions[t] != cl + (t - q0))
                BAD("token %d of sequence %d: position %d, expected cache_len %d + %d", t, i,
                    b->positions[t], cl, t - q0);
            if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
                BAD("token %d: id %d outside the vocabulary (%d)", t, b->tokens[t], c->vocab_size);
        }
        if (i >= b->num_decode && i < b->num_decode + b->num_verify) {
            int vi = i - b->num_decode;
            if (n > b->max_spec + 1) BAD("verify sequence %d: %d tokens > max_spec+1", i, n);
            for (int t = 0; t < n; t++) {
                int ss = b->spec_slots[(size_t)vi * (b->max_spec + 1) + t];
                if (ss < 0 || ss >= e->mem.num_state_slots)
                    BAD("verify sequence %d: spec slot %d outside [0, %d)", i, ss,
                        e->mem.num_state_slots);
                if (slot_used[ss]) BAD("verify sequence %d: spec slot %d used twice", i, ss);
                slot_used[ss] = 1;
            }
        }
    }
    for (int r = 0; r < b->num_logits; r++) {
        int row = b->logits_rows[r];
        if (row < 0 || row >= T) BAD("logits_rows[%d] = %d outside [0, %d)", r, row, T);
        if (r > 0 && row <= b->logits_rows[r - 1]) BAD("logits_rows not strictly ascending at %d", r);
    }
out:
    free(slot_used);
    free(block_used);
    return rc;
}
#undef BAD

int eng_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    if (!e || !b) return -EINVAL;
    int rc = validate(e, b, logits);
    if (rc) return rc;
    return e->ops->forward(e, b, logits);
}

size_t eng_slot_floats(const struct cfg_model *c)
{
    size_t per = (size_t)(c->linear_conv_kernel_dim - 1) * cfg_gdn_conv_dim(c) +
                 (size_t)c->linear_num_value_heads * c->linear_key_head_dim * c->linear_value_head_dim;
    return per * (size_t)c->num_gdn_layers;
}

int eng_read_slot(struct engine *e, int slot, float *out)
{
    if (!e || !out || slot < 0 || slot >= e->mem.num_state_slots) return -EINVAL;
    if (!e->ops->read_slot) return -ENOTSUP;
    return e->ops->read_slot(e, slot, out);
}

int eng_copy_slot(struct engine *e, int src, int dst)
{
    if (!e || src < 0 || dst < 0 || src >= e->mem.num_state_slots || dst >= e->mem.num_state_slots)
        return -EINVAL;
    if (src == dst) return 0;
    return e->ops->copy_slot(e, src, dst);
}

int eng_copy_block(struct engine *e, int src, int dst)
{
    if (!e || src < 0 || dst < 0 || src >= e->mem.num_kv_blocks || dst >= e->mem.num_kv_blocks)
        return -EINVAL;
    if (src == dst) return 0;
    return e->ops->copy_block(e, src, dst);
}
