/* server/loader.h: load a model directory into a running stack (config,
 * tokenizer, chat template, weights, engine on the chosen device, memory
 * plan, scheduler) for `serve` and the offline `complete` CLI.
 *
 * defines: struct srv_model, srv_model_load, srv_model_unload, srv_model_banner
 *
 * Threads: main thread only.
 */
#ifndef DS_SERVER_LOADER_H
#define DS_SERVER_LOADER_H

#include <stddef.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"
#include "engine/weights.h"
#include "scheduler/sched.h"
#include "server/app.h"
#include "server/args.h"

#ifdef __cplusplus
extern "C" {
#endif

struct srv_model {
    struct cfg_model cfg;
    struct eng_weights w;
    bool have_w;
    struct tokenizer *tok;            /* owned */
    struct tmpl *tmpl;                /* owned; NULL when the build has no template engine */
    struct engine *eng;               /* owned */
    struct sched *sched;              /* owned, started */
    struct sched_memplan plan;
    char device[8];                   /* "cpu" | "cuda" */
    char device_desc[160];
};

/* Load a->model and start the scheduler; fills app's model fields (app may be
 * NULL). Returns 0, or -1 with a one-line reason in err (the caller exits
 * non-zero). */
int srv_model_load(struct srv_model *m, const struct srv_args *a, struct srv_app *app, char *err, size_t errlen);
/* Stop the scheduler (aborting what is left) and free everything. */
void srv_model_unload(struct srv_model *m);
/* The startup banner: device, model shapes, rope mode, memory plan (INFO). */
void srv_model_banner(const struct srv_model *m, const struct srv_args *a);

#ifdef __cplusplus
}
#endif
#endif
