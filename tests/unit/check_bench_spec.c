/* tests/unit/check_bench_spec.c: the CPU side of `deltaserve bench --spec`
 * (server/bench_spec.c): teacher-forced acceptance on hand-checked token
 * sequences, the projected speedup formula, the workload builders, and the
 * three workloads with the real tokenizer (models/olmo-hybrid-tiny): a code
 * edit and a quoting answer are drafted well, free text is not, and the
 * adaptive length keeps free text within 5% of plain decoding under a
 * verify cost model, where a fixed length does not.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer.h"
#include "server/bench_spec.h"

START_TEST(test_teacher_force_by_hand)
{
    /* prompt "1 2 3 4 5 6 7 8", target copies it: target[0]=1 from the
     * prefill; then history "... 8 1" -> 1-gram "1" at 0 -> drafts 2 3 4 (k=3),
     * all accepted + bonus 5; "... 5": drafts 6 7 8 -> accepted, bonus; ... */
    const int32_t p[] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int32_t t[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct bench_spec_setting s = {.k = 3, .ngram_min = 1, .ngram_max = 1, .min_accept = 0.0};
    struct bench_spec_result r;
    ck_assert_int_eq(bench_spec_teacher_force(p, 8, t, 9, &s, &r), 0);
    /* step 1: drafts 2 3 4, all accepted, emits 2 3 4 5 (g: 1 -> 5)
     * step 2: history ends "5"; most recent earlier "5" is at prompt 4 -> drafts
     *         6 7 8 (3 left -> cap 3), accepted, emits 6 7 8 9 (g -> 9): done */
    ck_assert_int_eq(r.tokens, 8);
    ck_assert_int_eq(r.steps, 2);
    ck_assert_int_eq(r.verify_steps, 2);
    ck_assert_int_eq(r.drafts, 6);
    ck_assert_int_eq(r.accepted, 6);
    ck_assert_int_eq(r.steps_by_draft[3], 2);
    /* never seen tokens: no drafts, one token per step */
    const int32_t t2[] = {20, 21, 22, 23, 24, 25};
    ck_assert_int_eq(bench_spec_teacher_force(p, 8, t2, 6, &s, &r), 0);
    ck_assert_int_eq(r.steps, 5);
    ck_assert_int_eq(r.tokens, 5);
    ck_assert_int_eq(r.drafts, 0);
    ck_assert_int_eq(r.steps_by_draft[0], 5);
    /* a wrong draft: prompt "1 2 3", target "1 9 ...": "1" -> draft 2, rejected */
    const int32_t p3[] = {1, 2, 3}, t3[] = {1, 9, 9, 9};
    ck_assert_int_eq(bench_spec_teacher_force(p3, 3, t3, 4, &s, &r), 0);
    ck_assert_int_ge(r.drafts, 1);
    ck_assert_int_le(r.accepted, r.drafts);
    ck_assert_int_eq(r.tokens, 3);
    /* bad arguments */
    ck_assert_int_eq(bench_spec_teacher_force(p, 0, t, 9, &s, &r), -EINVAL);
    s.k = SPEC_MAX_TOKENS + 1;
    ck_assert_int_eq(bench_spec_teacher_force(p, 8, t, 9, &s, &r), -EINVAL);
}
END_TEST

START_TEST(test_projected_speedup)
{
    struct bench_spec_result r;
    memset(&r, 0, sizeof r);
    r.tokens = 100;
    r.steps = 40;
    r.steps_by_draft[0] = 20;
    r.steps_by_draft[4] = 20;
    double rel[9] = {1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8};
    /* 100 tokens / (20 * 1 + 20 * 1.4) */
    ck_assert_double_eq_tol(bench_spec_projected_speedup(&r, rel, 8), 100.0 / 48.0, 1e-12);
    /* free verify steps: tokens per step */
    double one[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_double_eq_tol(bench_spec_projected_speedup(&r, one, 8), 2.5, 1e-12);
    /* a step longer than the table: no projection */
    ck_assert(bench_spec_projected_speedup(&r, rel, 3) < 0);
    r.steps = 0;
    ck_assert(bench_spec_projected_speedup(&r, rel, 8) < 0);
}
END_TEST

static const char k_code[] =
    "/* a tiny ring buffer */\n"
    "struct ring_buffer { int *items; int head, tail, capacity; };\n"
    "int ring_buffer_push(struct ring_buffer *rb, int value)\n"
    "{\n"
    "    int next = (rb->tail + 1) % rb->capacity;\n"
    "    if (next == rb->head) return -1;\n"
    "    rb->items[rb->tail] = value;\n"
    "    rb->tail = next;\n"
    "    return 0;\n"
    "}\n"
    "int ring_buffer_pop(struct ring_buffer *rb, int *value)\n"
    "{\n"
    "    if (rb->head == rb->tail) return -1;\n"
    "    *value = rb->items[rb->head];\n"
    "    rb->head = (rb->head + 1) % rb->capacity;\n"
    "    return 0;\n"
    "}\n"
    "int ring_buffer_size(const struct ring_buffer *rb)\n"
    "{\n"
    "    return (rb->tail - rb->head + rb->capacity) % rb->capacity;\n"
    "}\n"
    "int ring_buffer_full(const struct ring_buffer *rb)\n"
    "{\n"
    "    return ring_buffer_size(rb) == rb->capacity - 1;\n"
    "}\n";

START_TEST(test_workload_builders)
{
    char *p, *t, *what;
    ck_assert_int_eq(bench_spec_code_edit(k_code, strlen(k_code), &p, &t, &what), 0);
    /* the most frequent identifiers of 5+ chars: capacity, ring_buffer, items/value... */
    ck_assert_msg(strstr(what, "capacity -> ds_capacity") != NULL, "%s", what);
    ck_assert_msg(strstr(what, "ring_buffer -> ds_ring_buffer") != NULL, "%s", what);
    ck_assert(strstr(p, k_code) != NULL);               /* the original is in the prompt */
    ck_assert(strstr(t, "ds_ring_buffer_push") == NULL); /* whole words only */
    ck_assert(strstr(t, "struct ds_ring_buffer *rb") != NULL);
    ck_assert(strstr(t, "rb->ds_capacity") != NULL);
    ck_assert(strstr(t, "rb->capacity") == NULL);
    free(p), free(t), free(what);
    ck_assert_int_eq(bench_spec_code_edit("a b c", 5, &p, &t, NULL), -EINVAL); /* nothing to rename */

    char doc[4096] = "";
    for (int i = 0; i < 6; i++) {
        char para[400];
        snprintf(para, sizeof para,
                 "Paragraph %d explains part %d of the design in enough words to be quoted: the engine thread "
                 "owns the batch, the HTTP threads own the connections, and they meet only in queues number %d, "
                 "which keeps every lock short and every owner obvious.",
                 i, i, i * 7);
        strcat(doc, para);
        strcat(doc, "\n\n");
    }
    ck_assert_int_eq(bench_spec_quote(doc, strlen(doc), &p, &t), 0);
    ck_assert(strstr(p, doc) != NULL);
    ck_assert(strstr(t, "> Paragraph 0 explains") != NULL);
    ck_assert(strstr(t, "> Paragraph 2 explains") != NULL);
    ck_assert(strstr(t, "Paragraph 1 explains") == NULL); /* every second one */
    free(p), free(t);
    ck_assert_int_eq(bench_spec_quote("short\n\nshort", 12, &p, &t), -EINVAL);
    ck_assert_int_eq(bench_spec_free_text("some text", 9, &p, &t), 0);
    ck_assert_str_eq(t, "some text");
    ck_assert(strstr(p, "some text") == NULL);
    free(p), free(t);
}
END_TEST

/* Free text: sentences that never repeat (generated from a fixed word list
 * and a fixed LCG, so the test is deterministic). */
static char *free_prose(int nsent)
{
    static const char *const w[] = {
        "river",  "quietly", "engine",  "morning", "copper", "lantern", "distant", "harvest",
        "signal", "marble",  "winter",  "orchard", "thread", "pilot",   "velvet",  "canyon",
        "ember",  "garden",  "silver",  "meadow",  "harbor", "crystal", "falcon",  "timber",
        "saddle", "planet",  "ribbon",  "cobalt",  "ladder", "forest",  "violet",  "anchor",
        "the",    "a",       "of",      "and",     "near",   "under",   "beside",  "across"};
    size_t cap = (size_t)nsent * 120 + 1, len = 0;
    char *s = malloc(cap);
    unsigned r = 12345;
    for (int i = 0; i < nsent; i++) {
        int nw = 8 + i % 5;
        for (int j = 0; j < nw; j++) {
            r = r * 1103515245u + 12345u;
            const char *x = w[(r >> 10) % (sizeof w / sizeof w[0])];
            len += (size_t)snprintf(s + len, cap - len, "%s%s", j ? " " : "", x);
        }
        len += (size_t)snprintf(s + len, cap - len, ". ");
    }
    return s;
}

static void encode(const struct tokenizer *tok, const char *s, int32_t **ids, int *n)
{
    *n = tok_encode(tok, s, strlen(s), false, ids);
    ck_assert_int_gt(*n, 1);
}

START_TEST(test_workloads_real_tokenizer)
{
    char err[256];
    struct tokenizer *tok = tok_load("models/olmo-hybrid-tiny/tokenizer.json", err, sizeof err);
    ck_assert_msg(tok != NULL, "%s", err);
    /* cost model of a verify row: 1 + 0.05 per extra token (GPU, batch 1, order of magnitude) */
    double rel[SPEC_MAX_TOKENS + 1];
    for (int d = 0; d <= SPEC_MAX_TOKENS; d++) rel[d] = 1.0 + 0.05 * d;
    struct bench_spec_setting fixed = {.k = 8, .ngram_min = 2, .ngram_max = 5, .min_accept = 0.0},
                              adapt = {.k = 8, .ngram_min = 2, .ngram_max = 5, .min_accept = 0.1};
    struct bench_spec_result r;
    char *p, *t;
    int32_t *pi, *ti;
    int np, nt;

    ck_assert_int_eq(bench_spec_code_edit(k_code, strlen(k_code), &p, &t, NULL), 0);
    encode(tok, p, &pi, &np);
    encode(tok, t, &ti, &nt);
    ck_assert_int_eq(bench_spec_teacher_force(pi, np, ti, nt, &adapt, &r), 0);
    double sp = bench_spec_projected_speedup(&r, rel, SPEC_MAX_TOKENS);
    fprintf(stderr, "code edit: %d target tokens, %ld steps, acceptance %.2f, %.2f tokens/step, projected %.2fx\n",
            nt, r.steps, (double)r.accepted / (double)r.drafts, (double)r.tokens / (double)r.steps, sp);
    ck_assert((double)r.accepted / (double)r.drafts > 0.4);
    ck_assert((double)r.tokens / (double)r.steps > 3.0);
    ck_assert(sp > 2.0);
    free(p), free(t), free(pi), free(ti);

    char *prose = free_prose(120);
    ck_assert_int_eq(bench_spec_free_text(prose, strlen(prose), &p, &t), 0);
    encode(tok, p, &pi, &np);
    encode(tok, t, &ti, &nt);
    struct bench_spec_result rf;
    ck_assert_int_eq(bench_spec_teacher_force(pi, np, ti, nt, &fixed, &rf), 0);
    ck_assert_int_eq(bench_spec_teacher_force(pi, np, ti, nt, &adapt, &r), 0);
    double spf = bench_spec_projected_speedup(&rf, rel, SPEC_MAX_TOKENS),
           spa = bench_spec_projected_speedup(&r, rel, SPEC_MAX_TOKENS);
    fprintf(stderr, "free text: %d tokens; fixed k=8: %ld drafts, acceptance %.2f, projected %.3fx; "
                    "adaptive: %ld drafts, projected %.3fx\n",
            nt, rf.drafts, rf.drafts ? (double)rf.accepted / (double)rf.drafts : 0.0, spf, r.drafts, spa);
    ck_assert((double)rf.accepted / (double)rf.drafts < 0.3); /* the drafter guesses badly here */
    ck_assert(spa >= 0.95);                                   /* the bound: <= 5% slower */
    ck_assert(spa > spf);
    ck_assert(r.drafts * 4 < rf.drafts);
    free(p), free(t), free(pi), free(ti), free(prose);
    tok_free(tok);
}
END_TEST

Suite *bench_spec_suite(void)
{
    Suite *s = suite_create("bench_spec");
    TCase *tc = tcase_create("cpu");
    tcase_add_test(tc, test_teacher_force_by_hand);
    tcase_add_test(tc, test_projected_speedup);
    tcase_add_test(tc, test_workload_builders);
    tcase_add_test(tc, test_workloads_real_tokenizer);
    suite_add_tcase(s, tc);
    return s;
}
