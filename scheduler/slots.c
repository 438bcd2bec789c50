/* scheduler/slots.c: GDN state-slot pool (one exclusive slot per running
 * sequence). Engine thread only; see slots.h. */
#include "scheduler/slots.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int slot_pool_init(struct slot_pool *p, int num_slots)
{
    memset(p, 0, sizeof(*p));
    if (num_slots < 1) return -EINVAL;
    p->used = calloc((size_t)num_slots, 1);
    p->free_ids = malloc(sizeof(int32_t) * (size_t)num_slots);
    if (!p->used || !p->free_ids) {
        slot_pool_fini(p);
        return -ENOMEM;
    }
    p->num_slots = num_slots;
    for (int i = 0; i < num_slots; i++) p->free_ids[i] = num_slots - 1 - i;
    p->nfree = num_slots;
    return 0;
}

void slot_pool_fini(struct slot_pool *p)
{
    free(p->used);
    free(p->free_ids);
    memset(p, 0, sizeof(*p));
}

int slot_alloc(struct slot_pool *p)
{
    if (p->nfree == 0) return -1;
    int s = p->free_ids[--p->nfree];
    assert(!p->used[s]);
    p->used[s] = 1;
    return s;
}

void slot_free(struct slot_pool *p, int s)
{
    assert(s >= 0 && s < p->num_slots && p->used[s]);
    p->used[s] = 0;
    p->free_ids[p->nfree++] = s;
}

bool slot_is_used(const struct slot_pool *p, int s)
{
    return s >= 0 && s < p->num_slots && p->used[s];
}

int slot_pool_check(const struct slot_pool *p, char *err, size_t errlen)
{
    int unused = 0;
    for (int s = 0; s < p->num_slots; s++) unused += !p->used[s];
    if (unused != p->nfree) {
        snprintf(err, errlen, "%d slots unused but %d on the free list", unused, p->nfree);
        return -1;
    }
    if (p->num_slots < 1) return 0;
    unsigned char *seen = calloc((size_t)(unsigned)p->num_slots, 1);
    if (!seen) return -1;
    int rc = 0;
    for (int i = 0; i < p->nfree; i++) {
        int s = p->free_ids[i];
        if (s < 0 || s >= p->num_slots || seen[s] || p->used[s]) {
            snprintf(err, errlen, "free list entry %d (slot %d) is invalid or duplicated", i, s);
            rc = -1;
            break;
        }
        seen[s] = 1;
    }
    free(seen);
    return rc;
}
