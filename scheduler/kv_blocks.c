/* scheduler/kv_blocks.c: paged KV block allocator with reference counts.
 * Engine thread only; see kv_blocks.h for the contract. */
#include "scheduler/kv_blocks.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kv_pool_init(struct kv_pool *p, int num_blocks)
{
    memset(p, 0, sizeof(*p));
    if (num_blocks < 1) return -EINVAL;
    p->refcnt = calloc((size_t)num_blocks, sizeof(int32_t));
    p->free_ids = malloc(sizeof(int32_t) * (size_t)num_blocks);
    if (!p->refcnt || !p->free_ids) {
        kv_pool_fini(p);
        return -ENOMEM;
    }
    p->num_blocks = num_blocks;
    /* push in reverse so block 0 is handed out first */
    for (int i = 0; i < num_blocks; i++) p->free_ids[i] = num_blocks - 1 - i;
    p->nfree = num_blocks;
    return 0;
}

void kv_pool_fini(struct kv_pool *p)
{
    free(p->refcnt);
    free(p->free_ids);
    memset(p, 0, sizeof(*p));
}

int kv_alloc(struct kv_pool *p)
{
    if (p->nfree == 0) return -1;
    int b = p->free_ids[--p->nfree];
    assert(p->refcnt[b] == 0);
    p->refcnt[b] = 1;
    return b;
}

void kv_retain(struct kv_pool *p, int b)
{
    assert(b >= 0 && b < p->num_blocks && p->refcnt[b] > 0);
    p->refcnt[b]++;
}

void kv_release(struct kv_pool *p, int b)
{
    assert(b >= 0 && b < p->num_blocks && p->refcnt[b] > 0);
    if (--p->refcnt[b] == 0) p->free_ids[p->nfree++] = b;
}

int kv_refcount(const struct kv_pool *p, int b)
{
    if (b < 0 || b >= p->num_blocks) return -1;
    return p->refcnt[b];
}

int kv_pool_check(const struct kv_pool *p, const int32_t *expect_ref, char *err, size_t errlen)
{
    int rc = 0;
    if (p->num_blocks < 1) return 0;
    unsigned char *seen = calloc((size_t)(unsigned)p->num_blocks, 1);
    if (!seen) return -1;
    int zero = 0;
    for (int b = 0; b < p->num_blocks; b++) {
        if (p->refcnt[b] < 0) {
            snprintf(err, errlen, "block %d has refcount %d", b, p->refcnt[b]);
            rc = -1;
            goto out;
        }
        if (p->refcnt[b] == 0) zero++;
        if (expect_ref && p->refcnt[b] != expect_ref[b]) {
            snprintf(err, errlen, "block %d has refcount %d, holders say %d", b, p->refcnt[b],
                     expect_ref[b]);
            rc = -1;
            goto out;
        }
    }
    if (zero != p->nfree) {
        snprintf(err, errlen, "%d blocks have refcount 0 but %d are on the free list", zero, p->nfree);
        rc = -1;
        goto out;
    }
    for (int i = 0; i < p->nfree; i++) {
        int b = p->free_ids[i];
        if (b < 0 || b >= p->num_blocks || seen[b] || p->refcnt[b] != 0) {
            snprintf(err, errlen, "free list entry %d (block %d) is invalid or duplicated", i, b);
            rc = -1;
            goto out;
        }
        seen[b] = 1;
    }
out:
    free(seen);
    return rc;
}
