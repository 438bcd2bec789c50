/* tests/unit/check_oai_parse.c: request parsing and validation (server/oai_parse.c)
 * and the error table (server/errors.c). */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/errors.h"
#include "server/oai_parse.h"

static struct oai_limits lim(void)
{
    struct oai_limits l;
    oai_limits_init(&l);
    l.vocab_size = 1000;
    return l;
}

static int parse(enum oai_kind k, const char *body, struct oai_request *r, struct srv_error *e)
{
    struct oai_limits l = lim();
    memset(e, 0, sizeof *e);
    return oai_parse(k, body, strlen(body), &l, r, e);
}

/* Expect a rejection naming `param`. */
static void expect_bad(enum oai_kind k, const char *body, int code, const char *param)
{
    struct oai_request r;
    struct srv_error e;
    int rc = parse(k, body, &r, &e);
    ck_assert_msg(rc == code, "body %s: rc %d, want %d (%s)", body, rc, code, e.message);
    ck_assert_int_eq(e.code, code);
    if (param) ck_assert_msg(!strcmp(e.param, param), "body %s: param '%s', want '%s'", body, e.param, param);
    ck_assert_msg(e.message[0], "empty message");
    oai_request_fini(&r);
}

START_TEST(completion_defaults)
{
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_COMPLETION, "{\"model\":\"m\",\"prompt\":\"hi\"}", &r, &e), 0);
    ck_assert_str_eq(r.model, "m");
    ck_assert_int_eq(r.num_prompts, 1);
    ck_assert_str_eq(r.prompts[0].text, "hi");
    ck_assert_int_eq(r.max_tokens, 16);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.logprobs, -1);
    ck_assert(!r.has_temperature && !r.stream && !r.echo && r.skip_special_tokens && r.add_special_tokens);
    oai_request_fini(&r);
}
END_TEST

START_TEST(completion_all_fields)
{
    const char *body =
        "{\"model\":\"m\",\"prompt\":[[1,2,3],[4]],\"max_tokens\":0,\"temperature\":0.5,\"top_p\":0.9,"
        "\"n\":2,\"stream\":true,\"stream_options\":{\"include_usage\":true},\"stop\":[\"a\",\"bc\"],"
        "\"seed\":-7,\"presence_penalty\":1.5,\"frequency_penalty\":-1,\"logit_bias\":{\"5\":-100,\"7\":3.5},"
        "\"logprobs\":5,\"echo\":true,\"user\":\"u\",\"top_k\":40,\"min_p\":0.05,\"repetition_penalty\":1.1,"
        "\"min_tokens\":0,\"ignore_eos\":true,\"stop_token_ids\":[9,10],\"skip_special_tokens\":false,"
        "\"include_stop_str_in_output\":true,\"unknown_field\":{\"x\":[1]},\"suffix\":null}";
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_COMPLETION, body, &r, &e), 0);
    ck_assert_int_eq(r.num_prompts, 2);
    ck_assert_int_eq(r.prompts[0].num_ids, 3);
    ck_assert_int_eq(r.prompts[0].ids[2], 3);
    ck_assert_int_eq(r.prompts[1].ids[0], 4);
    ck_assert_int_eq(r.max_tokens, 0);
    ck_assert(r.has_temperature && fabs(r.temperature - 0.5) < 1e-12);
    ck_assert_int_eq(r.n, 2);
    ck_assert(r.stream && r.include_usage);
    ck_assert_int_eq(r.num_stop, 2);
    ck_assert_str_eq(r.stop[1], "bc");
    ck_assert(r.has_seed && r.seed == (uint64_t)(int64_t)-7);
    ck_assert_int_eq(r.num_logit_bias, 2);
    ck_assert_int_eq(r.logit_bias[0].token, 5);
    ck_assert(r.logit_bias[0].bias == -100.0f);
    ck_assert_int_eq(r.logprobs, 5);
    ck_assert(r.echo && r.ignore_eos && !r.skip_special_tokens && r.include_stop_str_in_output);
    ck_assert_int_eq(r.top_k, 40);
    ck_assert_int_eq(r.num_stop_token_ids, 2);
    ck_assert_str_eq(r.user, "u");
    oai_request_fini(&r);
}
END_TEST

START_TEST(prompt_forms)
{
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_COMPLETION, "{\"prompt\":[\"a\",\"b\",\"c\"]}", &r, &e), 0);
    ck_assert_int_eq(r.num_prompts, 3);
    ck_assert_str_eq(r.prompts[2].text, "c");
    oai_request_fini(&r);
    ck_assert_int_eq(parse(OAI_COMPLETION, "{\"prompt\":[1,2]}", &r, &e), 0);
    ck_assert_int_eq(r.num_prompts, 1);
    ck_assert_int_eq(r.prompts[0].num_ids, 2);
    ck_assert_ptr_null(r.prompts[0].text);
    oai_request_fini(&r);
    expect_bad(OAI_COMPLETION, "{\"prompt\":[]}", SRV_EINVAL, "prompt");
    {
        /* more prompts than one request may carry */
        size_t cap = 1025 * 4 + 32;
        char *big = malloc(cap);
        size_t o = (size_t)snprintf(big, cap, "{\"prompt\":[");
        for (int i = 0; i < 1025; i++) o += (size_t)snprintf(big + o, cap - o, "%s\"a\"", i ? "," : "");
        snprintf(big + o, cap - o, "]}");
        expect_bad(OAI_COMPLETION, big, SRV_EINVAL, "prompt");
        free(big);
    }
    expect_bad(OAI_COMPLETION, "{\"prompt\":[\"a\",1]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":[1,\"a\"]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":[[1],[]]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":[1,2000]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":[1,-2]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":[1.5]}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":7}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"model\":\"m\"}", SRV_EINVAL, "prompt");
    expect_bad(OAI_COMPLETION, "{\"prompt\":null}", SRV_EINVAL, "prompt");
}
END_TEST

START_TEST(bad_json)
{
    expect_bad(OAI_COMPLETION, "{\"prompt\":", SRV_EJSON, NULL);
    expect_bad(OAI_COMPLETION, "", SRV_EJSON, NULL);
    expect_bad(OAI_COMPLETION, "[1,2]", SRV_EJSON, NULL);
    expect_bad(OAI_COMPLETION, "\"str\"", SRV_EJSON, NULL);
    expect_bad(OAI_CHAT, "nope", SRV_EJSON, NULL);
    /* trailing garbage after an object */
    expect_bad(OAI_COMPLETION, "{\"prompt\":\"a\"} x", SRV_EJSON, NULL);
    /* JSON text must be UTF-8: stray, overlong, surrogate and truncated sequences */
    expect_bad(OAI_COMPLETION, "{\"prompt\":\"a\xff\"}", SRV_EJSON, NULL);
    expect_bad(OAI_COMPLETION, "{\"prompt\":\"\xc0\xaf\"}", SRV_EJSON, NULL);
    expect_bad(OAI_COMPLETION, "{\"prompt\":\"\xed\xa0\x80\"}", SRV_EJSON, NULL);
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"\xe2\x82\"}]}", SRV_EJSON, NULL);
    /* valid multi-byte text still parses */
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_COMPLETION, "{\"prompt\":\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", &r, &e), 0);
    oai_request_fini(&r);
}
END_TEST

/* Each field: a wrong type and an out-of-range value are rejected naming it. */
START_TEST(field_types_and_ranges)
{
    static const struct { const char *frag, *param; int code; } cases[] = {
        {"\"max_tokens\":\"5\"", "max_tokens", SRV_EINVAL},
        {"\"max_tokens\":-1", "max_tokens", SRV_EINVAL},
        {"\"max_tokens\":1.5", "max_tokens", SRV_EINVAL},
        {"\"temperature\":\"hot\"", "temperature", SRV_EINVAL},
        {"\"temperature\":-0.1", "temperature", SRV_EINVAL},
        {"\"temperature\":2.5", "temperature", SRV_EINVAL},
        {"\"top_p\":0", "top_p", SRV_EINVAL},
        {"\"top_p\":1.01", "top_p", SRV_EINVAL},
        {"\"top_p\":true", "top_p", SRV_EINVAL},
        {"\"n\":0", "n", SRV_EINVAL},
        {"\"n\":1000", "n", SRV_EINVAL},
        {"\"n\":\"2\"", "n", SRV_EINVAL},
        {"\"stream\":1", "stream", SRV_EINVAL},
        {"\"stream_options\":{\"include_usage\":true}", "stream_options", SRV_EINVAL},
        {"\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}", "stream_options.include_usage", SRV_EINVAL},
        {"\"stream\":true,\"stream_options\":5", "stream_options", SRV_EINVAL},
        {"\"stop\":5", "stop", SRV_EINVAL},
        {"\"stop\":[\"a\",5]", "stop", SRV_EINVAL},
        {"\"stop\":[\"\"]", "stop", SRV_EINVAL},
        {"\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]", "stop", SRV_EINVAL},
        {"\"seed\":\"1\"", "seed", SRV_EINVAL},
        {"\"seed\":0.5", "seed", SRV_EINVAL},
        {"\"presence_penalty\":2.5", "presence_penalty", SRV_EINVAL},
        {"\"frequency_penalty\":-3", "frequency_penalty", SRV_EINVAL},
        {"\"logit_bias\":[1]", "logit_bias", SRV_EINVAL},
        {"\"logit_bias\":{\"x\":1}", "logit_bias", SRV_EINVAL},
        {"\"logit_bias\":{\"5\":101}", "logit_bias", SRV_EINVAL},
        {"\"logit_bias\":{\"5\":\"1\"}", "logit_bias", SRV_EINVAL},
        {"\"logit_bias\":{\"99999\":1}", "logit_bias", SRV_EINVAL},
        {"\"logprobs\":21", "logprobs", SRV_EINVAL},
        {"\"logprobs\":-1", "logprobs", SRV_EINVAL},
        {"\"logprobs\":true", "logprobs", SRV_EINVAL},
        {"\"echo\":\"yes\"", "echo", SRV_EINVAL},
        {"\"user\":5", "user", SRV_EINVAL},
        {"\"top_k\":-2", "top_k", SRV_EINVAL},
        {"\"top_k\":1.5", "top_k", SRV_EINVAL},
        {"\"min_p\":1.5", "min_p", SRV_EINVAL},
        {"\"repetition_penalty\":0", "repetition_penalty", SRV_EINVAL},
        {"\"min_tokens\":-1", "min_tokens", SRV_EINVAL},
        {"\"min_tokens\":20,\"max_tokens\":10", "min_tokens", SRV_EINVAL},
        {"\"ignore_eos\":0", "ignore_eos", SRV_EINVAL},
        {"\"stop_token_ids\":[1,\"2\"]", "stop_token_ids", SRV_EINVAL},
        {"\"stop_token_ids\":5", "stop_token_ids", SRV_EINVAL},
        {"\"skip_special_tokens\":\"no\"", "skip_special_tokens", SRV_EINVAL},
        {"\"include_stop_str_in_output\":1", "include_stop_str_in_output", SRV_EINVAL},
        {"\"model\":5", "model", SRV_EINVAL},
        {"\"suffix\":\"x\"", "suffix", SRV_ENOTSUP},
        {"\"best_of\":3", "best_of", SRV_ENOTSUP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char body[1024];
        snprintf(body, sizeof body, "{\"prompt\":\"x\",%s}", cases[i].frag);
        expect_bad(OAI_COMPLETION, body, cases[i].code, cases[i].param);
    }
}
END_TEST

START_TEST(nulls_are_absent)
{
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_COMPLETION,
                           "{\"prompt\":\"x\",\"temperature\":null,\"max_tokens\":null,\"stop\":null,"
                           "\"logprobs\":null,\"seed\":null,\"logit_bias\":null,\"n\":null,\"user\":null}",
                           &r, &e), 0);
    ck_assert(!r.has_temperature && !r.has_seed);
    ck_assert_int_eq(r.max_tokens, 16);
    ck_assert_int_eq(r.logprobs, -1);
    oai_request_fini(&r);
    /* a single empty stop string means none */
    ck_assert_int_eq(parse(OAI_COMPLETION, "{\"prompt\":\"x\",\"stop\":\"\"}", &r, &e), 0);
    ck_assert_int_eq(r.num_stop, 0);
    oai_request_fini(&r);
}
END_TEST

START_TEST(chat_messages)
{
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be nice\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}],"
        "\"max_completion_tokens\":7,\"logprobs\":true,\"top_logprobs\":3,"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";
    struct oai_request r;
    struct srv_error e;
    ck_assert_int_eq(parse(OAI_CHAT, body, &r, &e), 0);
    ck_assert_int_eq(r.num_messages, 4);
    ck_assert_int_eq(r.max_tokens, 7);
    ck_assert_int_eq(r.logprobs, 3);
    ck_assert(!r.add_special_tokens && r.add_generation_prompt);
    ck_assert_ptr_nonnull(r.tools_json);
    cJSON *m = cJSON_Parse(r.messages_json);
    ck_assert(cJSON_IsArray(m));
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "content")->valuestring, "a\nb");
    cJSON *a = cJSON_GetArrayItem(m, 2);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(a, "content")));
    cJSON *args = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "tool_calls"), 0), "function"), "arguments");
    ck_assert(cJSON_IsObject(args)); /* the JSON string became an object for the template */
    ck_assert_int_eq(cJSON_GetObjectItem(args, "x")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "tool_call_id")->valuestring, "c1");
    cJSON_Delete(m);
    oai_request_fini(&r);
    /* chat defaults: max_tokens unset, logprobs false */
    ck_assert_int_eq(parse(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &r, &e), 0);
    ck_assert_int_eq(r.max_tokens, -1);
    ck_assert_int_eq(r.logprobs, -1);
    oai_request_fini(&r);
    ck_assert_int_eq(parse(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true}", &r, &e), 0);
    ck_assert_int_eq(r.logprobs, 0);
    oai_request_fini(&r);
}
END_TEST

START_TEST(chat_bad)
{
    expect_bad(OAI_CHAT, "{}", SRV_EINVAL, "messages");
    expect_bad(OAI_CHAT, "{\"messages\":[]}", SRV_EINVAL, "messages");
    expect_bad(OAI_CHAT, "{\"messages\":{}}", SRV_EINVAL, "messages");
    expect_bad(OAI_CHAT, "{\"messages\":[5]}", SRV_EINVAL, "messages[0]");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", SRV_EINVAL, "messages[0].role");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", SRV_EINVAL, "messages[0].content");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":5}]}",
               SRV_EINVAL, "messages[1].content");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}",
               SRV_ENOTSUP, "messages[0].content");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", SRV_EINVAL,
               "messages[0].content");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"not json\"}}]}]}",
               SRV_EINVAL, "messages[0].tool_calls");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":5}]}", SRV_EINVAL, "messages[0].tool_calls");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"name\":5}]}", SRV_EINVAL, "messages[0].name");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", SRV_EINVAL, "top_logprobs");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}",
               SRV_EINVAL, "top_logprobs");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":3}", SRV_EINVAL, "logprobs");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_object\"}}",
               SRV_ENOTSUP, "response_format");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", SRV_EINVAL, "tools");
    expect_bad(OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":-5}",
               SRV_EINVAL, "max_completion_tokens");
}
END_TEST

START_TEST(tokenize_requests)
{
    struct oai_limits l = lim();
    struct oai_tok_request q;
    struct srv_error e;
    const char *b1 = "{\"model\":\"m\",\"prompt\":\"hello\"}";
    ck_assert_int_eq(oai_parse_tokenize(b1, strlen(b1), &l, &q, &e), 0);
    ck_assert_str_eq(q.prompt, "hello");
    ck_assert(q.add_special_tokens);
    oai_tok_request_fini(&q);
    const char *b2 = "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"add_generation_prompt\":false}";
    ck_assert_int_eq(oai_parse_tokenize(b2, strlen(b2), &l, &q, &e), 0);
    ck_assert_ptr_nonnull(q.messages_json);
    ck_assert(!q.add_special_tokens && !q.add_generation_prompt);
    oai_tok_request_fini(&q);
    const char *b3 = "{\"prompt\":5}";
    ck_assert_int_eq(oai_parse_tokenize(b3, strlen(b3), &l, &q, &e), SRV_EINVAL);
    ck_assert_str_eq(e.param, "prompt");
    const char *b4 = "{\"tokens\":[1,2,3]}";
    ck_assert_int_eq(oai_parse_detokenize(b4, strlen(b4), &l, &q, &e), 0);
    ck_assert_int_eq(q.num_tokens, 3);
    oai_tok_request_fini(&q);
    const char *b5 = "{\"tokens\":[1,5000]}";
    ck_assert_int_eq(oai_parse_detokenize(b5, strlen(b5), &l, &q, &e), SRV_EINVAL);
    ck_assert_str_eq(e.param, "tokens");
    const char *b6 = "{\"tokens\":\"1\"}";
    ck_assert_int_eq(oai_parse_detokenize(b6, strlen(b6), &l, &q, &e), SRV_EINVAL);
}
END_TEST

START_TEST(error_objects)
{
    static const struct { int code, status; } map[] = {
        {SRV_EINVAL, 400}, {SRV_EJSON, 400}, {SRV_ETOOLONG, 400}, {SRV_EAUTH, 401}, {SRV_ENOTFOUND, 404},
        {SRV_ENOMODEL, 404}, {SRV_EMETHOD, 405}, {SRV_ETOOBIG, 413}, {SRV_EQUEUE, 429}, {SRV_EUNAVAIL, 503},
        {SRV_ENOTSUP, 400}, {SRV_ENOMEM, 500}, {SRV_EINTERNAL, 500}, {SRV_ETIMEOUT, 408}, {7, 500}, {-99, 500},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        ck_assert_int_eq(srv_err_status(map[i].code), map[i].status);
    struct srv_error e;
    srv_err_set(&e, SRV_EINVAL, "temperature", "'%s' bad \"quoted\"", "temperature");
    char *s = srv_err_json(&e);
    cJSON *j = cJSON_Parse(s);
    cJSON *o = cJSON_GetObjectItem(j, "error");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "message")->valuestring, "'temperature' bad \"quoted\"");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "type")->valuestring, "invalid_request_error");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "param")->valuestring, "temperature");
    ck_assert(cJSON_IsString(cJSON_GetObjectItem(o, "code")));
    cJSON_Delete(j);
    free(s);
    srv_err_set(&e, SRV_EQUEUE, NULL, "busy");
    s = srv_err_json(&e);
    j = cJSON_Parse(s);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "param")));
    cJSON_Delete(j);
    free(s);
}
END_TEST

Suite *oai_parse_suite(void)
{
    Suite *s = suite_create("oai_parse");
    TCase *t = tcase_create("parse");
    tcase_add_test(t, completion_defaults);
    tcase_add_test(t, completion_all_fields);
    tcase_add_test(t, prompt_forms);
    tcase_add_test(t, bad_json);
    tcase_add_test(t, field_types_and_ranges);
    tcase_add_test(t, nulls_are_absent);
    tcase_add_test(t, chat_messages);
    tcase_add_test(t, chat_bad);
    tcase_add_test(t, tokenize_requests);
    tcase_add_test(t, error_objects);
    suite_add_tcase(s, t);
    return s;
}
