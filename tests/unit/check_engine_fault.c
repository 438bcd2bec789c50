/* tests/unit/check_engine_fault.c: engine faults during a step (issue 8
 * item 6), injected into the real CPU backend: a copy of eng_backend_cpu whose
 * forward returns a device error (-EIO) or out-of-memory (-ENOMEM) on chosen
 * calls, under the real scheduler on a tiny random OLMo Hybrid checkpoint.
 *
 *   - a failed step finishes exactly the requests of that step with
 *     SCHED_FINISH_ERROR, the engine's code and a message; requests that were
 *     still queued are not affected and finish normally; KV blocks and state
 *     slots all come back; a later request gives the same tokens as on an
 *     engine that never failed;
 *   - with the engine thread running and every step failing (a dead
 *     device), every waiting client is woken with an error within a bounded
 *     time (never a silent hang), the scheduler goes idle, and serving resumes
 *     once steps succeed again.
 *   - an unusable device (-ENODEV from a step, or max_failed_steps failed
 *     steps in a row) makes the scheduler fatal: every request, running or
 *     queued, is failed with the engine's code, new submits get -ESHUTDOWN,
 *     the engine thread exits and on_fatal is called exactly once (the
 *     server then exits non-zero: tests/e2e covers the CPU server only, where
 *     no device can die).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/log.h"
#include "engine/weights.h"
#include "scheduler/sched.h"
#include "scheduler/sched_internal.h"
#include "tests/unit/util_sched.h"
#include "tests/unit/util_st_writer.h"

#define BS 16
#define VOCAB 256
#define MT 10

static char g_dir[256];
static int g_max_failed = 8;        /* sched_config.max_failed_steps for rig_init */
static int g_fatal_calls, g_fatal_rc;

static void on_fatal(void *user, int rc)
{
    (void)user;
    __atomic_add_fetch(&g_fatal_calls, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_fatal_rc, rc, __ATOMIC_SEQ_CST);
}

/* The fault injector: forward calls are counted; calls in [fail_from,
 * fail_to] return fail_rc without running. Engine thread only (the test reads
 * the counters after the scheduler is idle). */
static struct eng_backend_ops g_faulty;
static int g_calls, g_fail_from, g_fail_to, g_fail_rc;

static int faulty_forward(struct engine *e, const struct eng_batch *b, float *logits)
{
    int call = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
    if (call >= __atomic_load_n(&g_fail_from, __ATOMIC_SEQ_CST) && call <= __atomic_load_n(&g_fail_to, __ATOMIC_SEQ_CST))
        return g_fail_rc;
    return eng_backend_cpu.forward(e, b, logits);
}

static void set_faults(int from, int to, int rc)
{
    __atomic_store_n(&g_fail_from, from, __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_fail_to, to, __ATOMIC_SEQ_CST);
    g_fail_rc = rc;
}

static void setup(void)
{
    char err[256];
    log_set_level(LOG_LVL_ERROR);
    ck_assert_msg(stw_make_tiny_model(g_dir, sizeof g_dir, 4321u, err, sizeof err) == 0, "%s", err);
    g_faulty = eng_backend_cpu;
    g_faulty.forward = faulty_forward;
    g_calls = 0;
    g_max_failed = 8;
    g_fatal_calls = 0;
    g_fatal_rc = 0;
    set_faults(0, -1, 0);
}

static void teardown(void)
{
    if (g_dir[0]) stw_rmtree(g_dir);
    g_dir[0] = 0;
}

struct rig {
    struct cfg_model cfg;
    struct eng_weights w;
    struct engine *e;
    struct sched *s;
};

static void rig_init(struct rig *g, int max_seqs)
{
    char err[256];
    memset(g, 0, sizeof *g);
    ck_assert_msg(cfg_load_dir(&g->cfg, g_dir, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(eng_weights_load(&g->w, &g->cfg, g_dir, err, sizeof err) == 0, "%s", err);
    struct eng_memory mem = {.num_kv_blocks = 256, .block_size = BS, .num_state_slots = max_seqs + 4};
    g->e = eng_create(&g->cfg, &g->w, &g_faulty, &mem, err, sizeof err);
    ck_assert_msg(g->e != NULL, "%s", err);
    struct sched_config c;
    sched_config_init(&c);
    c.eng = g->e;
    c.max_num_seqs = max_seqs;
    c.max_num_batched_tokens = 512;
    c.max_model_len = 256;
    c.default_seed = 5;
    c.log_requests = false;
    c.max_failed_steps = g_max_failed;
    c.on_fatal = on_fatal;
    g->s = sched_create(&c, err, sizeof err);
    ck_assert_msg(g->s != NULL, "%s", err);
}

static void rig_fini(struct rig *g)
{
    sched_destroy(g->s);
    eng_destroy(g->e);
    eng_weights_free(&g->w);
}

static struct sched_request *submit(struct rig *g, int i)
{
    int32_t p[32];
    int len = 4 + (i * 3) % 11;
    unsigned s = 77u + (unsigned)i * 7919u;
    for (int k = 0; k < len; k++) {
        s = s * 1103515245u + 12345u;
        p[k] = (int32_t)((s >> 8) % (VOCAB - 1));
    }
    struct sched_params sp;
    ts_params(&sp, p, len, MT);
    sp.ignore_eos = true;
    struct sched_request *r = sched_request_create(&sp);
    ck_assert_ptr_nonnull(r);
    char err[256];
    ck_assert_msg(sched_submit(g->s, r, err, sizeof err) == 0, "%s", err);
    return r;
}

/* Steps synchronously until every request is done; failed steps allowed. */
static void run_sync(struct rig *g, struct sched_request **rs, struct ts_out *o, int n)
{
    for (int steps = 0;; steps++) {
        bool all = true;
        for (int i = 0; i < n; i++) all = all && o[i].done;
        if (all) return;
        ck_assert_int_lt(steps, 10000);
        sched_step_sync(g->s);
        for (int i = 0; i < n; i++) ts_out_collect(&o[i], rs[i]);
    }
}

static void assert_idle(struct rig *g)
{
    struct sched_stats st;
    sched_get_stats(g->s, &st);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    ck_assert_int_eq(st.num_running, 0);
    ck_assert_int_eq(st.num_waiting, 0);
}

/* Tokens of request i on an engine that never fails. */
static void reference(int i, struct ts_out *ref)
{
    struct rig g;
    rig_init(&g, 4);
    int from = g_fail_from, to = g_fail_to, rc = g_fail_rc;
    set_faults(0, -1, 0);
    struct sched_request *r = submit(&g, i);
    memset(ref, 0, sizeof *ref);
    run_sync(&g, &r, ref, 1);
    ck_assert_int_eq(ref->error, 0);
    ck_assert_int_eq(ref->ntok[0], MT);
    sched_request_release(r);
    rig_fini(&g);
    set_faults(from, to, rc);
}

static void step_failure_case(int rc)
{
    enum { NR = 6 };
    struct rig g;
    /* 2 running at once: requests 0-1 are in the first steps, 2-5 queued */
    rig_init(&g, 2);
    g_calls = 0;
    set_faults(2, 2, rc); /* the second step (first decode of 0 and 1) fails */
    struct sched_request *rs[NR];
    struct ts_out o[NR];
    memset(o, 0, sizeof o);
    for (int i = 0; i < NR; i++) rs[i] = submit(&g, i);
    run_sync(&g, rs, o, NR);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(o[i].finish[0] == SCHED_FINISH_ERROR, "request %d: finish %d, want error", i, o[i].finish[0]);
        ck_assert_int_eq(o[i].error, rc);
        ck_assert_int_eq(o[i].finish_count[0], 1);
    }
    for (int i = 2; i < NR; i++) {
        struct ts_out ref;
        reference(i, &ref);
        ck_assert_msg(o[i].error == 0 && o[i].finish[0] == SCHED_FINISH_LENGTH,
                      "queued request %d was hit by the failure (finish %d, error %d)", i, o[i].finish[0], o[i].error);
        ck_assert_int_eq(o[i].ntok[0], MT);
        for (int k = 0; k < MT; k++)
            ck_assert_msg(o[i].tokens[0][k] == ref.tokens[0][k], "request %d token %d: %d vs %d on a healthy engine", i,
                          k, o[i].tokens[0][k], ref.tokens[0][k]);
        ts_out_fini(&ref);
    }
    assert_idle(&g);
    /* the failed requests' message reaches the client */
    struct sched_request *r = submit(&g, 9);
    struct ts_out after;
    memset(&after, 0, sizeof after);
    run_sync(&g, &r, &after, 1);
    ck_assert_int_eq(after.error, 0);
    ck_assert_int_eq(after.ntok[0], MT);
    sched_request_release(r);
    ts_out_fini(&after);
    for (int i = 0; i < NR; i++) {
        sched_request_release(rs[i]);
        ts_out_fini(&o[i]);
    }
    assert_idle(&g);
    rig_fini(&g);
}

START_TEST(step_eio_fails_only_that_step) { step_failure_case(-EIO); }
END_TEST

START_TEST(step_enomem_fails_only_that_step) { step_failure_case(-ENOMEM); }
END_TEST

/* The error message a client sees names the failure. */
START_TEST(failure_message_reaches_the_request)
{
    struct rig g;
    rig_init(&g, 4);
    set_faults(1, 1000000, -EIO);
    struct sched_request *r = submit(&g, 0);
    for (int i = 0; i < 100; i++) {
        sched_step_sync(g.s);
        struct sched_delta d;
        int ch = sched_request_drain(r, &d);
        ck_assert_int_ge(ch, 0);
        if (ch && d.done) {
            ck_assert_int_eq(d.error, -EIO);
            ck_assert_msg(d.error_msg[0] != 0, "no error message");
            ck_assert_msg(d.n >= 1 && d.choices[0].finish == SCHED_FINISH_ERROR, "choice not finished with error");
            sched_delta_fini(&d);
            sched_request_release(r);
            assert_idle(&g);
            rig_fini(&g);
            return;
        }
        if (ch) sched_delta_fini(&d);
    }
    ck_abort_msg("request never finished after a failed step");
}
END_TEST

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Engine thread running, the device "dead" (every step fails): every client
 * wakes up with an error within a bounded time, the scheduler goes idle, and
 * requests succeed again once the device does. */
START_TEST(dead_device_never_hangs_clients)
{
    enum { NR = 12 };
    struct rig g;
    rig_init(&g, 4);
    set_faults(1, 1000000, -EIO);
    ck_assert_int_eq(sched_start(g.s), 0);
    struct sched_request *rs[NR];
    for (int i = 0; i < NR; i++) rs[i] = submit(&g, i);
    int64_t t0 = now_ms();
    for (int i = 0; i < NR; i++) {
        struct ts_out o;
        memset(&o, 0, sizeof o);
        while (!o.done) {
            ck_assert_msg(now_ms() - t0 < 20000, "request %d not answered 20 s after the device failed", i);
            sched_request_wait(rs[i], 200);
            ts_out_collect(&o, rs[i]);
        }
        ck_assert_int_eq(o.error, -EIO);
        ck_assert_int_eq(o.finish[0], SCHED_FINISH_ERROR);
        ts_out_fini(&o);
    }
    ck_assert_int_eq(sched_wait_idle(g.s, 10000), 0);
    /* the device recovers: serving resumes */
    set_faults(0, -1, 0);
    struct sched_request *r = submit(&g, 3);
    struct ts_out o, ref;
    memset(&o, 0, sizeof o);
    while (!o.done) {
        ck_assert_msg(now_ms() - t0 < 40000, "request after recovery not answered");
        sched_request_wait(r, 200);
        ts_out_collect(&o, r);
    }
    ck_assert_int_eq(o.error, 0);
    reference(3, &ref);
    ck_assert_int_eq(o.ntok[0], MT);
    for (int k = 0; k < MT; k++) ck_assert_int_eq(o.tokens[0][k], ref.tokens[0][k]);
    ts_out_fini(&o);
    ts_out_fini(&ref);
    ck_assert_int_eq(sched_wait_idle(g.s, 10000), 0);
    sched_stop(g.s);
    assert_idle(&g);
    sched_request_release(r);
    for (int i = 0; i < NR; i++) sched_request_release(rs[i]);
    rig_fini(&g);
}
END_TEST

/* Engine thread running, device dead for good: fatal path. rc is what every
 * step returns; max_failed is the scheduler's threshold. */
static void fatal_case(int rc, int max_failed)
{
    enum { NR = 9 };
    g_max_failed = max_failed;
    struct rig g;
    rig_init(&g, 2);
    set_faults(1, 1000000, rc);
    struct sched_request *rs[NR];
    for (int i = 0; i < NR; i++) rs[i] = submit(&g, i);
    ck_assert_int_eq(sched_start(g.s), 0);
    int64_t t0 = now_ms();
    for (int i = 0; i < NR; i++) {
        struct ts_out o;
        memset(&o, 0, sizeof o);
        while (!o.done) {
            ck_assert_msg(now_ms() - t0 < 20000, "request %d not answered after the device died", i);
            sched_request_wait(rs[i], 200);
            ts_out_collect(&o, rs[i]);
        }
        ck_assert_int_eq(o.error, rc);
        ck_assert_int_eq(o.finish[0], SCHED_FINISH_ERROR);
        ts_out_fini(&o);
    }
    ck_assert_int_eq(sched_wait_idle(g.s, 10000), 0);
    ck_assert_int_eq(sched_fatal_error(g.s), rc);
    ck_assert_int_eq(__atomic_load_n(&g_fatal_calls, __ATOMIC_SEQ_CST), 1);
    ck_assert_int_eq(__atomic_load_n(&g_fatal_rc, __ATOMIC_SEQ_CST), rc);
    /* -ENODEV is fatal at once; -EIO only after max_failed steps in a row */
    int calls = __atomic_load_n(&g_calls, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(calls, rc == -ENODEV ? 1 : max_failed);
    /* no new work is accepted */
    int32_t p[4] = {1, 2, 3, 4};
    struct sched_params sp;
    ts_params(&sp, p, 4, MT);
    struct sched_request *r = sched_request_create(&sp);
    char err[256] = "";
    ck_assert_int_eq(sched_submit(g.s, r, err, sizeof err), -ESHUTDOWN);
    ck_assert_msg(strstr(err, "device") != NULL, "message: %s", err);
    sched_request_release(r);
    sched_stop(g.s);
    assert_idle(&g);
    for (int i = 0; i < NR; i++) sched_request_release(rs[i]);
    rig_fini(&g);
}

START_TEST(enodev_is_fatal_at_once) { fatal_case(-ENODEV, 8); }
END_TEST

START_TEST(repeated_eio_is_fatal) { fatal_case(-EIO, 3); }
END_TEST

Suite *engine_fault_suite(void)
{
    Suite *s = suite_create("engine_fault");
    TCase *tc = tcase_create("faults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, step_eio_fails_only_that_step);
    tcase_add_test(tc, step_enomem_fails_only_that_step);
    tcase_add_test(tc, failure_message_reaches_the_request);
    tcase_add_test(tc, dead_device_never_hangs_clients);
    tcase_add_test(tc, enodev_is_fatal_at_once);
    tcase_add_test(tc, repeated_eio_is_fatal);
    suite_add_tcase(s, tc);
    return s;
}
