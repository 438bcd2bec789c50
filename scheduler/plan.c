/* scheduler/plan.c: plans one step on the engine thread: which sequences run
 * how many tokens, under max_num_batched_tokens and max_num_seqs, with the KV
 * blocks and GDN slots they need; preempts by recompute when KV runs out.
 *
 * Order (the batch contract wants decode rows first):
 *   1. decode rows of running sequences, oldest first; a sequence that needs
 *      a new block when none is free preempts the newest running sequence
 *      (possibly itself);
 *   2. chunks of running, partially prefilled sequences, oldest first;
 *   3. waiting sequences (new or preempted) in FCFS order, admitted while the
 *      budget, the row limit, the slots and the blocks allow; admission stops
 *      at the first one that does not fit, so a long prompt at the head is
 *      never overtaken forever (no starvation).
 * Both lists are kept sorted by (submission order, choice), so "newest" is
 * simply the back of the running list.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "scheduler/sched_internal.h"

/* --- sorted sequence lists --------------------------------------------------- */

static bool seq_before(const struct sched_seq *a, const struct sched_seq *b)
{
    uint64_t oa = a->r->impl->order, ob = b->r->impl->order;
    return oa < ob || (oa == ob && a->choice < b->choice);
}

void seq_list_insert(struct sched_seq ***list, int *n, int *cap, struct sched_seq *q)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 64;
        struct sched_seq **nl = realloc(*list, sizeof(*nl) * (size_t)nc);
        if (!nl) abort(); /* a few pointers; the pools bound the count */
        *list = nl;
        *cap = nc;
    }
    int i = *n;
    while (i > 0 && seq_before(q, (*list)[i - 1])) {
        (*list)[i] = (*list)[i - 1];
        i--;
    }
    (*list)[i] = q;
    (*n)++;
}

void seq_list_remove(struct sched_seq **list, int *n, struct sched_seq *q)
{
    for (int i = 0; i < *n; i++) {
        if (list[i] == q) {
            memmove(list + i, list + i + 1, sizeof(*list) * (size_t)(*n - i - 1));
            (*n)--;
            return;
        }
    }
}

/* --- resources ------------------------------------------------------------------ */

void seq_free_resources(struct sched *s, struct sched_seq *q)
{
    for (int i = 0; i < q->num_blocks; i++) kv_release(&s->kv, q->blocks[i]);
    q->num_blocks = 0;
    if (q->slot >= 0) slot_free(&s->slots, q->slot);
    q->slot = -1;
    for (int t = 0; t < q->num_draft + (q->num_draft > 0); t++) slot_free(&s->slots, q->spec_slots[t]);
    q->num_draft = 0;
    q->num_computed = 0;
    struct sched_req_impl *im = q->r->impl;
    if (q->choice == 0 && !im->forked && im->fork_slots) {
        for (int i = 0; i < im->p.n - 1; i++)
            if (im->fork_slots[i] >= 0) {
                slot_free(&s->slots, im->fork_slots[i]);
                im->fork_slots[i] = -1;
            }
    }
}

static int blocks_for(const struct sched *s, int tokens)
{
    return (tokens + s->block_size - 1) / s->block_size;
}

/* Blocks a sequence still needs to hold `upto` tokens, counting the
 * copy-on-write of a shared block it is about to write into. */
static int blocks_needed(const struct sched *s, const struct sched_seq *q, int upto)
{
    int need = blocks_for(s, upto) - q->num_blocks;
    if (need < 0) need = 0;
    int j = q->num_computed / s->block_size;
    if (j < q->num_blocks && kv_refcount(&s->kv, q->blocks[j]) > 1 && upto > q->num_computed) need++;
    return need;
}

/* Makes q hold blocks for `upto` tokens: copy-on-write of the shared block the
 * next token lands in, then new blocks. Allocates what it can; returns 0 when
 * complete, -ENOSPC when blocks ran out (partial progress is kept), -EIO when
 * the engine's block copy failed. */
static int ensure_blocks(struct sched *s, struct sched_seq *q, int upto)
{
    if (upto <= q->num_computed) return 0;
    int j = q->num_computed / s->block_size;
    if (j < q->num_blocks && kv_refcount(&s->kv, q->blocks[j]) > 1) {
        int nb = kv_alloc(&s->kv);
        if (nb < 0) return -ENOSPC;
        int rc = eng_copy_block(s->cfg.eng, q->blocks[j], nb);
        if (rc < 0) {
            kv_release(&s->kv, nb);
            return -EIO;
        }
        kv_release(&s->kv, q->blocks[j]);
        q->blocks[j] = nb;
    }
    int want = blocks_for(s, upto);
    while (q->num_blocks < want) {
        int b = kv_alloc(&s->kv);
        if (b < 0) return -ENOSPC;
        q->blocks[q->num_blocks++] = b;
    }
    return 0;
}

/* Recompute preemption: drop the sequence's KV and state; it keeps its
 * tokens (prompt + generated) and goes back to the waiting list, where it
 * will be prefilled again from scratch. Its output so far stays delivered. */
static void preempt(struct sched *s, struct sched_seq *q)
{
    seq_free_resources(s, q);
    seq_list_remove(s->running, &s->num_running, q);
    q->state = SEQ_WAITING;
    q->scheduled = false;
    seq_list_insert(&s->waiting, &s->num_waiting, &s->waiting_cap, q);
    s->st_preempt++;
    LOG_DEBUG("preempted %s choice %d (%d tokens)", q->r->impl->id ? q->r->impl->id : "-",
              q->choice, q->num_tokens);
}

/* The newest running sequence after index `after` that is not yet in this
 * step, or NULL. */
static struct sched_seq *pick_victim(struct sched *s, int after)
{
    for (int i = s->num_running - 1; i > after; i--)
        if (!s->running[i]->scheduled) return s->running[i];
    return NULL;
}

static void add_row(struct sched *s, struct sched_seq *q, int ntok)
{
    s->rows[s->num_rows] = q;
    s->row_ntok[s->num_rows] = ntok;
    s->num_rows++;
    q->scheduled = true;
}

/* Prompt log-prob rows a chunk [c0, c0+len) of q would produce. */
static int plp_rows(const struct sched_seq *q, int c0, int len)
{
    const struct sched_req_impl *im = q->r->impl;
    if (im->p.prompt_logprobs < 0 || q->choice != 0 || im->plp_next >= im->p.prompt_len) return 0;
    int lo = im->plp_next - 1, hi = im->p.prompt_len - 1; /* positions [lo, hi) */
    int a = c0 > lo ? c0 : lo, b = c0 + len < hi ? c0 + len : hi;
    return b > a ? b - a : 0;
}

/* Shrinks a chunk so its prompt log-prob rows fit in `avail`. */
static int plp_cap_chunk(const struct sched_seq *q, int c0, int len, int avail)
{
    if (plp_rows(q, c0, len) <= avail) return len;
    int lo = q->r->impl->plp_next - 1;
    int end = lo + avail; /* positions [lo, lo+avail) fit */
    int cap = end - c0;
    return cap < 0 ? 0 : cap;
}

/* Running sequences plus the forks already promised to unforked parents. */
static int seqs_committed(const struct sched *s)
{
    int n = 0;
    for (int i = 0; i < s->num_running; i++) {
        const struct sched_seq *q = s->running[i];
        const struct sched_req_impl *im = q->r->impl;
        n += (q->choice == 0 && !im->forked) ? im->p.n : 1;
    }
    return n;
}

/* Speculative verify for a decode row that already holds its block for the
 * next token: drafts by n-gram lookup, capped so that every emitted token
 * stays within max_tokens, the budget and the logits rows, and only when
 * 1+d spare slots (state after each fed token) and the draft blocks are
 * available. Returns d (0: a plain decode). */
static int plan_drafts(struct sched *s, struct sched_seq *q, int budget, int rows_avail)
{
    int k = s->cfg.num_speculative_tokens;
    if (k <= 0) return 0;
    if (k > SPEC_MAX_TOKENS) k = SPEC_MAX_TOKENS;
    if (s->cfg.spec_disable_by_batch_size > 0 && s->num_running > s->cfg.spec_disable_by_batch_size)
        return 0;
    /* adaptive length: 0 while this sequence's drafts are not worth verifying */
    k = spec_adapt_limit(&q->adapt, k, s->cfg.spec_min_acceptance, s->cfg.spec_probe_interval);
    if (k <= 0) return 0;
    const struct sched_req_impl *im = q->r->impl;
    int left = im->max_tokens - q->num_generated - 1; /* the bonus token is the last */
    if (k > left) k = left;
    if (k > budget) k = budget;
    if (k > rows_avail) k = rows_avail;
    /* spare slots only: one stays for each waiting sequence that the row
     * limit would let in, so speculation never holds back admission */
    int room = s->cfg.max_num_seqs - seqs_committed(s);
    int reserve = s->num_waiting < room ? s->num_waiting : (room > 0 ? room : 0);
    int spare = slot_num_free(&s->slots) - reserve;
    if (k > spare - 1) k = spare - 1;
    if (k <= 0) return 0;
    int nmin = s->cfg.ngram_min > 0 ? s->cfg.ngram_min : SPEC_NGRAM_MIN_DEFAULT;
    int nmax = s->cfg.ngram_max > 0 ? s->cfg.ngram_max : SPEC_NGRAM_MAX_DEFAULT;
    if (nmax < nmin) nmax = nmin;
    int d = spec_ngram_propose(q->tokens, q->num_tokens, nmin, nmax, k, q->spec_draft, NULL);
    if (d <= 0) return 0;
    /* drafts go to positions num_computed+1..+d; blocks that do not come
     * shorten the draft (the ones that did stay with q for its next tokens) */
    (void)ensure_blocks(s, q, q->num_computed + 1 + d);
    int cover = q->num_blocks * s->block_size - q->num_computed - 1;
    if (d > cover) d = cover;
    if (d <= 0) return 0;
    for (int t = 0; t <= d; t++) q->spec_slots[t] = slot_alloc(&s->slots); /* checked free above */
    q->num_draft = d;
    return d;
}

/* Stable partition of the decode rows [0, n): plain decodes first, then the
 * verify rows (the batch contract's order). Returns the plain count. */
static int order_decode_rows(struct sched *s, int n)
{
    int plain = 0;
    for (int i = 0; i < n; i++) {
        if (s->rows[i]->num_draft > 0) continue;
        struct sched_seq *q = s->rows[i];
        int nt = s->row_ntok[i];
        for (int j = i; j > plain; j--) {
            s->rows[j] = s->rows[j - 1];
            s->row_ntok[j] = s->row_ntok[j - 1];
        }
        s->rows[plain] = q;
        s->row_ntok[plain] = nt;
        plain++;
    }
    return plain;
}

int sched_plan(struct sched *s)
{
    s->num_rows = 0;
    int budget = s->cfg.max_num_batched_tokens;
    int plp_avail = SCHED_MAX_PLP_ROWS;
    const int bs = s->block_size;
    for (int i = 0; i < s->num_running; i++) s->running[i]->scheduled = false;

    /* 1. decodes */
    for (int i = 0; i < s->num_running && budget > 0;) {
        struct sched_seq *q = s->running[i];
        if (q->num_generated == 0 || q->num_tokens - q->num_computed != 1) {
            i++;
            continue;
        }
        int rc;
        bool self = false;
        while ((rc = ensure_blocks(s, q, q->num_computed + 1)) == -ENOSPC) {
            struct sched_seq *v = pick_victim(s, i);
            if (!v) {
                self = true;
                break;
            }
            preempt(s, v);
        }
        if (self) {
            preempt(s, q); /* q was the newest: it gives way (list shifted left) */
            continue;
        }
        if (rc < 0) {
            sched_finish_request(s, q->r, SCHED_FINISH_ERROR, rc, "KV block copy failed");
            continue; /* q left the running list */
        }
        int d = plan_drafts(s, q, budget - 1, plp_avail);
        add_row(s, q, 1 + d);
        budget -= 1 + d;
        plp_avail -= d; /* verify rows take logits rows from the same spare pool */
        i++;
    }
    int num_decode = order_decode_rows(s, s->num_rows);
    int num_verify = s->num_rows - num_decode;

    /* 2. running partial prefills */
    for (int i = 0; i < s->num_running && budget > 0; i++) {
        struct sched_seq *q = s->running[i];
        if (q->scheduled) continue;
        int remaining = q->num_tokens - q->num_computed;
        if (remaining <= 0) continue;
        int chunk = remaining < budget ? remaining : budget;
        chunk = plp_cap_chunk(q, q->num_computed, chunk, plp_avail);
        if (chunk <= 0) continue;
        int rc;
        while ((rc = ensure_blocks(s, q, q->num_computed + chunk)) == -ENOSPC) {
            struct sched_seq *v = pick_victim(s, i);
            if (!v) break;
            preempt(s, v);
        }
        if (rc == -EIO) {
            sched_finish_request(s, q->r, SCHED_FINISH_ERROR, rc, "KV block copy failed");
            i--;
            continue;
        }
        if (rc == -ENOSPC) {
            /* run what the blocks it holds cover; the rest waits for blocks */
            int cover = q->num_blocks * bs - q->num_computed;
            int j = q->num_computed / bs;
            if (j < q->num_blocks && kv_refcount(&s->kv, q->blocks[j]) > 1) cover = 0;
            chunk = chunk < cover ? chunk : cover;
            if (chunk <= 0) continue;
        }
        plp_avail -= plp_rows(q, q->num_computed, chunk);
        add_row(s, q, chunk);
        budget -= chunk;
    }

    /* 3. admission, FCFS */
    int committed = seqs_committed(s);
    while (s->num_waiting > 0 && budget > 0 && s->num_rows < s->cfg.max_num_seqs) {
        struct sched_seq *q = s->waiting[0];
        struct sched_req_impl *im = q->r->impl;
        int need_slots = (q->choice == 0 && !im->forked) ? im->p.n : 1;
        if (committed + need_slots > s->cfg.max_num_seqs) break;
        if (slot_num_free(&s->slots) < need_slots) break;
        int remaining = q->num_tokens - q->num_computed;
        int chunk = remaining < budget ? remaining : budget;
        chunk = plp_cap_chunk(q, q->num_computed, chunk, plp_avail);
        if (chunk <= 0) break;
        if (blocks_needed(s, q, q->num_computed + chunk) > kv_num_free(&s->kv)) break;
        /* admit */
        seq_list_remove(s->waiting, &s->num_waiting, q);
        q->slot = slot_alloc(&s->slots);
        if (need_slots > 1)
            for (int k = 0; k < im->p.n - 1; k++) im->fork_slots[k] = slot_alloc(&s->slots);
        (void)ensure_blocks(s, q, q->num_computed + chunk); /* cannot fail: checked */
        q->state = SEQ_RUNNING;
        seq_list_insert(&s->running, &s->num_running, &s->running_cap, q);
        committed += need_slots;
        plp_avail -= plp_rows(q, q->num_computed, chunk);
        add_row(s, q, chunk);
        budget -= chunk;
    }
    s->num_decode_rows = num_decode;
    s->num_verify_rows = num_verify;
    return s->num_rows;
}
