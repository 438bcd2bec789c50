/* server/serve.c: `deltaserve serve`: settings, logging, signals, the HTTP
 * daemon, model loading, the startup banner, and graceful shutdown.
 *
 * Threads: the main thread runs this; a signal thread (all other threads
 * block SIGINT/SIGTERM) turns the first signal into a drain request and the
 * second into an immediate exit.
 *
 * Shutdown (SIGTERM/SIGINT): state DRAINING (/health and new requests answer
 * 503 with Retry-After), the scheduler refuses new work and finishes what it
 * has for up to --shutdown-timeout seconds, then aborts the rest; responses
 * are flushed, the daemon stops, exit 0. A second signal exits at once (1).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "server/app.h"
#include "server/args.h"
#include "server/http.h"
#include "server/loader.h"
#include "server/metrics.h"
#include "server/serve.h"

extern char **environ;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_signals;                 /* signals received (guarded by g_mu) */
static int g_fatal;                   /* engine error once the device is unusable (guarded by g_mu) */
static struct srv_app *g_app;

void srv_on_engine_fatal(void *user, int rc)
{
    (void)user;
    pthread_mutex_lock(&g_mu);
    g_fatal = rc ? rc : -1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig)) continue;
        pthread_mutex_lock(&g_mu);
        int n = ++g_signals;
        pthread_cond_broadcast(&g_cv);
        pthread_mutex_unlock(&g_mu);
        if (n == 1) {
            LOG_INFO("received %s: draining (again to exit at once)", sig == SIGINT ? "SIGINT" : "SIGTERM");
            if (g_app && srv_app_state(g_app) == SRV_LOADING) {
                LOG_INFO("still loading: exiting");
                _exit(0);
            }
        } else {
            LOG_WARN("second signal: exiting now");
            _exit(1);
        }
    }
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000l};
    nanosleep(&ts, NULL);
}

int srv_setup_logging(const struct srv_args *a)
{
    int lvl = log_parse_level(a->log_level);
    log_set_level(lvl < 0 ? LOG_LVL_INFO : (enum log_level)lvl);
    log_set_json(!strcmp(a->log_format, "json"));
    return 0;
}

int srv_serve_main(int argc, char **argv)
{
    static struct srv_args a;
    char err[1024];
    int rc = srv_args_parse(&a, argc, argv, environ, NULL, 0, NULL, true, err, sizeof err);
    if (rc == 1) {
        srv_args_usage("serve", NULL, 0);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "deltaserve serve: %s\n", err);
        return 2;
    }
    srv_setup_logging(&a);
    srv_args_log(&a);

    /* Signals: block them everywhere, one thread waits for them. */
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    static struct srv_app app;
    app.args = &a;
    app.start_time = (int64_t)time(NULL);
    atomic_store(&app.state, SRV_LOADING);
    g_app = &app;
    pthread_t sig_thread;
    pthread_create(&sig_thread, NULL, signal_main, &set);
    pthread_detach(sig_thread);

    if (metrics_init(a.served_model_name)) LOG_WARN("metrics: cannot initialise the registry");
    /* Listen first so /health answers 503 while the model loads. */
    struct http_server *http = http_create(&app, err, sizeof err);
    if (!http) {
        LOG_ERROR("%s", err);
        return 1;
    }
    LOG_INFO("listening on http://%s:%d (loading the model)", a.host, http_port(http));
    static struct srv_model m;
    int64_t t0 = srv_now_ns();
    if (srv_model_load(&m, &a, &app, err, sizeof err)) {
        LOG_ERROR("%s", err);
        atomic_store(&app.state, SRV_STOPPED);
        http_destroy(http);
        return 1;
    }
    srv_model_banner(&m, &a);
    metrics_attach_sched(m.sched); /* gauges and totals from sched_get_stats */
    atomic_store_explicit(&app.state, SRV_SERVING, memory_order_release);
    LOG_INFO("ready in %.2fs: serving \"%s\" on http://%s:%d", (double)(srv_now_ns() - t0) / 1e9,
             a.served_model_name, a.host, http_port(http));

    pthread_mutex_lock(&g_mu);
    while (g_signals == 0 && g_fatal == 0) pthread_cond_wait(&g_cv, &g_mu);
    int fatal = g_fatal;
    pthread_mutex_unlock(&g_mu);

    if (fatal) {
        /* Every request has already been failed with a clear error by the
         * scheduler; answer them, then exit non-zero for a restart. */
        atomic_store(&app.state, SRV_DRAINING);
        LOG_ERROR("inference device unusable (error %d): exiting with status 1 for a restart", fatal);
        sched_stop(m.sched);
        for (int i = 0; i < 200 && atomic_load(&app.open_gen) > 0; i++) sleep_ms(10);
        atomic_store(&app.state, SRV_STOPPED);
        http_destroy(http);
        metrics_attach_sched(NULL);
        srv_model_unload(&m);
        metrics_fini();
        return 1;
    }

    /* Drain: no new work; running requests get --shutdown-timeout. */
    atomic_store(&app.state, SRV_DRAINING);
    sched_drain_begin(m.sched);
    int left_ms = (int)(a.shutdown_timeout * 1000);
    if (sched_wait_idle(m.sched, left_ms) != 0) {
        struct sched_stats s;
        sched_get_stats(m.sched, &s);
        LOG_WARN("shutdown timeout (%gs): aborting %d running and %d waiting requests", a.shutdown_timeout,
                 s.num_running, s.num_waiting);
    }
    sched_stop(m.sched); /* aborts the rest; every suspended connection gets resumed */
    /* Let finished responses reach their clients before the daemon closes them. */
    for (int i = 0; i < 200 && atomic_load(&app.open_gen) > 0; i++) sleep_ms(10);
    atomic_store(&app.state, SRV_STOPPED);
    http_destroy(http);
    metrics_attach_sched(NULL);
    srv_model_unload(&m);
    metrics_fini();
    LOG_INFO("shut down cleanly");
    return 0;
}
