/* scheduler/kv_blocks.h: the paged KV block allocator (attention layers).
 *
 * defines: struct kv_pool, kv_pool_init, kv_pool_fini, kv_alloc, kv_retain,
 *          kv_release, kv_refcount, kv_num_free, kv_num_used, kv_pool_check
 *
 * Threads: engine thread only (the scheduler owns every block index).
 *
 * A block id indexes the same block in every attention layer's K and V
 * arrays. Blocks are refcounted so n>1 completions can share the full blocks
 * of their common prompt; a block returns to the free list when its last
 * holder releases it. The free list is LIFO so recently freed (cache-warm)
 * blocks are reused first.
 */
#ifndef DS_SCHEDULER_KV_BLOCKS_H
#define DS_SCHEDULER_KV_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

struct kv_pool {
    int num_blocks;
    int32_t *refcnt;   /* [num_blocks] holders; 0 = free */
    int32_t *free_ids; /* [num_blocks] stack of free ids, top at nfree-1 */
    int nfree;
};

/* Returns 0, -EINVAL (num_blocks < 1) or -ENOMEM. */
int kv_pool_init(struct kv_pool *p, int num_blocks);
void kv_pool_fini(struct kv_pool *p);
/* A free block with refcount 1, or -1 when none is free. */
int kv_alloc(struct kv_pool *p);
/* Adds a holder to a used block (sharing). */
void kv_retain(struct kv_pool *p, int b);
/* Drops a holder; the block is freed at zero. */
void kv_release(struct kv_pool *p, int b);
int kv_refcount(const struct kv_pool *p, int b);
static inline int kv_num_free(const struct kv_pool *p) { return p->nfree; }
static inline int kv_num_used(const struct kv_pool *p) { return p->num_blocks - p->nfree; }
/* Consistency check (tests, debug): the free stack holds exactly the blocks
 * with refcount 0, each once. When expect_ref is non-NULL, also checks
 * refcnt[b] == expect_ref[b] for every block. Returns 0 or -1 with err. */
int kv_pool_check(const struct kv_pool *p, const int32_t *expect_ref, char *err, size_t errlen);

#endif
