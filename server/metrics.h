/* server/metrics.h: Prometheus /metrics for deltaserve (text exposition 0.0.4).
 *
 * defines: metrics_init, metrics_fini, metrics_set_gauge_source,
 *          metrics_set_gauges, metrics_add_prompt_tokens,
 *          metrics_add_generation_tokens, metrics_inc_request_success,
 *          metrics_inc_preemptions, metrics_observe_ttft, metrics_observe_itl,
 *          metrics_observe_e2e, metrics_observe_queue_time, metrics_render,
 *          metrics_finish_reason_parse, METRICS_CONTENT_TYPE,
 *          metrics_attach_sched, metrics_from_sched_stats (server/metrics_sched.c)
 *
 * Names mirror vLLM's (vllm:... -> deltaserve:...), each sample labelled
 * model_name="<served model name>":
 *   gauges      deltaserve:num_requests_running, num_requests_waiting,
 *               kv_cache_usage_perc (0..1), gdn_state_slots_used
 *   counters    deltaserve:prompt_tokens_total, generation_tokens_total,
 *               request_success_total{finished_reason="stop|length|abort"},
 *               num_preemptions_total; with speculation configured:
 *               spec_decode_num_drafts_total, spec_decode_num_draft_tokens_total,
 *               spec_decode_num_accepted_tokens_total,
 *               spec_decode_num_accepted_tokens_per_pos_total{position="i"}
 *   histograms  deltaserve:time_to_first_token_seconds,
 *               inter_token_latency_seconds, e2e_request_latency_seconds,
 *               request_queue_time_seconds (vLLM's bucket boundaries)
 *
 * The registry is process-global (one served model per process), like the
 * log module: no handle to thread through the scheduler and the HTTP code.
 *
 * Threads: metrics_init/metrics_fini/metrics_set_gauge_source run once on the
 * main thread, before the scheduler and HTTP threads start / after they stop.
 * Every other function may be called from any thread at any time, also before
 * metrics_init (then it is a no-op, so unit tests of other modules need not
 * set metrics up). Updates never block on rendering for more than one
 * histogram's copy.
 *
 * Gauges work push or pull:
 *   push: the scheduler calls metrics_set_gauges() after each step;
 *   pull: metrics_set_gauge_source(fn, user) registers a callback that
 *         metrics_render() calls on the rendering (HTTP) thread to take a
 *         snapshot (e.g. from sched_stats()). When a source is set it wins
 *         over pushed values.
 */
#ifndef DS_SERVER_METRICS_H
#define DS_SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Value for the HTTP Content-Type header of a /metrics response. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* finished_reason label values: vLLM's stop/length/abort plus error (an
 * engine failure). Same order as enum sched_finish minus its NONE, so
 * (enum metrics_finish)(f - SCHED_FINISH_STOP) maps one to the other. */
enum metrics_finish {
    METRICS_FINISH_STOP = 0, /* EOS or a stop string/token */
    METRICS_FINISH_LENGTH,   /* max_tokens or max model length reached */
    METRICS_FINISH_ABORT,    /* client disconnect, cancel, shutdown */
    METRICS_FINISH_ERROR,    /* engine failure */
    METRICS_FINISH_COUNT
};

/* Positions of spec_decode_num_accepted_tokens_per_pos at most (SPEC_MAX_TOKENS). */
#define METRICS_SPEC_MAX_POS 16

/* A snapshot of the scheduler's gauges. */
struct metrics_gauges {
    int64_t num_requests_running; /* requests in the running batch */
    int64_t num_requests_waiting; /* admitted, waiting for KV / a slot */
    double kv_cache_usage_perc;   /* used KV blocks / total, 0..1 */
    int64_t gdn_state_slots_used; /* GDN recurrent-state slots in use */
    /* Optional cumulative totals, for a pull source whose owner already
     * counts (sched_stats does): when has_totals != 0 these REPLACE the
     * pushed counters in the exposition. Use either push (metrics_add_*,
     * metrics_inc_*) or these, not both. Ignored by metrics_set_gauges. */
    int has_totals;
    uint64_t prompt_tokens_total;
    uint64_t generation_tokens_total;
    uint64_t preemptions_total;
    uint64_t success_total[METRICS_FINISH_COUNT]; /* by enum metrics_finish */
    /* Speculative decoding totals (pull only, with has_totals): rendered
     * when spec_num_positions > 0 (speculation configured), as vLLM does:
     * spec_decode_num_drafts_total (verify rows), _num_draft_tokens_total,
     * _num_accepted_tokens_total and
     * _num_accepted_tokens_per_pos_total{position="0".."k-1"}. */
    int spec_num_positions;       /* k; 0 = no speculative metrics */
    uint64_t spec_drafts_total;
    uint64_t spec_draft_tokens_total;
    uint64_t spec_accepted_tokens_total;
    uint64_t spec_accepted_per_pos[METRICS_SPEC_MAX_POS];
};

/* Pull callback: fill *out; return 0, or a negative value if no snapshot is
 * available (the last pushed / last good values are rendered then). Called
 * on the thread that calls metrics_render (an HTTP thread), so it must be
 * thread-safe against the scheduler (take the scheduler's lock or read
 * atomics). */
typedef int (*metrics_gauge_fn)(void *user, struct metrics_gauges *out);

/* Set up (or reset) the registry. model_name is copied (it becomes the
 * model_name label; it is escaped on output). Returns 0, -1 on bad argument
 * (NULL/empty) or out of memory. Main thread, before other threads use it;
 * calling it again resets every value (used by tests). */
int metrics_init(const char *model_name);
/* Free the registry; later calls are no-ops until metrics_init. Main thread,
 * after all other users stopped. */
void metrics_fini(void);

/* Register (fn != NULL) or remove (fn == NULL) the pull source. user is
 * borrowed and must outlive the registration. Main thread. */
void metrics_set_gauge_source(metrics_gauge_fn fn, void *user);
/* Push a gauge snapshot (copied). Any thread. */
void metrics_set_gauges(const struct metrics_gauges *g);

/* Counters. Any thread; n < 0 is ignored (counters only go up). */
void metrics_add_prompt_tokens(int64_t n);
void metrics_add_generation_tokens(int64_t n);
void metrics_inc_request_success(enum metrics_finish reason);
void metrics_inc_preemptions(int64_t n);

/* Histogram observations, in seconds. Any thread; negative or non-finite
 * values are ignored (a clock glitch must not corrupt the exposition).
 *   ttft:  request arrival -> first generated token
 *   itl:   one observation per generated token after the first
 *   e2e:   arrival -> finish
 *   queue: arrival -> first scheduled (time in WAITING)
 * From struct sched_timing (ns): ttft = first_token - arrival, e2e = finish -
 * arrival, queue = first_scheduled - arrival; itl per token = the gap since
 * the previous token of the same choice. */
void metrics_observe_ttft(double s);
void metrics_observe_itl(double s);
void metrics_observe_e2e(double s);
void metrics_observe_queue_time(double s);

/* "stop" | "length" | "abort" | "error" -> enum; -1 if unknown. */
int metrics_finish_reason_parse(const char *s);

/* --- the scheduler as the source (server/metrics_sched.c) ---------------- */
struct sched;
struct sched_stats;
/* Register sched_get_stats(s) as the pull source: gauges AND totals (prompt
 * and generated tokens, preemptions, finished requests by reason) come from
 * the scheduler's own counters, so do not also push counters. NULL detaches.
 * s is borrowed: detach (or metrics_fini) before sched_destroy. Main thread,
 * after metrics_init. Histograms are still pushed (metrics_observe_*), once
 * per event, by exactly one caller (the scheduler's step loop). */
void metrics_attach_sched(const struct sched *s);
/* The mapping used by the source above (sched_finish STOP.. -> metrics_finish
 * STOP..). Any thread. */
void metrics_from_sched_stats(const struct sched_stats *st, struct metrics_gauges *g);

/* Render the whole exposition. Returns a malloc'd NUL-terminated string the
 * caller frees (free()); *len (if len != NULL) gets its length without the
 * NUL. Returns NULL on out of memory or before metrics_init. Any thread;
 * calls the pull source if one is set. */
char *metrics_render(size_t *len);

#ifdef __cplusplus
}
#endif
#endif
