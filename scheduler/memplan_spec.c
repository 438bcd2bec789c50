/* scheduler/memplan_spec.c: the memory plan's share for speculative
 * decoding (sched_memplan_add_spec, contract in sched.h). Main thread, once,
 * after sched_memplan_compute.
 *
 * A verify row of a sequence with d drafts takes 1+d state slots for the
 * step (the GDN state after each fed token, so acceptance needs no
 * recompute) besides the sequence's own slot. The base plan sizes slots for
 * concurrency only; without this share, speculation would run only on slots
 * that happen to be free, i.e. not at all once the slots are full. Slots are
 * large next to KV blocks (a 7B slot is tens of MiB, one KV block a fraction
 * of one), so the share is bounded: at most half of the KV blocks, and one
 * max_model_len sequence must still fit. --speculative-disable-by-batch-size
 * bounds spec_seqs, which is also the sensible way to keep the share small.
 */
#include <errno.h>
#include <stdio.h>

#include "scheduler/sched.h"

int sched_memplan_add_spec(struct sched_memplan *p, int k, int spec_seqs, char *err, size_t errlen)
{
    if (!p || k <= 0 || spec_seqs <= 0) return 0;
    if (spec_seqs > p->num_state_slots) spec_seqs = p->num_state_slots; /* never more verifying than running */
    size_t kvb = p->kv_block_bytes, slb = p->slot_bytes;
    size_t per_max = (size_t)((p->max_model_len + p->block_size - 1) / p->block_size);
    size_t blocks = (size_t)p->num_kv_blocks;
    size_t spare = p->budget_bytes > p->used_bytes ? p->budget_bytes - p->used_bytes : 0;
    size_t max_take = blocks / 2;
    if (blocks < per_max) max_take = 0;
    else if (blocks - max_take < per_max) max_take = blocks - per_max;
    int n = spec_seqs;
    size_t take = 0, extra = 0;
    for (; n > 0; n--) {
        extra = (size_t)n * (size_t)(1 + k);
        size_t bytes = extra * slb;
        take = bytes <= spare ? 0 : kvb ? (bytes - spare + kvb - 1) / kvb : 0;
        if (take <= max_take) break;
    }
    if (n == 0) {
        if (err)
            snprintf(err, errlen,
                     "memory plan: no room for speculation's state slots (%d per verifying sequence of "
                     "%.2f MiB each); speculation uses free slots only. Raise --kv-cache-memory / "
                     "--gpu-memory-utilization or lower --max-model-len / --num-speculative-tokens",
                     1 + k, slb / 1048576.0);
        return -ENOSPC;
    }
    if (extra > 0x7fffffff - (size_t)p->num_state_slots) return -ENOSPC;
    p->num_kv_blocks = (int)(blocks - take);
    int base_slots = p->num_state_slots;
    p->num_state_slots += (int)extra;
    p->num_spec_slots = (int)extra;
    p->spec_seqs = n;
    p->spec_tokens = k;
    p->used_bytes = (size_t)p->num_kv_blocks * kvb + (size_t)p->num_state_slots * slb;
    size_t at_max = (size_t)p->num_kv_blocks / (per_max ? per_max : 1);
    p->max_seqs_at_max_len = (int)(at_max < (size_t)base_slots ? at_max : (size_t)base_slots);
    return n;
}
