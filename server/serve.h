/* server/serve.h: the `serve` subcommand (serve.c).
 *
 * defines: srv_serve_main, srv_setup_logging
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
/* Apply --log-level and --log-format. */
int srv_setup_logging(const struct srv_args *a);

#ifdef __cplusplus
}
#endif
#endif
