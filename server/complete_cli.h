/* server/complete_cli.h: `deltaserve complete`, one completion offline.
 *
 * defines: complete_cli_main
 *
 * Threads: main thread (plus the scheduler's engine thread it starts).
 */
#ifndef DS_SERVER_COMPLETE_CLI_H
#define DS_SERVER_COMPLETE_CLI_H

#ifdef __cplusplus
extern "C" {
#endif

/* argv[0] is the first option after "complete". Prints exactly the body
 * POST /v1/completions would return (an error object on failure, exit 1). */
int complete_cli_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
