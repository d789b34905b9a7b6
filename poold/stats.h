/* stats.h — the launcher's figures: to statsd with Nodepool's names
 * (protocol.md §3.3) and to Prometheus (/metrics) with poold's. Their state
 * (registry, statsd client) lives in struct webapp. Loop thread only. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model_request.h"

struct launcher;
struct pool;
struct node;
struct webapp;

/* ---- hooks the launcher core calls; all no-ops when l->webapp is NULL ---- */
/* A launch of node N by pool P for REQUEST_ID (may be NULL) ended with
 * RESULT (0 ready, -EDQUOT quota, other -errno failed) after DURATION_MS. */
void stats_launch_done(struct launcher *l, const struct pool *p, const struct node *n, const char *request_id,
                       int result, uint64_t duration_ms);
/* A request reached final STATE (fulfilled or failed), written by us;
 * CREATED_TIME is its created_time (NaN or 0 when unknown). */
void stats_request_done(struct launcher *l, enum node_request_state state, double created_time);
/* The cleanup deleted N leaked resources of provider PROVIDER; WHAT is Nodepool's
 * plural ("instances", "floatingips", "ports"): statsd counter
 * nodepool.provider.<PROVIDER>.leaked.<WHAT>. */
void stats_leaked(struct launcher *l, const char *provider, const char *what, size_t n);

/* ---- for the web app (webapp.c) ---- */
/* Declare the Prometheus families and open statsd. */
void stats_init(struct webapp *w, struct launcher *l);
/* Recompute gauges from the caches (Prometheus) and, if they changed or a
 * minute passed, send the statsd gauges. Called every second and before /metrics. */
void stats_refresh(struct webapp *w, struct launcher *l, bool for_scrape);
/* The Prometheus text (after a refresh). Malloc'd. */
char *stats_render(struct webapp *w);
void stats_free(struct webapp *w);
/* One web app step (a request, a refresh slice, a finished answer) held the
 * loop for SECONDS: the poold_webapp_loop_block_seconds histogram. */
void stats_loop_block(struct webapp *w, double seconds);
