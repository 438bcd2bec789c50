/* tests/unit/check_sched_sim.c: the randomized scheduler simulation (issue
 * 4.8) and stop-string handling with a real (tiny) tokenizer, both over the
 * fake engine.
 *
 * Simulation: hundreds of requests with random arrival steps, prompt and
 * output lengths, n, sampling (greedy and seeded), stop ids, min_tokens,
 * logprobs, prompt log-probs, and cancellations, under a KV pool and a slot
 * pool small enough to force preemption. After every step: no block or slot
 * leaks (refcounts equal holders), the token and row budgets hold, the fake
 * engine saw a consistent history. At the end: every choice finished exactly
 * once, only cancelled requests aborted, and every request that was not
 * cancelled produced exactly what it produces when run alone.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"
#include "scheduler/sched.h"
#include "scheduler/sched_internal.h"
#include "tests/unit/util_fake_engine.h"
#include "tests/unit/util_sched.h"

#define VOCAB 97
#define EOS 3

static struct sched *make_sched(struct engine *e, int max_seqs, int max_tokens, int max_len,
                                const struct tokenizer *tok)
{
    struct sched_config c;
    sched_config_init(&c);
    c.eng = e;
    c.tok = tok;
    c.max_num_seqs = max_seqs;
    c.max_num_batched_tokens = max_tokens;
    c.max_model_len = max_len;
    c.max_queued = 100000;
    c.default_seed = 77;
    c.log_requests = false;
    char err[256];
    struct sched *s = sched_create(&c, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    return s;
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

struct simreq {
    int32_t prompt[64];
    int32_t stop_ids[2];
    struct sched_params p;
    int arrive, cancel_at; /* steps; cancel_at < 0: never */
    struct sched_request *r;
    struct ts_out out;
    bool cancelled;
};

static void build_params(struct simreq *q, unsigned *seed, int max_len)
{
    int plen = 1 + (int)(rnd(seed) % 60);
    for (int i = 0; i < plen; i++) q->prompt[i] = (int32_t)(rnd(seed) % VOCAB);
    sched_params_init(&q->p);
    q->p.prompt = q->prompt;
    q->p.prompt_len = plen;
    int mt = (int)(rnd(seed) % 41);
    if (rnd(seed) % 10 == 0) mt = -1; /* to the model length */
    if (mt >= 0 && plen + mt > max_len) mt = max_len - plen;
    q->p.max_tokens = mt;
    q->p.n = rnd(seed) % 5 == 0 ? 2 + (int)(rnd(seed) % 2) : 1;
    if (rnd(seed) % 2) {
        q->p.sampling.temperature = 0.0f;
    } else {
        q->p.sampling.temperature = 0.5f + (float)(rnd(seed) % 100) / 100.0f;
        q->p.sampling.top_k = rnd(seed) % 2 ? 20 : -1;
        q->p.sampling.top_p = rnd(seed) % 2 ? 0.9f : 1.0f;
        q->p.sampling.presence_penalty = rnd(seed) % 3 == 0 ? 0.5f : 0.0f;
        q->p.has_seed = true;
        q->p.seed = rnd(seed);
    }
    q->p.ignore_eos = rnd(seed) % 3 == 0;
    int nst = (int)(rnd(seed) % 3);
    for (int i = 0; i < nst; i++) q->stop_ids[i] = (int32_t)(rnd(seed) % VOCAB);
    q->p.stop_token_ids = q->stop_ids;
    q->p.num_stop_token_ids = nst;
    if (mt > 0 && rnd(seed) % 4 == 0) q->p.min_tokens = (int)(rnd(seed) % (unsigned)(mt + 1));
    if (rnd(seed) % 4 == 0) q->p.logprobs = (int)(rnd(seed) % 4);
    if (rnd(seed) % 6 == 0) q->p.prompt_logprobs = (int)(rnd(seed) % 3);
}

static void compare_out(const struct ts_out *a, const struct ts_out *b, int id)
{
    ck_assert_int_eq(a->n, b->n);
    for (int c = 0; c < a->n; c++) {
        ck_assert_msg(a->ntok[c] == b->ntok[c], "req %d choice %d: %d vs %d tokens alone", id, c,
                      a->ntok[c], b->ntok[c]);
        for (int k = 0; k < a->ntok[c]; k++)
            ck_assert_msg(a->tokens[c][k] == b->tokens[c][k], "req %d choice %d token %d differs", id,
                          c, k);
        ck_assert_int_eq(a->finish[c], b->finish[c]);
    }
    ck_assert_int_eq(a->nplp, b->nplp);
    for (int k = 1; k < a->nplp; k++) ck_assert(a->plp[k].logprob == b->plp[k].logprob);
}

START_TEST(test_simulation)
{
    enum { NR = 300, MAXLEN = 128 };
    int eos = EOS;
    /* 4-token blocks: 100 blocks hold ~3 full-length sequences; 12 slots */
    struct engine *e = fake_engine_create(VOCAB, &eos, 1, MAXLEN, 100, 4, 12);
    struct sched *s = make_sched(e, 10, 40, MAXLEN, NULL);
    static struct simreq rq[NR];
    memset(rq, 0, sizeof rq);
    unsigned seed = 4242u + (unsigned)_i;
    for (int i = 0; i < NR; i++) {
        build_params(&rq[i], &seed, MAXLEN);
        rq[i].arrive = (int)(rnd(&seed) % 600);
        rq[i].cancel_at = rnd(&seed) % 7 == 0 ? rq[i].arrive + (int)(rnd(&seed) % 40) : -1;
    }
    char err[256];
    int submitted = 0, step = 0;
    for (;;) {
        bool all = submitted == NR;
        for (int i = 0; i < NR && all; i++) all = rq[i].out.done;
        if (all) break;
        for (int i = 0; i < NR; i++) {
            struct simreq *q = &rq[i];
            if (q->arrive == step) {
                q->r = sched_request_create(&q->p);
                ck_assert_ptr_nonnull(q->r);
                int rc = sched_submit(s, q->r, err, sizeof err);
                ck_assert_msg(rc == 0, "submit %d: %s", i, err);
                submitted++;
            }
            if (q->r && q->cancel_at == step && !q->out.done) {
                sched_cancel(s, q->r);
                q->cancelled = true;
            }
        }
        ck_assert_int_ge(sched_step_sync(s), 0);
        ck_assert_msg(sched_check_invariants(s, err, sizeof err) == 0, "step %d: %s", step, err);
        ck_assert_msg(fake_engine_errors(e) == 0, "fake engine: %s", fake_engine_error_msg(e));
        for (int i = 0; i < NR; i++)
            if (rq[i].r) ts_out_collect(&rq[i].out, rq[i].r);
        ck_assert_int_lt(++step, 200000);
    }
    struct sched_stats st;
    sched_get_stats(s, &st);
    ck_assert_int_eq(st.kv_blocks_used, 0);
    ck_assert_int_eq(st.slots_used, 0);
    ck_assert_uint_gt(st.preemptions_total, 0);
    uint64_t fin = 0;
    for (int f = SCHED_FINISH_STOP; f <= SCHED_FINISH_ERROR; f++) fin += st.requests_finished[f];
    ck_assert_uint_eq(fin, NR);
    ck_assert_uint_eq(st.requests_finished[SCHED_FINISH_ERROR], 0);
    int ncancel = 0, nverified = 0;
    for (int i = 0; i < NR; i++) {
        struct simreq *q = &rq[i];
        ck_assert(q->out.done);
        ck_assert_int_eq(q->out.done_deltas, 0);
        bool any_abort = false;
        for (int c = 0; c < q->p.n; c++) {
            ck_assert_msg(q->out.finish_count[c] == 1, "req %d choice %d finished %d times", i, c,
                          q->out.finish_count[c]);
            any_abort = any_abort || q->out.finish[c] == SCHED_FINISH_ABORT;
            int eff = q->p.max_tokens >= 0 ? q->p.max_tokens : MAXLEN - q->p.prompt_len;
            ck_assert_int_le(q->out.ntok[c], eff);
        }
        if (any_abort) ck_assert(q->cancelled);
        ncancel += any_abort;
        if (q->p.prompt_logprobs >= 0 && !any_abort) ck_assert_int_eq(q->out.plp_count, 1);
        if (!any_abort && nverified < 120) {
            /* rerun alone on a roomy pool */
            struct engine *e2 = fake_engine_create(VOCAB, &eos, 1, MAXLEN, 512, 4, 8);
            struct sched *s2 = make_sched(e2, 8, 256, MAXLEN, NULL);
            struct sched_request *r2 = sched_request_create(&q->p);
            ck_assert_int_eq(sched_submit(s2, r2, err, sizeof err), 0);
            struct ts_out o2 = {0};
            ts_run_sync(s2, e2, &r2, &o2, 1, 10000);
            compare_out(&q->out, &o2, i);
            ts_out_fini(&o2);
            sched_request_release(r2);
            sched_destroy(s2);
            fake_engine_destroy(e2);
            nverified++;
        }
        sched_request_release(q->r);
        ts_out_fini(&q->out);
    }
    ck_assert_int_gt(ncancel, 0);
    ck_assert_int_gt(nverified, 100);
    sched_destroy(s);
    fake_engine_destroy(e);
}
END_TEST

/* --- stop strings with a tiny byte-level tokenizer ------------------------------------------ */

/* 97 pieces: id 3 is "<eos>" (special); others letters, digits, space, newline
 * and a few two-letter merges, so stop strings span token boundaries. */
static const char *piece(int id, char *buf)
{
    static const char *extra[] = {"\xc4\xa0", "\xc4\x8a", ".", ",", "ab", "cd", "ef", "gh",
                                  "ij", "kl", "mn", "op", "qr", "st", "uv", "wx", "yz",
                                  "AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP", "QR",
                                  "ST", "UV", "WX", "YZ", "01", "23", "45", "67", "89"};
    if (id == 3) return "<eos>";
    int k = id < 3 ? id : id - 1; /* 0..95 */
    if (k < 26) { buf[0] = (char)('a' + k); buf[1] = 0; return buf; }
    if (k < 52) { buf[0] = (char)('A' + k - 26); buf[1] = 0; return buf; }
    if (k < 62) { buf[0] = (char)('0' + k - 52); buf[1] = 0; return buf; }
    return extra[k - 62];
}

static struct tokenizer *tiny_tokenizer(void)
{
    size_t cap = 16384, len = 0;
    char *j = malloc(cap);
    len += (size_t)snprintf(j + len, cap - len,
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
        "\"added_tokens\":[{\"id\":3,\"content\":\"<eos>\",\"single_word\":false,\"lstrip\":false,"
        "\"rstrip\":false,\"normalized\":false,\"special\":true}],"
        "\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},"
        "\"post_processor\":null,"
        "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
        "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
        "\"vocab\":{");
    char b[8];
    for (int id = 0; id < VOCAB; id++)
        len += (size_t)snprintf(j + len, cap - len, "%s\"%s\":%d", id ? "," : "", piece(id, b), id);
    len += (size_t)snprintf(j + len, cap - len, "},\"merges\":[]}}");
    char err[256];
    struct tokenizer *t = tok_load_json(j, len, err, sizeof err);
    ck_assert_msg(t != NULL, "tiny tokenizer: %s", err);
    free(j);
    return t;
}

/* Runs one greedy request (ignore_eos) with the given stops; returns its out. */
static void run_stop(struct tokenizer *t, const int32_t *prompt, int plen, const char *const *stop,
                     int nstop, bool include, int max_tokens, struct ts_out *o)
{
    int eos = EOS;
    struct engine *e = fake_engine_create(VOCAB, &eos, 1, 256, 256, 4, 4);
    struct sched *s = make_sched(e, 4, 64, 256, t);
    struct sched_params p;
    ts_params(&p, prompt, plen, max_tokens);
    p.ignore_eos = true;
    p.stop = stop;
    p.num_stop = nstop;
    p.include_stop_str_in_output = include;
    struct sched_request *r = sched_request_create(&p);
    char err[256];
    ck_assert_int_eq(sched_submit(s, r, err, sizeof err), 0);
    memset(o, 0, sizeof(*o));
    ts_run_sync(s, e, &r, o, 1, 10000);
    sched_request_release(r);
    sched_destroy(s);
    fake_engine_destroy(e);
}

START_TEST(test_stop_strings_across_tokens)
{
    struct tokenizer *t = tiny_tokenizer();
    int32_t prompt[6] = {10, 11, 12, 13, 14, 15};
    /* the unstopped output and its text */
    struct ts_out full;
    run_stop(t, prompt, 6, NULL, 0, false, 60, &full);
    ck_assert_int_eq(full.ntok[0], 60);
    char *text = tok_decode(t, full.tokens[0], 60, true, NULL);
    ck_assert_str_eq(full.text[0], text);
    /* per-token end offsets of the text */
    size_t ends[60];
    for (int k = 0; k < 60; k++) {
        char *pre = tok_decode(t, full.tokens[0], k + 1, true, NULL);
        ends[k] = strlen(pre);
        free(pre);
    }
    /* a stop string spanning a token boundary, starting inside token k0 */
    int k0 = 20;
    while (k0 < 50 && !(ends[k0] - (k0 ? ends[k0 - 1] : 0) >= 1 && ends[k0 + 1] > ends[k0])) k0++;
    size_t start = ends[k0] - 1; /* last byte of token k0 */
    char stop[8];
    size_t sl = ends[k0 + 1] - start;
    if (sl > 3) sl = 3;
    memcpy(stop, text + start, sl);
    stop[sl] = 0;
    /* the first occurrence decides */
    const char *hit = strstr(text, stop);
    ck_assert_ptr_nonnull(hit);
    size_t pos = (size_t)(hit - text);
    int kend = 0;
    while (ends[kend] < pos + sl) kend++;
    const char *stops[] = {"never-there", stop};
    for (int inc = 0; inc < 2; inc++) {
        struct ts_out o;
        run_stop(t, prompt, 6, stops, 2, inc, 60, &o);
        ck_assert_int_eq(o.finish[0], SCHED_FINISH_STOP);
        ck_assert_int_eq(o.stop_index[0], 1);
        ck_assert_int_eq(o.ntok[0], kend + 1);
        size_t want = pos + (inc ? sl : 0);
        ck_assert_uint_eq(o.text_len[0], want);
        ck_assert(memcmp(o.text[0] ? o.text[0] : "", text, want) == 0);
        ts_out_fini(&o);
    }
    /* a stop string that never completes: everything held back is released at the end */
    char nearly[8];
    snprintf(nearly, sizeof nearly, "%c#", text[strlen(text) - 1]); /* '#' is in no piece */
    const char *st2[] = {nearly};
    struct ts_out o2;
    run_stop(t, prompt, 6, st2, 1, false, 60, &o2);
    ck_assert_int_eq(o2.finish[0], SCHED_FINISH_LENGTH);
    ck_assert_str_eq(o2.text[0], text);
    ts_out_fini(&o2);
    free(text);
    ts_out_fini(&full);
    tok_free(t);
}
END_TEST

START_TEST(test_stop_token_text_and_eos)
{
    struct tokenizer *t = tiny_tokenizer();
    int32_t prompt[3] = {20, 21, 22};
    struct ts_out full;
    run_stop(t, prompt, 3, NULL, 0, false, 30, &full);
    /* stop on the id of token 10: its text is not in the output */
    int32_t sid = full.tokens[0][10];
    int first = 0;
    while (full.tokens[0][first] != sid) first++;
    int eos = EOS;
    for (int inc = 0; inc < 2; inc++) {
        struct engine *e = fake_engine_create(VOCAB, &eos, 1, 256, 256, 4, 4);
        struct sched *s = make_sched(e, 4, 64, 256, t);
        struct sched_params p;
        ts_params(&p, prompt, 3, 30);
        p.ignore_eos = true;
        p.stop_token_ids = &sid;
        p.num_stop_token_ids = 1;
        p.include_stop_str_in_output = inc;
        struct sched_request *r = sched_request_create(&p);
        char err[256];
        ck_assert_int_eq(sched_submit(s, r, err, sizeof err), 0);
        struct ts_out o = {0};
        ts_run_sync(s, e, &r, &o, 1, 1000);
        ck_assert_int_eq(o.ntok[0], first + 1);
        char *want = tok_decode(t, full.tokens[0], first + inc, true, NULL);
        ck_assert_str_eq(o.text[0] ? o.text[0] : "", want);
        free(want);
        ts_out_fini(&o);
        sched_request_release(r);
        sched_destroy(s);
        fake_engine_destroy(e);
    }
    ts_out_fini(&full);
    tok_free(t);
}
END_TEST

Suite *sched_sim_suite(void)
{
    Suite *s = suite_create("sched_sim");
    TCase *tc = tcase_create("sim");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_simulation, 0, 2);
    tcase_add_test(tc, test_stop_strings_across_tokens);
    tcase_add_test(tc, test_stop_token_text_and_eos);
    suite_add_tcase(s, tc);
    return s;
}
