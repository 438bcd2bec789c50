/* tests/unit/check_oai_response.c: OpenAI response bodies (server/oai_response.c):
 * accumulation of scheduler deltas, completions/chat schemas, logprobs in both
 * schemas, echo, streaming chunks, usage, ids. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/oai_response.h"

static struct sched_tok_lp lp(int32_t tok, float l, int k)
{
    struct sched_tok_lp x;
    memset(&x, 0, sizeof x);
    x.token = tok;
    x.logprob = l;
    x.num_top = k;
    for (int i = 0; i < k; i++) {
        x.top[i].token = 100 + i;
        x.top[i].logprob = -0.5f * (float)(i + 1);
    }
    return x;
}

/* One delta: choice `idx` of n gets tokens/text, optionally finishing. */
static void feed(struct oai_result *r, int g, int n, int idx, const int32_t *toks, int nt, const char *text,
                 enum sched_finish fin, bool with_lp, int prompt_tokens)
{
    struct sched_delta d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.choices = calloc((size_t)n, sizeof *d.choices);
    for (int i = 0; i < n; i++) { d.choices[i].index = i; d.choices[i].text = ""; d.choices[i].stop_token = -1; d.choices[i].stop_index = -1; }
    struct sched_choice_delta *c = &d.choices[idx];
    c->tokens = (int32_t *)toks;
    c->num_tokens = nt;
    c->text = (char *)text;
    c->text_len = strlen(text);
    c->finish = fin;
    struct sched_tok_lp lps[8];
    for (int i = 0; i < nt; i++) lps[i] = lp(toks[i], -1.0f - (float)i, 2);
    if (with_lp) c->logprobs = lps;
    d.prompt_tokens = prompt_tokens;
    d.completion_tokens = nt;
    ck_assert_int_eq(oai_result_add(r, g, &d), 0);
    free(d.choices);
}

static cJSON *parse(char *s)
{
    ck_assert_ptr_nonnull(s);
    cJSON *j = cJSON_Parse(s);
    ck_assert_msg(j != NULL, "not JSON: %s", s);
    free(s);
    return j;
}

static const struct oai_resp_ctx CTX = {NULL, "cmpl-abc", 1700000000, "tiny", NULL, 0};

START_TEST(completion_schema)
{
    struct oai_result r;
    ck_assert_int_eq(oai_result_init(&r, 1, 2), 0);
    int32_t t1[] = {5, 6}, t2[] = {7};
    feed(&r, 0, 2, 0, t1, 2, "he", SCHED_FINISH_NONE, false, 3);
    feed(&r, 0, 2, 0, t2, 1, "llo", SCHED_FINISH_LENGTH, false, 3);
    feed(&r, 0, 2, 1, t2, 1, "x", SCHED_FINISH_STOP, false, 3);
    cJSON *j = parse(oai_completion_json(&CTX, &r, false, -1));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, "cmpl-abc");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "text_completion");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "model")->valuestring, "tiny");
    ck_assert_int_eq((int)cJSON_GetObjectItem(j, "created")->valuedouble, 1700000000);
    cJSON *ch = cJSON_GetObjectItem(j, "choices");
    ck_assert_int_eq(cJSON_GetArraySize(ch), 2);
    cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "text")->valuestring, "hello");
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c0, "logprobs")));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 1), "finish_reason")->valuestring, "stop");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ch, 1), "index")->valueint, 1);
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    ck_assert_int_eq(cJSON_GetObjectItem(u, "prompt_tokens")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "completion_tokens")->valueint, 4);
    ck_assert_int_eq(cJSON_GetObjectItem(u, "total_tokens")->valueint, 7);
    cJSON_Delete(j);
    oai_result_fini(&r);
}
END_TEST

START_TEST(completion_logprobs_echo)
{
    struct oai_result r;
    ck_assert_int_eq(oai_result_init(&r, 1, 1), 0);
    r.groups[0].prompt_text = strdup("ab");
    r.groups[0].prompt_text_len = 2;
    struct sched_tok_lp *plp = calloc(2, sizeof *plp);
    plp[0] = lp(1, NAN, 0);
    plp[1] = lp(2, -3.0f, 2);
    r.groups[0].prompt_lps = plp;
    r.groups[0].num_prompt_lps = 2;
    int32_t t[] = {9};
    feed(&r, 0, 1, 0, t, 1, "c", SCHED_FINISH_LENGTH, true, 2);
    cJSON *j = parse(oai_completion_json(&CTX, &r, true, 2));
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "text")->valuestring, "abc");
    cJSON *L = cJSON_GetObjectItem(c0, "logprobs");
    cJSON *tl = cJSON_GetObjectItem(L, "token_logprobs");
    ck_assert_int_eq(cJSON_GetArraySize(tl), 3);
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(tl, 0)));      /* the first prompt token has none */
    ck_assert(cJSON_GetArrayItem(tl, 1)->valuedouble == -3.0);
    ck_assert(cJSON_GetArrayItem(tl, 2)->valuedouble == -1.0);
    cJSON *top = cJSON_GetObjectItem(L, "top_logprobs");
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(top, 0)));
    /* 2 alternatives + the chosen token */
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetArrayItem(top, 2)), 3);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(L, "tokens"), 2)->valuestring, "token_id:9");
    cJSON *off = cJSON_GetObjectItem(L, "text_offset");
    ck_assert_int_eq(cJSON_GetArrayItem(off, 0)->valueint, 0);
    ck_assert_int_eq(cJSON_GetArrayItem(off, 1)->valueint, (int)strlen("token_id:1"));
    cJSON_Delete(j);
    oai_result_fini(&r);
}
END_TEST

START_TEST(chat_schema)
{
    struct oai_result r;
    ck_assert_int_eq(oai_result_init(&r, 1, 1), 0);
    int32_t t[] = {5, 6};
    feed(&r, 0, 1, 0, t, 2, "Hi!", SCHED_FINISH_STOP, true, 4);
    struct oai_resp_ctx c = CTX;
    c.id = "chatcmpl-x";
    cJSON *j = parse(oai_chat_json(&c, &r, 1));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *m = cJSON_GetObjectItem(c0, "message");
    ck_assert_str_eq(cJSON_GetObjectItem(m, "role")->valuestring, "assistant");
    ck_assert_str_eq(cJSON_GetObjectItem(m, "content")->valuestring, "Hi!");
    cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "content");
    ck_assert_int_eq(cJSON_GetArraySize(content), 2);
    cJSON *e0 = cJSON_GetArrayItem(content, 0);
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(e0, "token")));
    ck_assert(cJSON_IsArray(cJSON_GetObjectItem(e0, "bytes")));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(e0, "top_logprobs")), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop");
    cJSON_Delete(j);
    oai_result_fini(&r);
}
END_TEST

START_TEST(stop_reason)
{
    const char *stops[] = {"END"};
    struct oai_resp_ctx c = CTX;
    c.stop = stops;
    c.num_stop = 1;
    cJSON *j = parse(oai_chunk_json(&c, OAI_COMPLETION, 0, "x", NULL, 0, false, -1, SCHED_FINISH_STOP, -1, 0, NULL, false));
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "stop_reason")->valuestring, "END");
    cJSON_Delete(j);
    j = parse(oai_chunk_json(&c, OAI_COMPLETION, 0, "x", NULL, 0, false, -1, SCHED_FINISH_STOP, 100257, -1, NULL, false));
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(c0, "stop_reason")->valueint, 100257);
    cJSON_Delete(j);
}
END_TEST

START_TEST(stream_chunks)
{
    struct oai_resp_ctx c = CTX;
    cJSON *j = parse(oai_chunk_chat_role(&c, 1, true));
    ck_assert_str_eq(cJSON_GetObjectItem(j, "object")->valuestring, "chat.completion.chunk");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(c0, "index")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "role")->valuestring, "assistant");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(c0, "finish_reason")));
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "usage")));
    cJSON_Delete(j);
    /* the final chat chunk: empty delta, finish_reason */
    j = parse(oai_chunk_json(&c, OAI_CHAT, 0, "", NULL, 0, false, -1, SCHED_FINISH_LENGTH, -1, -1, NULL, false));
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(c0, "delta")), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "length");
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "usage"));
    cJSON_Delete(j);
    /* completions chunk with logprobs keeps text_offset running */
    struct sched_tok_lp l[2] = {lp(3, -1, 1), lp(4, -2, 1)};
    int off = 10;
    j = parse(oai_chunk_json(&c, OAI_COMPLETION, 0, "ab", l, 2, false, 1, SCHED_FINISH_NONE, -1, -1, &off, false));
    c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ck_assert_int_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "logprobs"), "text_offset"), 0)->valueint, 10);
    ck_assert_int_eq(off, 10 + 2 * (int)strlen("token_id:3"));
    cJSON_Delete(j);
    j = parse(oai_chunk_usage(&c, OAI_CHAT, 5, 7));
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint, 12);
    cJSON_Delete(j);
}
END_TEST

START_TEST(ids)
{
    char a[64], b[64];
    oai_make_id(a, sizeof a, "cmpl-");
    oai_make_id(b, sizeof b, "cmpl-");
    ck_assert(!strncmp(a, "cmpl-", 5));
    ck_assert_int_eq((int)strlen(a), 5 + 24);
    ck_assert_str_ne(a, b);
    ck_assert_str_eq(oai_finish_reason(SCHED_FINISH_STOP), "stop");
    ck_assert_str_eq(oai_finish_reason(SCHED_FINISH_LENGTH), "length");
    ck_assert_ptr_null(oai_finish_reason(SCHED_FINISH_NONE));
}
END_TEST

Suite *oai_response_suite(void)
{
    Suite *s = suite_create("oai_response");
    TCase *t = tcase_create("response");
    tcase_add_test(t, completion_schema);
    tcase_add_test(t, completion_logprobs_echo);
    tcase_add_test(t, chat_schema);
    tcase_add_test(t, stop_reason);
    tcase_add_test(t, stream_chunks);
    tcase_add_test(t, ids);
    suite_add_tcase(s, t);
    return s;
}
