/* server/oai_parse.h: OpenAI (+ vLLM extension) request bodies -> plain structs.
 *
 * defines: enum oai_kind, struct oai_prompt, struct oai_limits,
 *          struct oai_request, oai_parse, oai_request_fini,
 *          oai_parse_tokenize, oai_parse_detokenize, struct oai_tok_request
 *
 * Threads: pure; any thread (HTTP worker threads call it). The cJSON tree lives
 * only inside oai_parse; the result holds plain malloc'd copies.
 *
 * Validation: every known field is checked for type and range and an error
 * names the field in srv_error.param (OpenAI's "param"); unknown fields are
 * ignored, because clients send extras. Only checks that need the model
 * (prompt length against the context, token ids against the vocabulary when
 * vocab_size is 0 in limits) are left to the caller/scheduler.
 */
#ifndef DS_SERVER_OAI_PARSE_H
#define DS_SERVER_OAI_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampling.h"
#include "server/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

enum oai_kind { OAI_COMPLETION = 0, OAI_CHAT = 1 };

/* One completions prompt: text, or token ids (exactly one is set). */
struct oai_prompt {
    char *text;                 /* owned, NUL-terminated; NULL for ids */
    size_t text_len;
    int32_t *ids;               /* owned; NULL for text */
    int num_ids;
};

struct oai_limits {
    int max_logprobs;           /* 20 */
    int max_n;                  /* largest n (default 128) */
    int vocab_size;             /* > 0: token ids (prompt, stop_token_ids, logit_bias) checked */
    int max_stop;               /* stop strings at most (default 16) */
    int max_prompts;            /* prompts in one completions request (default 1024) */
};

struct oai_request {
    enum oai_kind kind;
    char *model;                /* owned; NULL when absent */
    /* completions */
    struct oai_prompt *prompts; /* [num_prompts] owned; each prompt is its own choices */
    int num_prompts;
    bool echo;
    /* chat: the messages re-serialized as a JSON array of
     * {"role","content"(string or null),"name"?,"tool_calls"?,"tool_call_id"?},
     * content parts already joined; tools passed through as given. */
    char *messages_json;        /* owned */
    int num_messages;
    char *tools_json;           /* owned; NULL when absent */
    bool add_generation_prompt; /* vLLM: default true */
    bool continue_final_message;/* vLLM: default false */
    char *chat_template_kwargs_json; /* owned; NULL when absent */
    /* both */
    bool add_special_tokens;    /* completions true, chat false (vLLM) */
    int max_tokens;             /* -1 = not given */
    bool has_temperature, has_top_p, has_top_k, has_repetition_penalty;
    double temperature, top_p, min_p;
    int top_k;
    double presence_penalty, frequency_penalty, repetition_penalty;
    int n;
    bool stream, include_usage, continuous_usage_stats;
    char **stop;                /* [num_stop] owned */
    int num_stop;
    int32_t *stop_token_ids;    /* [num_stop_token_ids] owned */
    int num_stop_token_ids;
    bool has_seed;
    uint64_t seed;
    struct samp_bias *logit_bias; /* [num_logit_bias] owned */
    int num_logit_bias;
    int logprobs;               /* -1 = none; completions: k; chat: top_logprobs (0 when only logprobs) */
    int prompt_logprobs;        /* vLLM extension, -1 = none */
    char *user;                 /* owned; NULL when absent */
    int min_tokens;
    bool ignore_eos, skip_special_tokens, include_stop_str_in_output;
};

/* Parse a /v1/completions (OAI_COMPLETION) or /v1/chat/completions (OAI_CHAT)
 * body. Returns 0, or a negative enum srv_err with err filled (SRV_EJSON for
 * malformed JSON, SRV_EINVAL/SRV_ENOTSUP naming the field). On failure *out is
 * left clean (oai_request_fini is still safe). */
int oai_parse(enum oai_kind kind, const char *body, size_t len, const struct oai_limits *lim,
              struct oai_request *out, struct srv_error *err);
void oai_request_fini(struct oai_request *r);
void oai_limits_init(struct oai_limits *l);

/* POST /tokenize (vLLM): {"model"?, "prompt": str} or {"model"?, "messages": [...]},
 * "add_special_tokens" (default true for prompt, false for messages),
 * "add_generation_prompt" (default true). */
struct oai_tok_request {
    char *model;                /* owned or NULL */
    char *prompt;               /* owned or NULL */
    size_t prompt_len;
    char *messages_json;        /* owned or NULL (chat form) */
    char *tools_json;
    bool add_special_tokens;
    bool add_generation_prompt;
    bool continue_final_message;
    /* POST /detokenize: {"model"?, "tokens": [ids]} */
    int32_t *tokens;            /* owned or NULL */
    int num_tokens;
};
int oai_parse_tokenize(const char *body, size_t len, const struct oai_limits *lim,
                       struct oai_tok_request *out, struct srv_error *err);
int oai_parse_detokenize(const char *body, size_t len, const struct oai_limits *lim,
                         struct oai_tok_request *out, struct srv_error *err);
void oai_tok_request_fini(struct oai_tok_request *r);

#ifdef __cplusplus
}
#endif
#endif
