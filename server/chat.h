/* server/chat.h: chat messages -> prompt text through the model's chat
 * template (engine/chat_template.h), for /v1/chat/completions, /tokenize and
 * the offline CLI.
 *
 * defines: chat_render
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
