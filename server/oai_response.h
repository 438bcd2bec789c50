/* server/oai_response.h: OpenAI response bodies (completions and chat,
 * streaming chunks and whole responses) from the scheduler's output.
 *
 * defines: struct oai_choice_acc, struct oai_group, struct oai_result,
 *          struct oai_resp_ctx, oai_result_init, oai_result_fini,
 *          oai_result_add, oai_completion_json, oai_chat_json,
 *          oai_chunk_json, oai_chunk_chat_role, oai_chunk_usage,
 *          oai_finish_reason, oai_make_id
 *
 * Threads: any thread; a result belongs to one request (its HTTP side).
 *
 * Schemas are OpenAI's: ids cmpl-... / chatcmpl-..., object "text_completion"
 * / "chat.completion" / "chat.completion.chunk", choices with index, text or
 * message, logprobs in the completions schema ({tokens, token_logprobs,
 * top_logprobs, text_offset}) or the chat schema ({content:[{token, logprob,
 * bytes, top_logprobs}]}), finish_reason "stop"/"length", usage.
 * vLLM's stop_reason (the stop string or token id that matched, else null) is
 * added to each choice, as vLLM does.
 */
#ifndef DS_SERVER_OAI_RESPONSE_H
#define DS_SERVER_OAI_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/tokenizer.h"
#include "scheduler/sched.h"
#include "server/oai_parse.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Everything one choice produced (non-streaming accumulation). */
struct oai_choice_acc {
    char *text;                       /* owned, NUL-terminated */
    size_t len, cap;
    int32_t *tokens;                  /* [num_tokens] owned */
    struct sched_tok_lp *lps;         /* [num_tokens] owned when logprobs asked */
    int num_tokens, cap_tokens;
    enum sched_finish finish;
    int32_t stop_token;               /* -1 none */
    int stop_index;                   /* -1 none */
};

/* One prompt and its n choices. */
struct oai_group {
    char *prompt_text;                /* owned: echo text ("" when not echoing) */
    size_t prompt_text_len;
    int32_t *prompt_ids;              /* owned [num_prompt_ids] */
    int num_prompt_ids;
    struct sched_tok_lp *prompt_lps;  /* owned [num_prompt_lps] (echo + logprobs) */
    int num_prompt_lps;
    struct oai_choice_acc *choices;   /* [n] owned */
    int prompt_tokens, completion_tokens;
};

struct oai_result {
    int num_groups, n;
    struct oai_group *groups;         /* [num_groups] owned */
};

struct oai_resp_ctx {
    const struct tokenizer *tok;      /* borrowed: token strings for logprobs */
    const char *id;                   /* "cmpl-..." */
    int64_t created;                  /* unix seconds */
    const char *model;                /* served model name */
    const char *const *stop;          /* the request's stop strings (for stop_reason) */
    int num_stop;
};

/* Returns 0 or SRV_ENOMEM. */
int oai_result_init(struct oai_result *r, int num_groups, int n);
void oai_result_fini(struct oai_result *r);
/* Append one drained delta of group g (moves prompt log-probs out of d).
 * Returns 0 or SRV_ENOMEM. */
int oai_result_add(struct oai_result *r, int g, struct sched_delta *d);

/* Whole responses: malloc'd JSON strings (NULL on out of memory).
 * echo: prepend each group's prompt text (and prompt log-probs). logprobs: the
 * request's k (-1 none). */
char *oai_completion_json(const struct oai_resp_ctx *c, const struct oai_result *r, bool echo, int logprobs);
char *oai_chat_json(const struct oai_resp_ctx *c, const struct oai_result *r, int logprobs);

/* One streaming chunk for choice `index`: new text (with its tokens' log-probs
 * when lps != NULL; for echo, prompt entries come first with lps[0] the
 * null-logprob first token), and the finish reason when finish != NONE.
 * *text_offset carries the completions schema's text_offset across chunks.
 * usage_null: add "usage": null (stream_options.include_usage is set). */
char *oai_chunk_json(const struct oai_resp_ctx *c, enum oai_kind kind, int index, const char *text,
                     const struct sched_tok_lp *lps, int num_lps, bool first_lp_null, int logprobs,
                     enum sched_finish finish, int32_t stop_token, int stop_index,
                     int *text_offset, bool usage_null);
/* The chat role chunk ({"delta":{"role":"assistant","content":""}}). */
char *oai_chunk_chat_role(const struct oai_resp_ctx *c, int index, bool usage_null);
/* The final usage chunk (choices []). */
char *oai_chunk_usage(const struct oai_resp_ctx *c, enum oai_kind kind, int prompt_tokens,
                      int completion_tokens);

/* "stop" | "length" | "abort" | NULL */
const char *oai_finish_reason(enum sched_finish f);
/* prefix + 24 random hex digits into buf (>= strlen(prefix) + 25). */
void oai_make_id(char *buf, size_t len, const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
