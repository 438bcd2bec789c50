/* engine/sampling.h: CPU token sampling from one row of fp32 logits.
 *
 * defines: struct samp_bias, struct samp_params, struct samp_ctx,
 *          struct samp_logprob, struct samp_result, samp_params_init,
 *          samp_params_validate, samp_ctx_create, samp_ctx_destroy,
 *          samp_sample, samp_logprobs, samp_rng_uniform, samp_is_greedy
 *
 * Threads: a samp_ctx holds vocab-sized scratch and belongs to one thread at
 * a time; distinct contexts may sample concurrently (the scheduler samples
 * the rows of a step in parallel, one context per worker). samp_params and
 * the functions taking only them are pure.
 *
 * Order of operations (vLLM's): raw logits -> (logprobs are reported from the
 * raw log-softmax, before any processing, as vLLM's default "raw_logprobs")
 * -> logit_bias -> banned ids (min_tokens masks eos/stop ids) -> repetition
 * penalty (prompt + output tokens) -> frequency and presence penalties
 * (output tokens) -> temperature 0: argmax (lowest id wins a tie) ->
 * otherwise / temperature -> top_k -> top_p -> min_p -> draw.
 *
 * Determinism: the draw uses one uniform from a counter-based generator keyed
 * by (seed, choice, token index) (Philox4x32-10, engine/philox.h), never a
 * shared stream, so a seeded request gives the same tokens whatever else is in the
 * batch and after preemption (the key depends only on the request).
 *
 * Device sampling (kernels/cuda/sample.cu behind the CUDA backend's
 * ops->sample, engine/engine.h) follows this order step by step, the same
 * float operations without FMA contraction, top_p's two paths as written
 * here, and the same uniform (engine/philox.h compiled into both, so the
 * Philox words are bit for bit the same). Intentional
 * differences, both far below float resolution: the double sums (softmax
 * total, top_p's cumulative mass, the CDF walk) are associated differently
 * (per-thread chunks, then a block scan), and the GPU's expf may differ from
 * glibc's by an ulp. So a seeded draw can differ only where u lands within
 * ~1e-7 (relative) of a CDF boundary or a top_p / min_p cut is that close;
 * the kernel reports that margin and tests/gpu/check_gpu_sample.c accepts a
 * mismatch only below 2.5e-7. Log-probs agree far within the tests' 1e-4.
 */
#ifndef DS_ENGINE_SAMPLING_H
#define DS_ENGINE_SAMPLING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* OpenAI allows top_logprobs up to 20; vLLM allows more, we keep 20. */
#define SAMP_MAX_LOGPROBS 20

struct samp_bias {
    int32_t token;
    float bias;                   /* added to the logit; OpenAI range [-100, 100] */
};

struct samp_params {
    float temperature;            /* >= 0; 0 (or < 1e-5) = greedy */
    float top_p;                  /* (0, 1]; 1 = off */
    int top_k;                    /* <= 0 = off (vLLM uses -1) */
    float min_p;                  /* [0, 1]; 0 = off */
    float presence_penalty;       /* [-2, 2]; 0 = off (output tokens) */
    float frequency_penalty;      /* [-2, 2]; 0 = off (output tokens) */
    float repetition_penalty;     /* > 0; 1 = off (prompt + output tokens) */
    const struct samp_bias *logit_bias; /* [num_logit_bias], borrowed */
    int num_logit_bias;
};

/* One token and its log-probability (natural log, raw model distribution). */
struct samp_logprob {
    int32_t token;
    float logprob;
};

struct samp_result {
    int32_t token;                /* the chosen token */
    float logprob;                /* raw log-softmax of the chosen token */
    int num_top;                  /* alternatives filled (= requested k) */
    struct samp_logprob top[SAMP_MAX_LOGPROBS]; /* by logprob, descending */
};

/* Defaults: temperature 1, top_p 1, top_k off, min_p 0, penalties off. */
void samp_params_init(struct samp_params *p);

/* Checks ranges against vocab (logit_bias ids in [0, vocab)). Returns 0, or
 * -EINVAL with a one-line message naming the field in err. Any thread. */
int samp_params_validate(const struct samp_params *p, int vocab, char *err, size_t errlen);

static inline bool samp_is_greedy(const struct samp_params *p) { return p->temperature < 1e-5f; }

struct samp_ctx;

/* Scratch for one vocab size. NULL on out of memory. */
struct samp_ctx *samp_ctx_create(int vocab);
void samp_ctx_destroy(struct samp_ctx *c);

/* A uniform double in [0, 1) from (seed, stream, counter); pure. */
double samp_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Samples one token from logits[vocab] (read-only; the context copies it).
 *   prompt/num_prompt, output/num_output: token history for the penalties.
 *   banned/num_banned: ids forced to -inf (min_tokens: eos and stop ids).
 *   seed, stream, counter: the RNG key (request seed, choice index, index of
 *     the token being generated).
 *   num_logprobs: -1: no log-probs (out->logprob 0, skips an exp per id);
 *     0..SAMP_MAX_LOGPROBS: the chosen token's raw log-prob plus that many
 *     alternatives.
 * If every token ends up at -inf (e.g. everything banned by logit_bias) the
 * raw argmax is chosen so a request never fails in the sampler.
 * Returns 0; -EINVAL for bad arguments. Engine thread (owner of c). */
int samp_sample(struct samp_ctx *c, const float *logits, const struct samp_params *p,
                const int32_t *prompt, int num_prompt, const int32_t *output, int num_output,
                const int32_t *banned, int num_banned, uint64_t seed, uint64_t stream,
                uint64_t counter, int num_logprobs, struct samp_result *out);

/* Raw log-probability of token `token` under logits[vocab], plus the top k
 * alternatives (prompt log-probs for echo). Returns 0 or -EINVAL. */
int samp_logprobs(struct samp_ctx *c, const float *logits, int32_t token, int k,
                  struct samp_result *out);

#ifdef __cplusplus
}
#endif
#endif
