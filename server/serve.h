/* server/serve.h: the `serve` subcommand (serve.c).
 *
 * defines: srv_serve_main, srv_setup_logging, srv_on_engine_fatal
 *
 * Threads: main thread.
 */
#ifndef DS_SERVER_SERVE_H
#define DS_SERVER_SERVE_H

#include "server/args.h"

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is the first option after "serve". Returns the process exit status. */
int srv_serve_main(int argc, char **argv);
/* Scheduler on_fatal hook (engine thread): the device is unusable. Wakes the
 * main thread, which stops serving and exits with status 1 so the
 * orchestrator restarts the process. */
void srv_on_engine_fatal(void *user, int rc);
/* Apply --log-level and --log-format. */
int srv_setup_logging(const struct srv_args *a);

#ifdef __cplusplus
}
#endif
#endif
