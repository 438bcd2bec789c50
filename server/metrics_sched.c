/* server/metrics_sched.c: the scheduler as the pull source of /metrics.
 *
 * metrics_attach_sched() registers a gauge source that reads one
 * sched_get_stats() snapshot per scrape: the gauges (running, waiting, KV
 * usage, GDN slots) and the cumulative totals the scheduler already keeps
 * (prompt / generated tokens, preemptions, finished requests by reason), so
 * nothing is counted twice and nothing on the step path calls into metrics
 * for counters. Histograms stay push (metrics_observe_*), from the one place
 * that sees each token's time.
 *
 * A separate file from metrics.c so that programs using metrics without a
 * scheduler (the unit tests) do not link sched_get_stats: this object is
 * pulled from the library only by callers of metrics_attach_sched. The
 * field mapping, metrics_from_sched_stats, lives in metrics.c and is tested
 * there.
 *
 * Threads: metrics_attach_sched on the main thread; the callback runs on the
 * HTTP thread that renders /metrics (sched_get_stats is safe from any thread).
 */
#include "server/metrics.h"

#include "scheduler/sched.h"

static int sched_source(void *user, struct metrics_gauges *out)
{
    const struct sched *s = user;
    if (!s) return -1;
    struct sched_stats st;
    sched_get_stats(s, &st);
    metrics_from_sched_stats(&st, out);
    return 0;
}

void metrics_attach_sched(const struct sched *s)
{
    /* The source's user pointer is non-const by contract; the callback only
     * reads through it. */
    metrics_set_gauge_source(s ? sched_source : NULL, (void *)s);
}
