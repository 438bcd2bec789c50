/* server/app.h: the state one serving process shares between its HTTP
 * threads, its main thread and the scheduler's notify callbacks.
 *
 * defines: struct srv_app, enum srv_state, srv_app_state, srv_now_ns
 *
 * Threads: the main thread fills every field while state is SRV_LOADING and
 * publishes them by storing SRV_SERVING (release); HTTP threads read the
 * model fields only after loading SRV_SERVING or SRV_DRAINING (acquire), so no
 * lock is needed for the read-only parts. state itself is atomic.
 */
#ifndef DS_SERVER_APP_H
#define DS_SERVER_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine/config.h"
#include "engine/tokenizer.h"
#include "scheduler/sched.h"
#include "server/args.h"

#ifdef __cplusplus
extern "C" {
#endif

enum srv_state { SRV_LOADING = 0, SRV_SERVING = 1, SRV_DRAINING = 2, SRV_STOPPED = 3 };

struct tmpl;                          /* engine/chat_template.h (opaque here) */

struct srv_app {
    const struct srv_args *args;      /* borrowed */
    const struct cfg_model *cfg;      /* borrowed, set before SERVING */
    const struct tokenizer *tok;      /* borrowed, set before SERVING */
    struct tmpl *tmpl;                /* borrowed chat template; NULL: chat unsupported */
    struct sched *sched;              /* borrowed, set before SERVING */
    int max_model_len;                /* effective limit */
    int vocab_size;                   /* tokenizer's (ids checked against it) */
    char bos_token[64], eos_token[64];/* for chat templates */
    const char *device;               /* "cpu" | "cuda" */
    int64_t start_time;               /* unix seconds (the models' "created") */
    atomic_int state;                 /* enum srv_state */
    atomic_long inflight;             /* generation requests between submit and response */
    atomic_long open_gen;             /* generation requests whose connection is not done */
};

static inline enum srv_state srv_app_state(const struct srv_app *a)
{
    return (enum srv_state)atomic_load_explicit(&((struct srv_app *)a)->state, memory_order_acquire);
}

static inline int64_t srv_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

#ifdef __cplusplus
}
#endif
#endif
