/* tests/gpu/check_gpu_chunk.c: the chunked GDN prefill kernel (kern_gdn_chunk)
 * against the CPU reference recurrence (kernels/cpu/gdn_recurrent.c) and
 * against the CUDA recurrent kernel, on fresh random inputs: ragged varlen
 * batches mixing lengths 1..1000 (partial, exact and multi-chunk sequences),
 * with and without initial state, a slot < 0 sequence, fp32 and bf16 state,
 * small shapes, Hv = 2*Hk, a partial V slice and the 7B shape incl. a long
 * sequence; the batch starts at a nonzero token (qs[0] > 0). Outputs are
 * poisoned (NaN) so unwritten elements fail, and rows outside the batch must
 * stay untouched. Both variants (fused scan, split states scan + output
 * kernel) run forced on every case and must agree to 1e-6; the stage-only
 * flags and the auto rule are checked too. The emulator (gu_emulated) runs
 * smaller batches.
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

/* Checks of one variant's result on batch b: o against the CPU reference,
 * rows outside the batch untouched, the state slots against the reference
 * and (fp32 state) the unused slots untouched. */
static void chunk_check(const struct gu_gdn_batch *b, const char *var, const float *o,
                        const float *st_got, double tol)
{
    int VD = b->VD, pad = b->pad, nslots = b->nslots, N = b->N;
    size_t se = b->se;
    /* rows before the batch stay poisoned (never written) */
    int touched = 0;
    for (size_t i = 0; i < (size_t)pad * VD; i++)
        touched += !isnan(o[i]);
    ck_assert_msg(touched == 0, "%s: %d elements of rows outside the batch were written", var,
                  touched);
    int nan;
    char nm[128];
    size_t off = (size_t)pad * VD, n = (size_t)(b->T - pad) * VD;
    snprintf(nm, sizeof nm, "chunk %s o Hk%d Hv%d Dk%d Dv%d N=%d T=%d%s", var, b->Hk, b->Hv,
             b->Dk, b->Dv, N, b->T - pad, b->bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(o + off, b->o_ref + off, n, &nan), nan, tol);
    snprintf(nm, sizeof nm, "chunk %s state (all slots)%s", var, b->bf16_state ? " bf16" : "");
    GU_EXPECT(nm, gu_rel_err(st_got, b->st_ref, nslots * se, &nan), nan, tol);
    /* the slot -1 sequence and the two spare slots: untouched */
    if (!b->bf16_state)
        for (int s = 0; s < nslots; s++) {
            int used = 0;
            for (int i = 0; i < N; i++)
                used |= b->slot[i] == s;
            if (!used)
                ck_assert_msg(memcmp(st_got + s * se, b->st + s * se, se * 4) == 0,
                              "%s: unused slot %d was written", var, s);
        }
}

/* One ragged batch (gu_gdn_batch): lens[N] tokens per sequence after 5
 * leading rows that belong to no sequence. Sequence 2 (when N > 2) has slot
 * -1. Both variants forced, each from its own copy of the initial state,
 * each against the CPU reference; the split variant's o and state must equal
 * the fused variant's (same bf16 operands, same fp32 accumulation order). */
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
    float *o = F((size_t)T * VD), *o_sp = F((size_t)T * VD), *o_rec = F((size_t)T * VD),
          *st_got = F(nslots * se), *st_sp = F(nslots * se), *st_rec = F(nslots * se);

    int nmax = kern_gdn_chunk_count_max(T - pad, N);
    int32_t *plan = calloc(kern_gdn_chunk_plan_ints(N, nmax), 4);
    int nc = kern_gdn_chunk_plan(b->qs, N, plan);
    ck_assert_int_ge(nc, 1);
    ck_assert_int_le(nc, nmax);
    size_t wf = kern_gdn_chunk_work_bytes(nc, Hv, Dk, Dv),
           wb = kern_gdn_chunk_split_work_bytes(nc, Hv, Dk, Dv);
    ck_assert(wf > 0);
    ck_assert(wb >= wf + (size_t)nc * Hv * Dv * (Dk + 64) * 2);
    void *dst2 = gu_state_up(b->st, nslots * se, bf16_state),
         *dst3 = gu_state_up(b->st, nslots * se, bf16_state);
    float *dO = gu_dev((size_t)T * VD * 4), *dO2 = gu_dev((size_t)T * VD * 4),
          *dO3 = gu_dev((size_t)T * VD * 4);
    int32_t *dplan = gu_dev(kern_gdn_chunk_plan_ints(N, nc) * 4);
    void *work = gu_dev(wb);
    gu_up(dplan, plan, kern_gdn_chunk_plan_ints(N, nc) * 4);
    float scale = 1.0f / sqrtf((float)Dk);
    ck_assert_int_eq(kern_gdn_chunk_ex(b->dy, b->dg, b->db, N, dplan, nc, b->dsl, b->dh, Hk, Hv,
                                       Dk, Dv, scale, b->dst, bf16_state, se, dO, work, wb, 0,
                                       KERN_GDN_CHUNK_FUSED),
                     0);
    ck_assert_int_eq(kern_gdn_chunk_ex(b->dy, b->dg, b->db, N, dplan, nc, b->dsl, b->dh, Hk, Hv,
                                       Dk, Dv, scale, dst3, bf16_state, se, dO3, work, wb, 0,
                                       KERN_GDN_CHUNK_SPLIT),
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
    gu_down(o_sp, dO3, (size_t)T * VD * 4);
    gu_state_down(st_sp, dst3, nslots * se, bf16_state);
    if (rec) {
        gu_down(o_rec, dO2, (size_t)T * VD * 4);
        gu_state_down(st_rec, dst2, nslots * se, bf16_state);
    }

    chunk_check(b, "fused", o, st_got, tol);
    chunk_check(b, "split", o_sp, st_sp, tol);
    int nan;
    size_t off = (size_t)pad * VD, n = (size_t)(T - pad) * VD;
    GU_EXPECT("chunk split vs fused o", gu_rel_err(o_sp + off, o + off, n, &nan), nan, 1e-6);
    GU_EXPECT("chunk split vs fused state", gu_rel_err(st_sp, st_got, nslots * se, &nan), nan,
              1e-6);
    if (rec) {
        GU_EXPECT("chunk vs kern_gdn_recurrent o", gu_rel_err(o + off, o_rec + off, n, &nan), nan,
                  tol);
        GU_EXPECT("chunk vs kern_gdn_recurrent state",
                  gu_rel_err(st_got, st_rec, nslots * se, &nan), nan, tol);
    }
    free(o), free(o_sp), free(o_rec), free(st_got), free(st_sp), free(st_rec), free(plan);
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

/* One call of kern_gdn_chunk_ex on batch b from a fresh copy of its initial
 * state, into a fresh poisoned o (device pointers returned). */
static void flags_run(const struct gu_gdn_batch *b, const int32_t *dplan, int nc, void *work,
                      size_t wb, int flags, float **dO, void **dst)
{
    if (!*dst) {
        *dst = gu_state_up(b->st, b->nslots * b->se, 0);
        *dO = gu_dev((size_t)b->T * b->VD * 4);
    }
    ck_assert_int_eq(kern_gdn_chunk_ex(b->dy, b->dg, b->db, b->N, dplan, nc, b->dsl, b->dh, b->Hk,
                                       b->Hv, b->Dk, b->Dv, 1.0f / sqrtf((float)b->Dk), *dst, 0,
                                       b->se, *dO, work, wb, 0, flags),
                     0);
}

/* o and state of a run, compared with the reference run's */
static void flags_cmp(const struct gu_gdn_batch *b, const char *nm, const float *dO,
                      const void *dst, const float *o_ref, const float *st_ref, double tol)
{
    size_t no = (size_t)b->T * b->VD, ns = b->nslots * b->se;
    float *o = F(no), *st = F(ns);
    gu_sync();
    gu_down(o, dO, no * 4);
    gu_down(st, dst, ns * 4);
    int nan;
    size_t off = (size_t)b->pad * b->VD;
    char n1[96], n2[96];
    snprintf(n1, sizeof n1, "%s o", nm);
    snprintf(n2, sizeof n2, "%s state", nm);
    GU_EXPECT(n1, gu_rel_err(o + off, o_ref + off, no - off, &nan), nan, tol);
    GU_EXPECT(n2, gu_rel_err(st, st_ref, ns, &nan), nan, tol);
    free(o), free(st);
}

/* The auto rule, the flag checks, and the stage-only runs the bench times:
 * prep then the scan stage alone (fused), prep, states scan and output kernel
 * alone (split), and auto with either workspace size all give the full fused
 * call's o and state. */
START_TEST(test_chunk_flags)
{
    int smax = kern_gdn_chunk_split_seqs_max(30, 192);
    if (gu_emulated()) /* 132 SMs: 3 x 90 N > 132, the 7B never splits */
        ck_assert_int_eq(smax, 0);
    for (int N = 1; N <= smax + 1; N++) {
        ck_assert_int_eq(kern_gdn_chunk_auto_split(N, 128 * N, 30, 192), N <= smax);
        ck_assert_int_eq(kern_gdn_chunk_auto_split(N, 4 * N - 1, 30, 192), 0); /* short */
    }
    ck_assert_int_eq(kern_gdn_chunk_auto_split(0, 128, 30, 192), 0);

    int lens[3] = {700, 7, 300}; /* 17 chunks: long enough for the auto rule */
    struct gu_gdn_batch *b = gu_gdn_batch_create(2, 4, 32, 64, lens, 3, 5, 2, 0, 730);
    int32_t plan[64];
    int nc = kern_gdn_chunk_plan(b->qs, 3, plan);
    ck_assert_int_eq(kern_gdn_chunk_auto_split(3, nc, 4, 64), 1);
    int32_t *dplan = gu_dev(kern_gdn_chunk_plan_ints(3, nc) * 4);
    gu_up(dplan, plan, kern_gdn_chunk_plan_ints(3, nc) * 4);
    size_t wf = kern_gdn_chunk_work_bytes(nc, 4, 32, 64),
           wb = kern_gdn_chunk_split_work_bytes(nc, 4, 32, 64);
    void *work = gu_dev(wb);
    int bad[6] = {KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_SPLIT,
                  KERN_GDN_CHUNK_PREP_ONLY | KERN_GDN_CHUNK_SCAN_ONLY,
                  KERN_GDN_CHUNK_STATES_ONLY | KERN_GDN_CHUNK_OUT_ONLY,
                  KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_STATES_ONLY,
                  KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_OUT_ONLY, 64};
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(kern_gdn_chunk_ex(b->dy, b->dg, b->db, 3, dplan, nc, b->dsl, b->dh, 2, 4,
                                           32, 64, 1.0f, b->dst, 0, b->se, NULL, work, wb, 0,
                                           bad[i]),
                         cudaErrorInvalidValue);
    /* split with only the fused workspace */
    ck_assert_int_eq(kern_gdn_chunk_ex(b->dy, b->dg, b->db, 3, dplan, nc, b->dsl, b->dh, 2, 4, 32,
                                       64, 1.0f, b->dst, 0, b->se, NULL, work, wf, 0,
                                       KERN_GDN_CHUNK_SPLIT),
                     cudaErrorInvalidValue);

    size_t no = (size_t)b->T * b->VD, ns = b->nslots * b->se;
    float *o_ref = F(no), *st_ref = F(ns), *dO = NULL;
    void *dst = NULL;
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_FUSED, &dO, &dst);
    gu_sync();
    gu_down(o_ref, dO, no * 4);
    gu_down(st_ref, dst, ns * 4);
    int nan;
    GU_EXPECT("chunk fused vs CPU reference o",
              gu_rel_err(o_ref + 5 * b->VD, b->o_ref + 5 * b->VD, no - 5 * b->VD, &nan), nan,
              1e-2);
    dO = NULL, dst = NULL;
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_PREP_ONLY, &dO, &dst);
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_FUSED | KERN_GDN_CHUNK_SCAN_ONLY, &dO, &dst);
    flags_cmp(b, "chunk fused prep + scan alone", dO, dst, o_ref, st_ref, 0.0);
    dO = NULL, dst = NULL;
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_PREP_ONLY, &dO, &dst);
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_SPLIT | KERN_GDN_CHUNK_SCAN_ONLY, &dO, &dst);
    flags_cmp(b, "chunk split prep + scan alone", dO, dst, o_ref, st_ref, 1e-6);
    dO = NULL, dst = NULL;
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_PREP_ONLY, &dO, &dst);
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_STATES_ONLY, &dO, &dst);
    flags_run(b, dplan, nc, work, wb, KERN_GDN_CHUNK_OUT_ONLY, &dO, &dst);
    flags_cmp(b, "chunk split prep + states + out alone", dO, dst, o_ref, st_ref, 1e-6);
    /* auto: which variant ran shows in the split part of the workspace
     * (re-poisoned first; the split scan writes chunk 0's zero initial
     * state there, sequence 0 having no initial state) */
    size_t soff = wb - (size_t)nc * 4 * 64 * (32 + 64) * 2;
    uint32_t probe[4];
    for (int pass = 0; pass < 2; pass++) {
        ck_assert(cudaMemset((char *)work + soff, 0xFF, wb - soff) == cudaSuccess);
        dO = NULL, dst = NULL;
        flags_run(b, dplan, nc, work, pass ? wb : wf, KERN_GDN_CHUNK_AUTO, &dO, &dst);
        flags_cmp(b, pass ? "chunk auto, split-size workspace" : "chunk auto, fused-size workspace",
                  dO, dst, o_ref, st_ref, 1e-6);
        gu_down(probe, (char *)work + soff, sizeof probe);
        ck_assert_msg(probe[0] == (pass ? 0u : 0xFFFFFFFFu), "auto ran the %s variant",
                      probe[0] == 0xFFFFFFFFu ? "fused" : "split");
    }
    free(o_ref), free(st_ref);
    gu_gdn_batch_destroy(b);
    gu_free_all();
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
    /* split: the fused part rounded up to 256 bytes, then Dv (Dk + 64) bf16
     * per chunk and head */
    ck_assert_uint_eq(kern_gdn_chunk_split_work_bytes(2, 30, 96, 192),
                      (2 * 30 * (128 * (288 + 128) + 4) + 255) / 256 * 256 +
                          2 * 30 * 192 * 160 * 2);
    ck_assert_uint_eq(kern_gdn_chunk_split_work_bytes(1, 30, 96, 100), 0);
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
    tcase_add_test(tc, test_chunk_flags);
    tcase_add_test(tc, test_chunk_small);
    tcase_add_test(tc, test_chunk_7b);
    tcase_add_test(tc, test_chunk_long);
    suite_add_tcase(s, tc);
    return s;
}
