/* metrics.h — a small registry of counters, gauges and histograms rendered
 * as Prometheus text (exposition format 0.0.4).
 *
 * A family is declared once with its kind, help text and (histograms) bucket
 * upper bounds; series within it are told apart by label pairs given as a
 * NULL-terminated array { "key", "value", "key", "value", ..., NULL } (a
 * NULL array = no labels). Label values are escaped on output; label pairs
 * must be given in the same key order for the same series. Series are
 * rendered in creation order. Owner thread only (the launcher's loop). */
#pragma once

#include <stddef.h>

#include "macro.h"

enum metrics_kind {
        METRICS_COUNTER,
        METRICS_GAUGE,
        METRICS_HISTOGRAM,
        _METRICS_KIND_MAX,
        _METRICS_KIND_INVALID = -EINVAL,
};

struct metrics;

/* An empty registry. Never NULL. */
struct metrics *metrics_new(void);
void metrics_free(struct metrics *m); /* NULL ok */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct metrics *, metrics_free);

/* Declare family NAME ([a-zA-Z_:][a-zA-Z0-9_:]*): 0, -EEXIST if already
 * declared, -EINVAL for a bad name or a histogram without ascending buckets.
 * BUCKETS (copied; N_BUCKETS of them, +Inf implied) only for histograms. */
int metrics_declare(struct metrics *m, const char *name, enum metrics_kind kind, const char *help,
                    const double *buckets, size_t n_buckets);

/* Counter += V (V >= 0). -ENOENT for an undeclared family, -EINVAL for a wrong kind. */
int metrics_add(struct metrics *m, const char *name, const char *const *labels, double v);
/* Gauge = V. */
int metrics_set(struct metrics *m, const char *name, const char *const *labels, double v);
/* Set a counter kept elsewhere (e.g. by a library) to its current total V;
 * a smaller V than the last one is ignored. */
int metrics_set_counter(struct metrics *m, const char *name, const char *const *labels, double v);
/* Histogram: count one observation V. */
int metrics_observe(struct metrics *m, const char *name, const char *const *labels, double v);
/* Set every series of gauge family NAME to 0 (gauges recomputed from
 * scratch keep their known series at zero, as Nodepool's statsd gauges do). */
int metrics_zero(struct metrics *m, const char *name);
/* The current value of a counter or gauge series (tests); -ENOENT when absent. */
int metrics_get(struct metrics *m, const char *name, const char *const *labels, double *ret);

/* The whole registry as Prometheus text. Malloc'd, caller frees. */
char *metrics_render(const struct metrics *m);
