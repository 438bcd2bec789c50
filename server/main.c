/* server/main.c: the deltaserve command line: serve, complete, tokenize,
 * detokenize, bench. Runs on the main thread; each subcommand owns its flags
 * (`deltaserve <cmd> --help`).
 *
 * tokenize/detokenize (server/cli_tok.h) and bench (server/bench.h) come from
 * their owners' files; until a file exists the command says it is not built. */
#include <stdio.h>
#include <string.h>

#include "engine/log.h"
#include "server/complete_cli.h"
#include "server/serve.h"

#if __has_include("server/cli_tok.h")
#include "server/cli_tok.h"
#define DS_HAVE_CLI_TOK 1
#endif
#if __has_include("server/bench.h")
#include "server/bench.h"
#define DS_HAVE_BENCH 1
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: deltaserve <command> [options]\n"
            "  serve --model DIR [options]      OpenAI-compatible HTTP server\n"
            "  complete --model DIR --prompt T  one completion offline, printed as /v1/completions returns it\n"
            "  tokenize --model DIR             text on stdin -> JSON token ids\n"
            "  detokenize --model DIR           JSON token ids on stdin -> text\n"
            "  bench [options]                  GPU benchmark\n"
            "run `deltaserve <command> --help` for a command's options\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("deltaserve 0.1.0\n");
        return 0;
    }
    if (!strcmp(cmd, "serve")) return srv_serve_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "complete")) return complete_cli_main(argc - 2, argv + 2);
#ifdef DS_HAVE_CLI_TOK
    if (!strcmp(cmd, "tokenize")) return cli_tokenize_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "detokenize")) return cli_detokenize_main(argc - 2, argv + 2);
#endif
#ifdef DS_HAVE_BENCH
    if (!strcmp(cmd, "bench")) return bench_main(argc - 2, argv + 2);
#endif
    if (!strcmp(cmd, "tokenize") || !strcmp(cmd, "detokenize") || !strcmp(cmd, "bench")) {
        fprintf(stderr, "deltaserve: '%s' is not part of this build yet\n", cmd);
        return 2;
    }
    fprintf(stderr, "deltaserve: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
