/* server/cli_tok.c: `deltaserve tokenize` / `deltaserve detokenize` (see
 * server/cli_tok.h). Main thread only; a one-shot command, so errors print one
 * line to stderr and return an exit status. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/tokenizer.h"
#include "server/cli_tok.h"

/* All of stdin into a malloc'd NUL-terminated buffer; NULL on failure. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); return NULL; }
            b = nb;
            cap *= 2;
        }
        size_t r = fread(b + n, 1, cap - 1 - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) { free(b); return NULL; }
    b[n] = 0;
    *len = n;
    return b;
}

struct tok_opts {
    const char *model;
    bool flag; /* --add-special-tokens / --skip-special-tokens */
};

static int parse_opts(const char *cmd, const char *flag, int argc, char **argv, struct tok_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: deltaserve %s --model DIR [%s]\n", cmd, flag);
            printf(!strcmp(cmd, "tokenize")
                       ? "  text on stdin -> JSON array of token ids on stdout\n"
                       : "  JSON array of token ids on stdin -> text on stdout\n");
            printf("  --model DIR   model directory with tokenizer.json (or the file itself)\n");
            printf("  %s\n", !strcmp(cmd, "tokenize")
                                 ? "--add-special-tokens  apply the post-processor's BOS/EOS"
                                 : "--skip-special-tokens drop special tokens from the text");
            return 1;
        }
        if (!strcmp(a, "--model") && i + 1 < argc) o->model = argv[++i];
        else if (!strncmp(a, "--model=", 8)) o->model = a + 8;
        else if (!strcmp(a, flag)) o->flag = true;
        else {
            fprintf(stderr, "deltaserve %s: unknown option '%s' (try --help)\n", cmd, a);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "deltaserve %s: --model DIR is required\n", cmd);
        return 2;
    }
    return 0;
}

static struct tokenizer *open_tok(const char *cmd, const char *model)
{
    char path[PATH_MAX], err[512];
    struct stat st;
    if (stat(model, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/tokenizer.json", model);
    else snprintf(path, sizeof path, "%s", model);
    struct tokenizer *t = tok_load(path, err, sizeof err);
    if (!t) fprintf(stderr, "deltaserve %s: %s\n", cmd, err);
    return t;
}

int cli_tokenize_main(int argc, char **argv)
{
    struct tok_opts o;
    int rc = parse_opts("tokenize", "--add-special-tokens", argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    struct tokenizer *t = open_tok("tokenize", o.model);
    if (!t) return 1;
    size_t len;
    char *text = read_stdin(&len);
    int32_t *ids = NULL;
    int n = text ? tok_encode(t, text, len, o.flag, &ids) : -1;
    if (n < 0) {
        fprintf(stderr, "deltaserve tokenize: %s\n", text ? "encoding failed (out of memory)" : "cannot read stdin");
        free(text);
        tok_free(t);
        return 1;
    }
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("]\n");
    free(ids);
    free(text);
    tok_free(t);
    return fflush(stdout) ? 1 : 0;
}

int cli_detokenize_main(int argc, char **argv)
{
    struct tok_opts o;
    int rc = parse_opts("detokenize", "--skip-special-tokens", argc, argv, &o);
    if (rc) return rc == 1 ? 0 : rc;
    size_t len;
    char *in = read_stdin(&len);
    if (!in) { fprintf(stderr, "deltaserve detokenize: cannot read stdin\n"); return 1; }
    cJSON *j = cJSON_ParseWithLength(in, len);
    free(in);
    const cJSON *arr = j;
    if (cJSON_IsObject(j)) {
        arr = cJSON_GetObjectItemCaseSensitive(j, "tokens");
        if (!arr) arr = cJSON_GetObjectItemCaseSensitive(j, "ids");
    }
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "deltaserve detokenize: stdin must hold a JSON array of token ids\n");
        cJSON_Delete(j);
        return 1;
    }
    int n = cJSON_GetArraySize(arr), k = 0;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n + 1));
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int32_t)e->valuedouble) {
            fprintf(stderr, "deltaserve detokenize: element %d is not an integer token id\n", k);
            free(ids);
            cJSON_Delete(j);
            return 1;
        }
        ids[k++] = (int32_t)e->valuedouble;
    }
    cJSON_Delete(j);
    struct tokenizer *t = open_tok("detokenize", o.model);
    if (!t) { free(ids); return 1; }
    size_t out_len;
    char *s = tok_decode(t, ids, n, o.flag, &out_len);
    if (!s) {
        int bad = -1;
        for (int i = 0; i < n && bad < 0; i++)
            if (!tok_id_to_piece(t, ids[i])) bad = i;
        fprintf(stderr, "deltaserve detokenize: token id %d (element %d) is not in the vocabulary (size %d)\n",
                bad >= 0 ? ids[bad] : -1, bad, tok_vocab_size(t));
        free(ids);
        tok_free(t);
        return 1;
    }
    fwrite(s, 1, out_len, stdout);
    free(s);
    free(ids);
    tok_free(t);
    return fflush(stdout) ? 1 : 0;
}
