/* server/bench_spec.c: `deltaserve bench --spec` (see bench_spec.h): the
 * GPU verify-row step times at 7B shapes, the drafter's teacher-forced
 * acceptance on three workloads with the real tokenizer, and the projected
 * speedup per drafting setting; a table on stdout and --json FILE.
 *
 * Threads: main thread only.
 */
#include "server/bench_spec.h"
#include "server/bench_common.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/config.h"
#include "engine/engine.h"
#include "engine/tokenizer.h"
#ifdef DS_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

/* --- teacher forcing (pure) ----------------------------------------------------- */

int bench_spec_teacher_force(const int32_t *prompt, int np, const int32_t *target, int nt,
                             const struct bench_spec_setting *s, struct bench_spec_result *r)
{
    if (!prompt || !target || !s || !r || np < 1 || nt < 1 || s->k < 0 || s->k > SPEC_MAX_TOKENS)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    int32_t *toks = malloc(sizeof(int32_t) * ((size_t)np + (size_t)nt));
    if (!toks) return -ENOMEM;
    memcpy(toks, prompt, sizeof(int32_t) * (size_t)np);
    memcpy(toks + np, target, sizeof(int32_t) * (size_t)nt);
    struct spec_adapt ad;
    memset(&ad, 0, sizeof ad);
    int nmin = s->ngram_min > 0 ? s->ngram_min : SPEC_NGRAM_MIN_DEFAULT;
    int nmax = s->ngram_max > 0 ? s->ngram_max : SPEC_NGRAM_MAX_DEFAULT;
    if (nmax < nmin) nmax = nmin;
    int g = 1; /* target[0] came from the prefill */
    int32_t draft[SPEC_MAX_TOKENS];
    while (g < nt) {
        int n = np + g; /* history the drafter sees */
        int cap = spec_adapt_limit(&ad, s->k, s->min_accept, s->probe_interval);
        if (cap > nt - g - 1) cap = nt - g - 1; /* the last token is always the target's own */
        int d = cap > 0 ? spec_ngram_propose(toks, n, nmin, nmax, cap, draft, NULL) : 0;
        int a = 0;
        while (a < d && draft[a] == toks[n + a]) a++;
        if (d > 0) {
            spec_adapt_update(&ad, d, a, s->min_accept, s->probe_interval);
            r->verify_steps++;
            r->drafts += d;
            r->accepted += a;
        }
        r->steps_by_draft[d]++;
        r->steps++;
        r->tokens += a + 1;
        g += a + 1;
    }
    free(toks);
    return 0;
}

double bench_spec_projected_speedup(const struct bench_spec_result *r, const double *rel_cost, int max_d)
{
    if (!r || r->steps <= 0) return -1.0;
    double cost = 0.0;
    for (int d = 0; d <= SPEC_MAX_TOKENS; d++) {
        if (!r->steps_by_draft[d]) continue;
        if (d > max_d) return -1.0;
        cost += (double)r->steps_by_draft[d] * (d == 0 ? 1.0 : rel_cost[d]);
    }
    return cost > 0 ? (double)r->tokens / cost : -1.0;
}

/* --- workloads ------------------------------------------------------------------ */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (n > ((size_t)1 << 32)) { /* far beyond any input (and keeps the size arithmetic exact) */
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->len + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static int sb_done(struct sbuf *b, char **out)
{
    if (b->oom || !b->p) {
        free(b->p);
        *out = NULL;
        return -ENOMEM;
    }
    *out = b->p;
    return 0;
}

static bool is_id0(int c) { return isalpha(c) || c == '_'; }
static bool is_id(int c) { return isalnum(c) || c == '_'; }

static bool c_keyword(const char *s, size_t n)
{
    static const char *const kw[] = {"break", "const", "continue", "default", "double", "else",
                                     "float", "return", "sizeof", "static", "struct", "switch",
                                     "typedef", "unsigned", "while", "include", "define", "int32_t",
                                     "int64_t", "uint64_t", "uint32_t", "size_t", "bool", "false",
                                     "true", "NULL", "void", "char", "long", "short", "signed",
                                     "union", "enum", "extern", "inline", "ifdef", "ifndef",
                                     "endif", "uint8_t", "uint16_t", "int16_t", "int8_t"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (strlen(kw[i]) == n && !memcmp(kw[i], s, n)) return true;
    return false;
}

struct ident {
    const char *s;
    size_t n;
    int count;
};

int bench_spec_code_edit(const char *src, size_t len, char **prompt, char **target, char **what)
{
    *prompt = *target = NULL;
    if (what) *what = NULL;
    if (!src || !len) return -EINVAL;
    /* count identifiers outside nothing in particular (comments count too:
     * a rename in an editor changes them as well) */
    struct ident *ids = NULL;
    int nid = 0, cap = 0;
    for (size_t i = 0; i < len;) {
        if (!is_id0((unsigned char)src[i]) || (i > 0 && is_id((unsigned char)src[i - 1]))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && is_id((unsigned char)src[j])) j++;
        size_t n = j - i;
        if (n >= 5 && !c_keyword(src + i, n)) {
            int k = 0;
            while (k < nid && !(ids[k].n == n && !memcmp(ids[k].s, src + i, n))) k++;
            if (k == nid) {
                if (nid == cap) {
                    cap = cap ? cap * 2 : 256;
                    struct ident *t = realloc(ids, sizeof *ids * (size_t)cap);
                    if (!t) {
                        free(ids);
                        return -ENOMEM;
                    }
                    ids = t;
                }
                ids[nid++] = (struct ident){src + i, n, 0};
            }
            ids[k].count++;
        }
        i = j;
    }
    int pick[3], np = 0;
    for (; np < 3; np++) { /* the three most frequent, ties by first appearance */
        int best = -1;
        for (int k = 0; k < nid; k++) {
            bool used = false;
            for (int q = 0; q < np; q++) used |= pick[q] == k;
            if (!used && ids[k].count >= 2 && (best < 0 || ids[k].count > ids[best].count)) best = k;
        }
        if (best < 0) break;
        pick[np] = best;
    }
    if (np == 0) {
        free(ids);
        return -EINVAL;
    }
    struct sbuf ed = {0}, pr = {0}, tg = {0}, wh = {0};
    for (size_t i = 0; i < len;) {
        if (is_id0((unsigned char)src[i]) && !(i > 0 && is_id((unsigned char)src[i - 1]))) {
            size_t j = i;
            while (j < len && is_id((unsigned char)src[j])) j++;
            for (int q = 0; q < np; q++)
                if (ids[pick[q]].n == j - i && !memcmp(ids[pick[q]].s, src + i, j - i)) sb_str(&ed, "ds_");
            sb_add(&ed, src + i, j - i);
            i = j;
            continue;
        }
        sb_add(&ed, src + i, 1);
        i++;
    }
    for (int q = 0; q < np; q++) {
        if (q) sb_str(&wh, ", ");
        sb_add(&wh, ids[pick[q]].s, ids[pick[q]].n);
        sb_str(&wh, " -> ds_");
        sb_add(&wh, ids[pick[q]].s, ids[pick[q]].n);
    }
    sb_str(&pr, "Rename these identifiers in the C file below and output the whole edited file, "
                "unchanged otherwise: ");
    if (!wh.oom && wh.p) sb_str(&pr, wh.p);
    sb_str(&pr, ".\n\n```c\n");
    sb_add(&pr, src, len);
    sb_str(&pr, "```\n");
    sb_str(&tg, "```c\n");
    if (!ed.oom && ed.p) sb_add(&tg, ed.p, ed.len);
    sb_str(&tg, "```\n");
    free(ids);
    free(ed.p);
    int rc = sb_done(&pr, prompt);
    if (!rc) rc = sb_done(&tg, target);
    else free(tg.p);
    if (!rc && what) rc = sb_done(&wh, what);
    else free(wh.p);
    if (rc) {
        free(*prompt);
        free(*target);
        *prompt = *target = NULL;
    }
    return rc;
}

int bench_spec_quote(const char *doc, size_t len, char **prompt, char **target)
{
    *prompt = *target = NULL;
    if (!doc || !len) return -EINVAL;
    struct sbuf pr = {0}, tg = {0};
    sb_str(&pr, "Answer the question by quoting the relevant passages of the document verbatim.\n\n"
                "Document:\n\n");
    sb_add(&pr, doc, len);
    sb_str(&pr, "\n\nQuestion: which passages describe how the system is designed?\n");
    sb_str(&tg, "These passages of the document answer it, quoted exactly:\n\n");
    int found = 0, quoted = 0;
    static const char *const own[] = {
        "This is where the document states the overall idea.",
        "So the choice is explained together with its reason.",
        "Here the text turns to a concrete mechanism.",
        "The following part gives the limits that apply.",
        "That sets out who owns which piece of state.",
        "Next comes how failures are handled.",
        "This passage describes the data that moves between parts.",
        "Finally, the operational side is covered.",
    };
    for (size_t i = 0; i < len && quoted < 8;) {
        size_t j = i;
        while (j < len && !(j + 1 < len && doc[j] == '\n' && doc[j + 1] == '\n')) j++;
        if (j - i >= 200 && found++ % 2 == 0) {
            sb_str(&tg, "> ");
            for (size_t c = i; c < j; c++) {
                sb_add(&tg, doc + c, 1);
                if (doc[c] == '\n') sb_str(&tg, "> ");
            }
            sb_str(&tg, "\n\n");
            sb_str(&tg, own[quoted]);
            sb_str(&tg, "\n\n");
            quoted++;
        }
        i = j + 2;
    }
    if (quoted == 0) {
        free(pr.p);
        free(tg.p);
        return -EINVAL;
    }
    int rc = sb_done(&pr, prompt);
    if (!rc) rc = sb_done(&tg, target);
    else free(tg.p);
    if (rc) {
        free(*prompt);
        *prompt = NULL;
    }
    return rc;
}

int bench_spec_free_text(const char *text, size_t len, char **prompt, char **target)
{
    *prompt = *target = NULL;
    if (!text || !len) return -EINVAL;
    struct sbuf pr = {0}, tg = {0};
    sb_str(&pr, "Write a guide for operating a small inference server: deployment, metrics, "
                "memory tuning and logs.\n");
    sb_add(&tg, text, len);
    int rc = sb_done(&pr, prompt);
    if (!rc) rc = sb_done(&tg, target);
    else free(tg.p);
    if (rc) {
        free(*prompt);
        *prompt = NULL;
    }
    return rc;
}

/* --- the GPU part: verify-row step times ------------------------------------------ */

#define MAX_B 4
#define MAX_KB 16

struct gpu_times {
    int ok;                          /* 1: verify rows ran */
    int nb, batch[MAX_B], max_k, ctx;
    double decode_s[MAX_B];          /* median plain decode step */
    double verify_s[MAX_B][MAX_KB + 1];/* [b][k] median step, B rows of 1+k tokens */
    char note[320];
};

#ifdef DS_HAVE_CUDA
/* One step of B rows of n tokens each at cache length ctx (n == 1: plain
 * decodes; n > 1: verify rows with spec slots and logits everywhere).
 * Returns the wall time (metadata upload, forward, logits copy-back, sync)
 * or a negative errno. */
static double gpu_step(struct engine *e, int B, int n, int ctx, int mb, const int32_t *bt, float *logits)
{
    int T = B * n;
    int32_t tok[MAX_KB * 64 + 64], pos[MAX_KB * 64 + 64], rows[MAX_KB * 64 + 64], spec[MAX_KB * 64 + 64];
    int32_t qs[65], cl[64], sl[64];
    for (int i = 0; i < B; i++) {
        qs[i] = i * n;
        cl[i] = ctx;
        sl[i] = i;
        for (int t = 0; t < n; t++) {
            int x = i * n + t;
            tok[x] = (int32_t)((x * 7919u + i * 104729u) % 100000u);
            pos[x] = ctx + t;
            rows[x] = x;
            spec[x] = B + x; /* slots B.. : the state after each fed token */
        }
    }
    qs[B] = T;
    int L = 0;
    int32_t lrows[MAX_KB * 64 + 64];
    if (n == 1)
        for (int i = 0; i < B; i++) lrows[L++] = i;
    else
        for (int x = 0; x < T; x++) lrows[L++] = rows[x];
    struct eng_batch b = {.num_seqs = B, .num_tokens = T, .num_decode = n == 1 ? B : 0,
                          .num_verify = n == 1 ? 0 : B, .tokens = tok, .positions = pos,
                          .query_start = qs, .cache_len = cl, .state_slot = sl, .block_table = bt,
                          .max_blocks = mb, .logits_rows = lrows, .num_logits = L,
                          .max_spec = n - 1, .spec_slots = n == 1 ? NULL : spec};
    double t0 = bench_now_s();
    int rc = eng_forward(e, &b, logits);
    double dt = bench_now_s() - t0;
    return rc < 0 ? (double)rc : dt;
}

static double gpu_median(struct engine *e, int B, int n, int ctx, int mb, const int32_t *bt, float *logits,
                         int iters, int *rc)
{
    double t[256];
    for (int w = 0; w < 3; w++) {
        double x = gpu_step(e, B, n, ctx, mb, bt, logits);
        if (x < 0) {
            *rc = (int)x;
            return -1;
        }
    }
    for (int i = 0; i < iters; i++) {
        t[i] = gpu_step(e, B, n, ctx, mb, bt, logits);
        if (t[i] < 0) {
            *rc = (int)t[i];
            return -1;
        }
    }
    *rc = 0;
    return bench_median(t, iters);
}

static int gpu_part(struct gpu_times *g, int layers, int iters)
{
    char desc[256];
    if (!eng_cuda_available(desc, sizeof desc)) {
        snprintf(g->note, sizeof g->note, "%s", desc);
        return 0;
    }
    struct cfg_model c;
    bench_cfg_7b(&c, layers);
    int maxB = 1;
    for (int i = 0; i < g->nb; i++) maxB = g->batch[i] > maxB ? g->batch[i] : maxB;
    int bs = 16, mb = (g->ctx + 1 + g->max_k + bs - 1) / bs + 1;
    int nslots = maxB * (2 + g->max_k);
    struct eng_cuda_options o;
    eng_cuda_default_options(&o);
    o.max_tokens = maxB * (1 + g->max_k);
    o.max_seqs = maxB;
    o.max_blocks_per_seq = mb;
    o.max_logits = maxB * (1 + g->max_k);
    o.random_weights_seed = 0x5eed;
    eng_cuda_set_options(&o);
    struct engine e;
    memset(&e, 0, sizeof e);
    e.cfg = &c;
    e.ops = &eng_backend_cuda;
    e.mem.block_size = bs;
    e.mem.num_kv_blocks = maxB * mb;
    e.mem.num_state_slots = nslots;
    printf("GPU: %s; OLMo-Hybrid-7B shapes, %d layers, random bf16 weights, context %d, %d state slots\n",
           desc, layers, g->ctx, nslots);
    if (e.ops->init(&e)) {
        snprintf(g->note, sizeof g->note, "CUDA backend init failed");
        return -EIO;
    }
    int rc = eng_cuda_randomize_state(&e, 77) ? -EIO : 0;
    int32_t *bt = malloc(sizeof(int32_t) * (size_t)maxB * (size_t)mb);
    float *logits = malloc(sizeof(float) * (size_t)o.max_logits * (size_t)c.vocab_size);
    if (!bt || !logits) rc = -ENOMEM;
    for (int i = 0; !rc && i < maxB; i++)
        for (int j = 0; j < mb; j++) bt[(size_t)i * mb + j] = i * mb + j;
    for (int bi = 0; !rc && bi < g->nb; bi++) {
        int B = g->batch[bi], r2 = 0;
        g->decode_s[bi] = gpu_median(&e, B, 1, g->ctx, mb, bt, logits, iters, &r2);
        if (r2) {
            snprintf(g->note, sizeof g->note, "plain decode step failed (%d)", r2);
            rc = -EIO;
            break;
        }
        for (int k = 1; k <= g->max_k; k++) {
            g->verify_s[bi][k] = gpu_median(&e, B, 1 + k, g->ctx, mb, bt, logits, iters, &r2);
            if (r2) {
                snprintf(g->note, sizeof g->note,
                         "verify rows unsupported by this CUDA backend (eng_forward returned %d)", r2);
                g->ok = 0;
                goto done;
            }
        }
    }
    if (!rc) g->ok = 1;
done:
    free(bt);
    free(logits);
    e.ops->destroy(&e);
    return rc;
}
#else
static int gpu_part(struct gpu_times *g, int layers, int iters)
{
    (void)layers;
    (void)iters;
    snprintf(g->note, sizeof g->note, "this build has no CUDA backend");
    return 0;
}
#endif

/* --- the command ---------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(max + 1);
    size_t n = b ? fread(b, 1, max, f) : 0;
    fclose(f);
    if (!b || n == 0) {
        free(b);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

static int parse_list(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 64) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *s ? -1 : n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: deltaserve bench --spec [--spec-batches 1,16] [--context 1024] [--max-k 8]\n"
            "         [--iters 20] [--layers 32] [--skip-gpu] [--tokenizer FILE]\n"
            "         [--code FILE] [--doc FILE] [--text FILE] [--json FILE]\n"
            "  GPU: step time of B verify rows of 1+k tokens vs B plain decodes (7B shapes,\n"
            "  random weights). CPU: teacher-forced n-gram acceptance on a code edit, a quoting\n"
            "  answer and free text (real tokenizer), projected speedup per setting.\n");
}

struct workload {
    const char *name, *desc;
    int32_t *p, *t;
    int np, nt;
};

int bench_spec_main(int argc, char **argv)
{
    struct gpu_times g;
    memset(&g, 0, sizeof g);
    g.nb = 2;
    g.batch[0] = 1;
    g.batch[1] = 16;
    g.max_k = 8;
    g.ctx = 1024;
    int iters = 20, layers = 32, skip_gpu = 0;
    const char *tokp = "models/olmo-hybrid-tiny/tokenizer.json", *code = "scheduler/plan.c",
               *docp = "docs/architecture.md", *textp = "docs/operations.md", *json = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--spec-batches") && v) {
            if ((g.nb = parse_list(v, g.batch, MAX_B)) <= 0) {
                fprintf(stderr, "bench --spec: bad --spec-batches '%s' (up to %d values in 1..64)\n", v, MAX_B);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--context") && v) {
            g.ctx = atoi(v), i++;
        } else if (!strcmp(a, "--max-k") && v) {
            g.max_k = atoi(v), i++;
        } else if (!strcmp(a, "--iters") && v) {
            iters = atoi(v), i++;
        } else if (!strcmp(a, "--layers") && v) {
            layers = atoi(v), i++;
        } else if (!strcmp(a, "--skip-gpu")) {
            skip_gpu = 1;
        } else if (!strcmp(a, "--tokenizer") && v) {
            tokp = v, i++;
        } else if (!strcmp(a, "--code") && v) {
            code = v, i++;
        } else if (!strcmp(a, "--doc") && v) {
            docp = v, i++;
        } else if (!strcmp(a, "--text") && v) {
            textp = v, i++;
        } else if (!strcmp(a, "--json") && v) {
            json = v, i++;
        } else {
            fprintf(stderr, "bench --spec: unknown or incomplete option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (g.ctx < 1 || g.ctx > 32768 || g.max_k < 1 || g.max_k > MAX_KB || iters < 1 || iters > 256 ||
        layers < 4 || layers > 64 || layers % 4) {
        fprintf(stderr, "bench --spec: --context 1..32768, --max-k 1..%d, --iters 1..256, --layers a multiple of 4\n",
                MAX_KB);
        return 2;
    }
    /* inputs first: a bad path should not cost a GPU init */
    char err[256];
    struct tokenizer *tok = tok_load(tokp, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "bench --spec: %s: %s\n", tokp, err);
        return 2;
    }
    size_t lc = 0, ld = 0, lt = 0;
    char *src = read_file(code, &lc, 64 << 10), *doc = read_file(docp, &ld, 48 << 10),
         *text = read_file(textp, &lt, 12 << 10);
    if (!src || !doc || !text) {
        fprintf(stderr, "bench --spec: cannot read %s (run from the repository root or pass --code/--doc/--text)\n",
                !src ? code : !doc ? docp : textp);
        free(src), free(doc), free(text);
        tok_free(tok);
        return 2;
    }
    struct workload w[3] = {{"code-edit", code, 0, 0, 0, 0}, {"quote", docp, 0, 0, 0, 0}, {"free-text", textp, 0, 0, 0, 0}};
    char *pr[3] = {0}, *tg[3] = {0}, *what = NULL;
    int rc = bench_spec_code_edit(src, lc, &pr[0], &tg[0], &what);
    if (!rc) rc = bench_spec_quote(doc, ld, &pr[1], &tg[1]);
    if (!rc) rc = bench_spec_free_text(text, lt, &pr[2], &tg[2]);
    for (int i = 0; !rc && i < 3; i++) {
        w[i].np = tok_encode(tok, pr[i], strlen(pr[i]), false, &w[i].p);
        w[i].nt = tok_encode(tok, tg[i], strlen(tg[i]), false, &w[i].t);
        if (w[i].np < 1 || w[i].nt < 2) rc = -EINVAL;
    }
    if (rc) {
        fprintf(stderr, "bench --spec: building the workloads failed (%d)\n", rc);
        goto out;
    }

    if (!skip_gpu) {
        int grc = gpu_part(&g, layers, iters);
        if (grc < 0) {
            fprintf(stderr, "bench --spec: GPU part failed: %s\n", g.note);
            rc = 1;
            goto out;
        }
    } else {
        snprintf(g.note, sizeof g.note, "skipped (--skip-gpu)");
    }
    printf("\n(a) GPU step time, rows of 1+k tokens vs plain decode (wall clock around eng_forward,\n"
           "    logits of every verify position copied back); random weights, context %d\n", g.ctx);
    if (!g.ok) {
        printf("    verify: %s\n", g.note);
        for (int bi = 0; bi < g.nb; bi++)
            if (g.decode_s[bi] > 0) printf("    B=%-3d plain decode %.3f ms\n", g.batch[bi], g.decode_s[bi] * 1e3);
    } else {
        printf("    %-5s %10s", "B", "decode ms");
        for (int k = 1; k <= g.max_k; k++) printf("   k=%-2d", k);
        printf("   (step time / decode step time)\n");
        for (int bi = 0; bi < g.nb; bi++) {
            printf("    %-5d %10.3f", g.batch[bi], g.decode_s[bi] * 1e3);
            for (int k = 1; k <= g.max_k; k++) printf(" %6.3f", g.verify_s[bi][k] / g.decode_s[bi]);
            printf("\n");
        }
    }
    printf("\n(b) drafter acceptance by teacher forcing (tokenizer %s)\n", tokp);
    printf("    code-edit: %s with %s (prompt %d tokens, target %d)\n", code, what, w[0].np, w[0].nt);
    printf("    quote:     an answer quoting %s (prompt %d tokens, target %d)\n", docp, w[1].np, w[1].nt);
    printf("    free-text: %s, not in the prompt (prompt %d tokens, target %d)\n", textp, w[2].np, w[2].nt);
    printf("\n    %-10s %-6s %3s %6s %7s %8s %9s %8s", "workload", "ngram", "k", "min_acc", "drafts/", "accept",
           "tokens/", "fed/");
    for (int bi = 0; bi < g.nb; bi++) printf("  speedup");
    printf("\n    %-10s %-6s %3s %6s %7s %8s %9s %8s", "", "", "", "", "step", "rate", "step", "step");
    for (int bi = 0; bi < g.nb; bi++) printf("  B=%-5d", g.batch[bi]);
    printf("\n");
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) fprintf(stderr, "bench --spec: cannot write %s\n", json);
    if (jf) {
        fprintf(jf, "{\"context\":%d,\"gpu\":{\"ok\":%d,\"note\":\"%s\",\"batches\":[", g.ctx, g.ok, g.ok ? "" : g.note);
        for (int bi = 0; bi < g.nb; bi++) {
            fprintf(jf, "%s{\"B\":%d,\"decode_ms\":%.6g,\"verify_ms\":[", bi ? "," : "", g.batch[bi],
                    g.decode_s[bi] * 1e3);
            for (int k = 1; g.ok && k <= g.max_k; k++) fprintf(jf, "%s%.6g", k > 1 ? "," : "", g.verify_s[bi][k] * 1e3);
            fprintf(jf, "]}");
        }
        fprintf(jf, "]},\"rows\":[");
    }
    static const int ngr[2][2] = {{5, 5}, {2, 5}};
    /* k: half the largest measured and the largest (4 and 8 by default), so
     * every setting has a measured step cost */
    const int ks[2] = {g.max_k / 2 > 0 ? g.max_k / 2 : 1, g.max_k};
    static const double ms[4] = {0.0, 0.05, 0.1, 0.2};
    int nrow = 0;
    for (int wi = 0; wi < 3; wi++)
        for (int ni = 0; ni < 2; ni++)
            for (int ki = 0; ki < 2; ki++)
                for (int mi = 0; mi < 4; mi++) {
                    struct bench_spec_setting s = {.k = ks[ki], .ngram_min = ngr[ni][0], .ngram_max = ngr[ni][1],
                                                   .min_accept = ms[mi]};
                    struct bench_spec_result r;
                    if (bench_spec_teacher_force(w[wi].p, w[wi].np, w[wi].t, w[wi].nt, &s, &r)) {
                        rc = 1;
                        goto out_json;
                    }
                    double fed = 0;
                    for (int d = 0; d <= SPEC_MAX_TOKENS; d++) fed += (double)r.steps_by_draft[d] * (1 + d);
                    char ng[16];
                    snprintf(ng, sizeof ng, "%d..%d", s.ngram_min, s.ngram_max);
                    printf("    %-10s %-6s %3d %6.2f %7.2f %8.3f %9.3f %8.3f", w[wi].name, ng, s.k, s.min_accept,
                           (double)r.drafts / r.steps, r.drafts ? (double)r.accepted / r.drafts : 0.0,
                           (double)r.tokens / r.steps, fed / r.steps);
                    double sp[MAX_B];
                    for (int bi = 0; bi < g.nb; bi++) {
                        double rel[MAX_KB + 1];
                        rel[0] = 1.0;
                        for (int k = 1; k <= g.max_k; k++) rel[k] = g.ok ? g.verify_s[bi][k] / g.decode_s[bi] : 0;
                        sp[bi] = g.ok ? bench_spec_projected_speedup(&r, rel, g.max_k) : -1;
                        if (sp[bi] > 0) printf("  %6.3fx", sp[bi]);
                        else printf("  %7s", "n/a");
                    }
                    printf("\n");
                    if (jf) {
                        fprintf(jf,
                                "%s{\"workload\":\"%s\",\"ngram_min\":%d,\"ngram_max\":%d,\"k\":%d,"
                                "\"min_acceptance\":%.3g,\"tokens\":%ld,\"steps\":%ld,\"verify_steps\":%ld,"
                                "\"draft_tokens\":%ld,\"accepted\":%ld,\"acceptance_rate\":%.6g,"
                                "\"tokens_per_step\":%.6g,\"fed_per_step\":%.6g,\"projected_speedup\":[",
                                nrow ? "," : "", w[wi].name, s.ngram_min, s.ngram_max, s.k, s.min_accept, r.tokens,
                                r.steps, r.verify_steps, r.drafts, r.accepted,
                                r.drafts ? (double)r.accepted / r.drafts : 0.0, (double)r.tokens / r.steps,
                                fed / r.steps);
                        for (int bi = 0; bi < g.nb; bi++) {
                            if (bi) fputc(',', jf);
                            if (sp[bi] > 0) fprintf(jf, "%.6g", sp[bi]);
                            else fputs("null", jf);
                        }
                        fprintf(jf, "]}");
                    }
                    nrow++;
                }
    printf("\n  tokens/step: target tokens per decode step of the sequence (1 = plain decoding);\n"
           "  fed/step: tokens the sequence puts in a step; speedup = tokens / sum(step cost),\n"
           "  step cost = (GPU) time of a row feeding 1+d tokens / plain decode time, all B rows\n"
           "  assumed to draft alike (B > 1 is an approximation).\n");
out_json:
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
out:
    for (int i = 0; i < 3; i++) {
        free(pr[i]);
        free(tg[i]);
        free(w[i].p);
        free(w[i].t);
    }
    free(what);
    free(src), free(doc), free(text);
    tok_free(tok);
    return rc ? (rc == 1 ? 1 : 2) : 0;
}
