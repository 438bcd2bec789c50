/* scheduler/slots.h: the GDN state-slot pool.
 *
 * defines: struct slot_pool, slot_pool_init, slot_pool_fini, slot_alloc,
 *          slot_free, slot_num_free, slot_num_used, slot_is_used,
 *          slot_pool_check
 *
 * Threads: engine thread only.
 *
 * One slot holds a sequence's recurrent state (conv + SSM) for every GDN
 * layer. Unlike KV blocks, a slot is never shared: each running sequence owns
 * exactly one, and an n>1 fork copies the parent's slot into a fresh one
 * (eng_copy_slot). Kept apart from the KV pool because the two run out
 * independently and admission must check both.
 */
#ifndef DS_SCHEDULER_SLOTS_H
#define DS_SCHEDULER_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slot_pool {
    int num_slots;
    unsigned char *used;  /* [num_slots] */
    int32_t *free_ids;    /* [num_slots] stack */
    int nfree;
};

/* Returns 0, -EINVAL (num_slots < 1) or -ENOMEM. */
int slot_pool_init(struct slot_pool *p, int num_slots);
void slot_pool_fini(struct slot_pool *p);
/* A free slot id, or -1 when all are in use. */
int slot_alloc(struct slot_pool *p);
/* Returns a used slot to the pool. */
void slot_free(struct slot_pool *p, int s);
static inline int slot_num_free(const struct slot_pool *p) { return p->nfree; }
static inline int slot_num_used(const struct slot_pool *p) { return p->num_slots - p->nfree; }
bool slot_is_used(const struct slot_pool *p, int s);
/* Free stack == unused slots, each once. Returns 0 or -1 with err. */
int slot_pool_check(const struct slot_pool *p, char *err, size_t errlen);

#endif
