/* server/chat.c: chat messages -> prompt text with the model's template (see
 * chat.h). HTTP threads (render) and the main thread (load). */
#include "server/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"

#if __has_include("engine/chat_template.h")
#include "engine/chat_template.h"
#define DS_HAVE_TMPL 1
#endif

#ifndef DS_HAVE_TMPL
int chat_load(struct tmpl **out, const char *model_dir, const char *override_path, char *err, size_t errlen)
{
    *out = NULL;
    LOG_WARN("this build has no chat template engine: /v1/chat/completions answers 400");
    return 0;
}

void chat_free(struct tmpl *t) { (void)t; }

int chat_render(const struct srv_app *app, const char *messages_json, const char *tools_json,
                bool add_generation_prompt, bool continue_final_message, const char *kwargs_json,
                char **out, struct srv_error *err)
{
    *out = NULL;
    return srv_err_set(err, SRV_ENOTSUP, "messages", "This server has no chat template: use /v1/completions");
}
#endif
