/* server/chat.h: chat messages -> prompt text through the model's chat
 * template (engine/chat_template.h), for /v1/chat/completions, /tokenize and
 * the offline CLI.
 *
 * defines: chat_load, chat_free, chat_render
 *
 * Threads: any HTTP thread (the template is read-only after loading).
 */
#ifndef DS_SERVER_CHAT_H
#define DS_SERVER_CHAT_H

#include <stdbool.h>

#include "server/app.h"
#include "server/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Load the model directory's chat template (override_path: a template file
 * given by --chat-template, or NULL). *out = NULL is not an error when this
 * build has no template engine (chat requests then get a clear 400). Returns
 * 0 or -1 with err. Main thread. */
int chat_load(struct tmpl **out, const char *model_dir, const char *override_path, char *err, size_t errlen);
void chat_free(struct tmpl *t);

/* Render messages_json (oai_parse's normalized array) with tools_json (NULL =
 * none) and chat_template_kwargs (NULL = none). *out: malloc'd prompt text.
 * Returns 0, or SRV_ENOTSUP (no template), SRV_EINVAL (the template rejected
 * the conversation, e.g. raise_exception), SRV_ENOMEM. */
int chat_render(const struct srv_app *app, const char *messages_json, const char *tools_json,
                bool add_generation_prompt, bool continue_final_message, const char *kwargs_json,
                char **out, struct srv_error *err);

#ifdef __cplusplus
}
#endif
#endif
