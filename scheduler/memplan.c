/* scheduler/memplan.c: the startup memory plan: how many KV blocks and GDN
 * state slots a byte budget buys (issue 4.2). Main thread, once.
 *
 * Budget: on the CPU, --kv-cache-memory (SCHED_DEFAULT_KV_CACHE_MEMORY when
 * not given); on the GPU, sched_memplan_gpu_budget(total, used, util) after
 * weights, workspace and graph pools are allocated.
 *
 * Split: a sequence holds exactly one slot (fixed size, whatever its length)
 * and as many blocks as its length needs. Slots come first: a slot is what
 * buys concurrency, and KV is shared on demand (most sequences are far from
 * max_model_len; preemption handles the rest). So the plan takes one slot
 * per sequence up to max_num_seqs, bounded so that slots take at most half
 * of the budget and one sequence of max_model_len still fits in the KV that
 * remains, and gives the rest to KV blocks (capped at what the slots can ever
 * use). (Costing each slot with a quarter-length sequence's KV, the earlier
 * rule, gave the 7B at 32768 tokens on an 80 GB H100 only 55 slots; this
 * rule gives max_num_seqs = 256 there: tests/unit/check_memplan.c.)
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "scheduler/sched.h"

int sched_memplan_compute(const struct cfg_model *c, size_t budget_bytes, int block_size,
                          int max_model_len, int max_num_seqs, int kv_bytes_per_elem,
                          int ssm_bytes_per_elem, struct sched_memplan *out, char *err,
                          size_t errlen)
{
    if (!c || !out || block_size < 1 || max_model_len < 1 || max_num_seqs < 1) {
        snprintf(err, errlen, "memory plan: bad arguments (block size %d, max model len %d, max seqs %d)",
                 block_size, max_model_len, max_num_seqs);
        return -EINVAL;
    }
    size_t kvb = eng_kv_block_bytes(c, block_size, kv_bytes_per_elem);
    size_t slb = eng_slot_bytes(c, ssm_bytes_per_elem);
    size_t per_max = (size_t)((max_model_len + block_size - 1) / block_size);
    size_t need_one = slb + per_max * kvb;
    if (budget_bytes < need_one) {
        snprintf(err, errlen,
                 "memory plan: %.1f MiB cannot hold one sequence of %d tokens (%.1f MiB: one %.2f MiB "
                 "state slot + %zu KV blocks of %.3f MiB); raise --kv-cache-memory / "
                 "--gpu-memory-utilization or lower --max-model-len",
                 budget_bytes / 1048576.0, max_model_len, need_one / 1048576.0, slb / 1048576.0,
                 per_max, kvb / 1048576.0);
        return -ENOMEM;
    }
    size_t slots = (size_t)max_num_seqs;
    if (slb) {
        size_t half = budget_bytes / 2 / slb, keep_one = (budget_bytes - per_max * kvb) / slb;
        if (slots > half) slots = half;
        if (slots > keep_one) slots = keep_one;
    }
    if (slots < 1) slots = 1; /* need_one fits, so one slot always leaves one full sequence */
    size_t blocks = kvb ? (budget_bytes - slots * slb) / kvb : slots * per_max;
    if (blocks > slots * per_max) blocks = slots * per_max; /* more could never be used */
    if (blocks > 0x7fffffff) blocks = 0x7fffffff;
    out->block_size = block_size;
    out->num_kv_blocks = (int)blocks;
    out->num_state_slots = (int)slots;
    out->max_model_len = max_model_len;
    out->kv_block_bytes = kvb;
    out->slot_bytes = slb;
    out->budget_bytes = budget_bytes;
    out->used_bytes = blocks * kvb + slots * slb;
    size_t at_max = blocks / per_max;
    out->max_seqs_at_max_len = (int)(at_max < slots ? at_max : slots);
    out->num_spec_slots = out->spec_seqs = out->spec_tokens = 0; /* sched_memplan_add_spec */
    return 0;
}

void sched_memplan_describe(const struct sched_memplan *p, char *buf, size_t len)
{
    snprintf(buf, len,
             "memory plan: %d KV blocks x %d tokens (%.1f MiB), %d GDN state slots (%.1f MiB), "
             "%d concurrent sequences at max length %d; %.1f of %.1f MiB used",
             p->num_kv_blocks, p->block_size, (double)p->num_kv_blocks * p->kv_block_bytes / 1048576.0,
             p->num_state_slots, (double)p->num_state_slots * p->slot_bytes / 1048576.0,
             p->max_seqs_at_max_len, p->max_model_len, p->used_bytes / 1048576.0,
             p->budget_bytes / 1048576.0);
    size_t n = strlen(buf);
    if (n < len) /* vLLM's "Maximum concurrency for N tokens per request: X.XXx" */
        snprintf(buf + n, len - n, "; maximum concurrency for %d tokens per request: %.2fx",
                 p->max_model_len, sched_memplan_max_concurrency(p));
    n = strlen(buf);
    if (p->num_spec_slots > 0 && n < len) /* sched_memplan_add_spec */
        snprintf(buf + n, len - n, "; %d of the slots for speculation (%d per verifying sequence, %d at once)",
                 p->num_spec_slots, 1 + p->spec_tokens, p->spec_seqs);
}

double sched_memplan_max_concurrency(const struct sched_memplan *p)
{
    if (!p || p->max_model_len < 1 || p->block_size < 1) return 0.0;
    int base_slots = p->num_state_slots - p->num_spec_slots; /* spec slots run no sequence */
    double kv = (double)p->num_kv_blocks * p->block_size / (double)p->max_model_len;
    return kv < base_slots ? kv : (double)base_slots;
}

size_t sched_memplan_gpu_budget(size_t total_bytes, size_t used_bytes, double utilization)
{
    if (!(utilization > 0.0)) return 0;
    if (utilization > 1.0) utilization = 1.0;
    double cap = (double)total_bytes * utilization;
    return cap > (double)used_bytes ? (size_t)(cap - (double)used_bytes) : 0;
}
