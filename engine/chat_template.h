/* engine/chat_template.h: chat templates (a Jinja subset) rendered exactly as
 * @huggingface/jinja renders them.
 *
 * defines: tmpl_create, tmpl_destroy, tmpl_render, tmpl_load_for_model,
 *          tmpl_variant, tmpl_variant_names, tmpl_chatml_source
 *
 * A checkpoint ships its prompt format as a Jinja template (chat_template.jinja,
 * or tokenizer_config.json "chat_template" as a string or a list of
 * {name, template}). The server renders it for every chat request, so:
 *   - parsing happens once at startup; an unsupported construct (unknown
 *     statement, filter or test, syntax error) fails tmpl_create with a message
 *     naming the template line;
 *   - rendering is a pure function of (template, context): the parsed template
 *     is never written during a render, so one struct tmpl may be rendered from
 *     any number of threads at once without locking;
 *   - errors while rendering (raise_exception() in the template, a type error
 *     caused by the request's data, limits) come back as an error code and a
 *     message; nothing the request contains can crash or exit the process.
 *
 * Semantics are those of @huggingface/jinja 0.5.x (Template(): trim_blocks and
 * lstrip_blocks on, a single trailing newline of the source dropped), which
 * differ from Python Jinja2 in places (e.g. {{ true }} renders "true", string
 * comparison with < is an error). See docs/api.md "## Chat templates" for what
 * is supported.
 *
 * Threads: tmpl_create/tmpl_load_for_model/tmpl_destroy at startup/shutdown
 * (one thread); tmpl_render and tmpl_variant from any thread concurrently.
 */
#ifndef DS_ENGINE_CHAT_TEMPLATE_H
#define DS_ENGINE_CHAT_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TMPL_OK 0
#define TMPL_ERENDER (-1) /* the template or the request's data failed; err says why (HTTP 400) */
#define TMPL_ENOMEM (-2)  /* malloc failed for the output (HTTP 500) */

struct tmpl;

/* Parses `source` (UTF-8, NUL-terminated). Returns a template owned by the
 * caller (free with tmpl_destroy), or NULL with a message such as
 * "template line 12: unsupported filter 'wordcount'" in err (errlen bytes,
 * always NUL-terminated when errlen > 0). */
struct tmpl *tmpl_create(const char *source, char *err, size_t errlen);

/* Frees a template and every variant it owns. NULL is a no-op. Must not race
 * with renders of the same template. */
void tmpl_destroy(struct tmpl *t);

/* Renders `t` with the variables in `context` (a cJSON object, borrowed, only
 * read): typically messages, tools, add_generation_prompt, bos_token,
 * eos_token, and any extra kwargs (documents, enable_thinking, ...). Values keep
 * their JSON types (tool-call "arguments" must already be an object where the
 * template iterates them). If context has no "bos_token" / "eos_token" and the
 * template came from tmpl_load_for_model with those tokens in
 * tokenizer_config.json, they are provided.
 *
 * Variant choice: if `t` was loaded from a named list and context has a
 * non-null "tools", the "tool_use" variant renders when present (as
 * transformers chooses); otherwise `t` itself ("default").
 *
 * On TMPL_OK, *out is a malloc'd NUL-terminated string the caller frees.
 * On error *out is NULL and err holds the message (raise_exception's text as
 * written by the template; other errors name the template line).
 * Thread-safe for concurrent calls on the same template. Each calling thread
 * keeps up to 4 MiB of scratch memory cached for its next renders (freed at
 * thread exit). */
int tmpl_render(const struct tmpl *t, const cJSON *context, char **out, char *err, size_t errlen);

/* Loads the chat template of a Hugging Face model directory, in this order:
 *   1. model_dir/chat_template.jinja            (variant "default")
 *   2. model_dir/tokenizer_config.json "chat_template": a string, or a list
 *      of {"name": ..., "template": ...} (all variants parsed; "default" is
 *      the one returned, else the first listed)
 *   3. model_dir/chat_template.json "chat_template" (string)
 * bos_token / eos_token of tokenizer_config.json (a string or an AddedToken
 * object with "content") are kept as render defaults.
 * If the model has no template, the ChatML template is used, a LOG_WARN is
 * logged and *used_fallback is set to 1 (else 0; used_fallback may be NULL).
 * Returns NULL with err set if a present template fails to parse (the message
 * names the file, the variant and the line) or a file is unreadable / invalid
 * JSON. */
struct tmpl *tmpl_load_for_model(const char *model_dir, char *err, size_t errlen, int *used_fallback);

/* The variant `name` ("default", "tool_use", ...) of a loaded template, or NULL
 * if the model has no such variant. "default" always returns t itself. The
 * result is owned by t. */
const struct tmpl *tmpl_variant(const struct tmpl *t, const char *name);

/* Names of the variants (t's own name first); returns how many, fills up to
 * max names (borrowed strings owned by t). */
size_t tmpl_variant_names(const struct tmpl *t, const char **names, size_t max);

/* The ChatML template used as fallback (static string). */
const char *tmpl_chatml_source(void);

#ifdef __cplusplus
}
#endif
#endif
