/* server/main.c: the deltaserve command line (serve, complete, tokenize,
 * detokenize, bench). Runs on the main thread. The server helper replaces this
 * dispatcher's body as subcommands land. */
#include <stdio.h>
#include <string.h>

#include "engine/log.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: deltaserve <serve|complete|tokenize|detokenize|bench> [options]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "deltaserve: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
