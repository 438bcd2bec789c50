/* tests/gpu/check_gpu_chunk.c: the chunked GDN prefill kernel (kern_gdn_chunk)
 * against the CPU reference recurrence (kernels/cpu/gdn_recurrent.c) and
 * against the CUDA recurrent kernel, on fresh random inputs: ragged varlen
 * batches mixing lengths 1..1000 (partial, exact and multi-chunk sequences),
 * with and without initial state, a slot < 0 sequence, fp32 and bf16 state,
 * small shapes, Hv = 2*Hk, a partial V slice and the 7B shape incl. a long
 * sequence; the batch starts at a nonzero token (qs[0] > 0). Outputs are
 * poisoned (NaN) so unwritten elements fail, and rows outside the batch must
 * stay untouched. The emulator (gu_emulated) runs smaller batches.
 *
 * GPU machine (make test-gpu) and the CPU emulator; CK_NOFORK, one thread.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/gdn_chunk.h"
#include "kernels/cuda/gdn_recurrent.h"
#include "tests/gpu/gpu_util.h"

#define F(n) ((float *)calloc((size_t)(n), sizeof(float)))

struct cc_shape {
    int Hk, Hv, Dk, Dv;
};

/* One ragged batch (gu_gdn_batch): lens[N] tokens per sequence after 5
 * leading rows that belong to no sequence. Sequence 2 (when N > 2) has slot -1. */
static void chunk_case(struct cc_shape sh, const int *lens, int N, int bf16_state, double tol,
                       uint64_t seed)
{
    int pad = 5;
    struct gu_gdn_batch *b =
        gu_gdn_batch_create(sh.Hk, sh.Hv, sh.Dk, sh.Dv, lens, N, pad, N > 2 ? 2 : -1,
                            bf16_state, seed);
    int Hk = b->Hk, Hv = b->Hv, Dk = b->Dk, Dv = b->Dv, VD = b->VD, T = b->T,
        nslots = b->nslots;
    size_t se = b->se;
    float *o = F((size_t)T * VD), *o_rec = F((size_t)T * VD), *st_got = F(nslots * se),
          *st_rec = F(nslots * se);

    int nmax = kern_gdn_chunk_count_max(T - pad, N);
    int32_t *plan = calloc(kern_gdn_chunk_plan_ints(N, nmax), 4);
    int nc = kern_gdn_chunk_plan(b->qs, N, plan);
    ck_assert_int_ge(nc, 1);
    ck_assert_int_le(nc, nmax);
    size_t wb = kern_gdn_chunk_work_bytes(nc, Hv, Dk, Dv);
    ck_assert(wb > 0);
    void *dst2 = gu_state_up(b->st, nslots * se, bf16_state);
    float *dO = gu_dev((size_t)T * VD * 4), *dO2 = gu_dev((size_t)T * VD * 4);
    int32_t *dplan = gu_dev(kern_gdn_chunk_plan_ints(N, nc) * 4);
    void *work = gu_dev(wb);
    gu_up(dplan, plan, kern_gdn_chunk_plan_ints(N, nc) * 4);
    float scale = 1.0f / sqrtf((float)Dk);
    ck_assert_int_eq(kern_gdn_chunk(b->dy, b->dg, b->db, N, dplan, nc, b->dsl, b->dh, Hk, Hv, Dk,
                                    Dv, scale, b->dst, bf16_state, se, dO, work, wb, 0),
                     0);
    /* the recurrent kernel is the emulator's slowest (a shuffle per token):
     * there it joins only the small cases */
    int rec = !gu_emulated() || (size_t)T * VD <= 200000;
    if (rec)
        ck_assert_int_eq(kern_gdn_recurrent(b->dy, b->dg, b->db, N, b->dq, b->dsl, b->dh, Hk, Hv,
                                            Dk, Dv, scale, dst2, bf16_state, se, dO2, 0),
                         0);
    gu_sync();
    gu_down(o, dO, (size_t)T * VD * 4);
    gu_state_down(st_got, b->dst, nslots * se, bf16_state);
    if (rec) {
        gu_down(o_rec, dO2, (size_t)T * VD * 4);
        gu_state_down(st_rec, dst2, nslots * se, bf16_state);
    }

    /* rows before the batch stay poisoned (never written) */
    int touched = 0;
    for (size_t i = 0; i < (size_t)pad * VD; i++)
        touched += !isnan(o[i]);
    ck_assert_msg(touched == 0, "%d elements of rows outside the batch were written", touched);
    int nan;
    char nm[128];
    size_t off = (size_t)pad * VD, n = (size_t)(T - pad) * VD;
    snprintf(nm, sizeof nm, "chunk o Hk%d Hv%d Dk%d Dv%d N=%d T=%d%s", Hk, Hv, Dk, Dv, N, T - pad,
             bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(o + off, b->o_ref + off, n, &nan), nan, tol);
    snprintf(nm, sizeof nm, "chunk state (all slots)%s", bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(st_got, b->st_ref, nslots * se, &nan), nan, tol);
    if (rec) {
        GU_EXPECT("chunk vs kern_gdn_recurrent o", gu_rel_err(o + off, o_rec + off, n, &nan), nan,
                  tol);
        GU_EXPECT("chunk vs kern_gdn_recurrent state",
                  gu_rel_err(st_got, st_rec, nslots * se, &nan), nan, tol);
    }
    /* the slot -1 sequence and the two spare slots: untouched */
    if (!bf16_state)
        for (int s = 0; s < nslots; s++) {
            int used = 0;
            for (int i = 0; i < N; i++)
                used |= b->slot[i] == s;
            if (!used)
                ck_assert_msg(memcmp(st_got + s * se, b->st + s * se, se * 4) == 0,
                              "unused slot %d was written", s);
        }
    free(o), free(o_rec), free(st_got), free(st_rec), free(plan);
    gu_gdn_batch_destroy(b);
    gu_free_all();
}

static const struct cc_shape SMALL = {2, 4, 32, 64}, B7 = {30, 30, 96, 192};

START_TEST(test_chunk_small)
{
    int a[8] = {1, 7, 63, 64, 65, 130, 300, 1000};
    int na = gu_emulated() ? 6 : 8;
    chunk_case(SMALL, a, na, 0, 1e-2, 700);
    chunk_case(SMALL, a, na, 1, 1e-2, 701); /* bf16 state */
    int b[3] = {129, 5, 1};
    chunk_case((struct cc_shape){1, 3, 48, 80}, b, 3, 0, 1e-2, 702); /* partial V slice */
    chunk_case((struct cc_shape){1, 1, 16, 16}, b, 3, 0, 1e-2, 703);
    int c[1] = {1};
    chunk_case(SMALL, c, 1, 0, 1e-2, 704); /* a lone length-1 sequence */
}
END_TEST

START_TEST(test_chunk_7b)
{
    int a[8] = {1, 7, 63, 64, 65, 130, 300, 1000};
    int e[3] = {1, 65, 130};
    if (gu_emulated())
        chunk_case(B7, e, 3, 0, 1e-2, 710);
    else
        chunk_case(B7, a, 8, 0, 1e-2, 710);
    int b[3] = {200, 1, 64};
    chunk_case(B7, b, gu_emulated() ? 2 : 3, 1, 1e-2, 711); /* bf16 state */
}
END_TEST

START_TEST(test_chunk_long)
{
    int a[2] = {4133, 3};
    int e[1] = {700};
    if (gu_emulated())
        chunk_case(B7, e, 1, 0, 1e-2, 720);
    else
        chunk_case(B7, a, 2, 0, 1e-2, 720);
    int b[1] = {gu_emulated() ? 1500 : 8192};
    chunk_case(SMALL, b, 1, 0, 1e-2, 721);
}
END_TEST

START_TEST(test_chunk_contract)
{
    int32_t qs[5] = {3, 3, 67, 68, 200}, plan[64];
    ck_assert_int_eq(kern_gdn_chunk_count_max(197, 4), 7);
    int nc = kern_gdn_chunk_plan(qs, 4, plan);
    ck_assert_int_eq(nc, 5); /* 0 + 1 + 1 + 3 chunks */
    int want[5][2] = {{3, 64}, {67, 1}, {68, 64}, {132, 64}, {196, 4}};
    ck_assert_int_eq(plan[0], 0);
    ck_assert_int_eq(plan[1], 0);
    ck_assert_int_eq(plan[2], 1);
    ck_assert_int_eq(plan[3], 2);
    ck_assert_int_eq(plan[4], 5);
    for (int c = 0; c < 5; c++) {
        ck_assert_int_eq(plan[5 + 2 * c], want[c][0]);
        ck_assert_int_eq(plan[6 + 2 * c], want[c][1]);
    }
    int32_t bad[3] = {0, 5, 4};
    ck_assert_int_eq(kern_gdn_chunk_plan(bad, 2, plan), -1);
    ck_assert_uint_eq(kern_gdn_chunk_work_bytes(1, 30, 100, 192), 0);
    ck_assert_uint_eq(kern_gdn_chunk_work_bytes(1, 30, 96, 100), 0);
    ck_assert_uint_eq(kern_gdn_chunk_work_bytes(2, 30, 96, 192), 2 * 30 * (128 * (288 + 128) + 4));
    void *w = gu_dev(1024);
    ck_assert_int_eq(kern_gdn_chunk(NULL, NULL, NULL, 1, NULL, 1, NULL, NULL, 2, 4, 100, 64,
                                    1.0f, NULL, 0, 0, NULL, w, 1024, 0),
                     cudaErrorInvalidValue);
    ck_assert_int_eq(kern_gdn_chunk(NULL, NULL, NULL, 1, NULL, 1, NULL, NULL, 2, 4, 32, 64,
                                    1.0f, NULL, 0, 0, NULL, w, 1024, 0),
                     cudaErrorInvalidValue); /* workspace too small */
    ck_assert_int_eq(kern_gdn_chunk(NULL, NULL, NULL, 0, NULL, 0, NULL, NULL, 2, 4, 32, 64, 1.0f,
                                    NULL, 0, 0, NULL, NULL, 0, 0),
                     0);
    gu_free_all();
}
END_TEST

Suite *gpu_chunk_suite(void)
{
    Suite *s = suite_create("gpu_chunk");
    TCase *tc = tcase_create("chunk");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_chunk_contract);
    tcase_add_test(tc, test_chunk_small);
    tcase_add_test(tc, test_chunk_7b);
    tcase_add_test(tc, test_chunk_long);
    suite_add_tcase(s, tc);
    return s;
}
