/* webapp.h — poold's status web app, Prometheus /metrics and statsd
 * (protocol.md §3.2, §3.3). Everything declared here runs on the launcher's
 * loop thread (the web app's own worker thread only formats listings).
 *
 *   webapp.c        the HTTP server (libmicrohttpd driven by the loop), routing, caching,
 *                   listing jobs (suspended connections, formatting on a worker)
 *   webapp_conns.c  connections still waiting for their request: closed when the client
 *                   left or the request is overdue (floods of partial requests)
 *   webapp_req.c    request parsing: path, query values, Accept (pure, fuzzed)
 *   webapp_rows.c   node and request listings kept pre-rendered row by row
 *   webapp_lists.c  the listings built from the launcher's caches
 *   webapp_stats.c  launch/request/node figures → statsd (Nodepool names) and Prometheus
 *   webapp_page.c   the status page served at /
 *
 * Configuration: `webapp: {port, listen_address}` (default 0.0.0.0:8005 as
 * Nodepool). Port 0 turns the HTTP server off (metrics still go to statsd).
 * A port that cannot be bound is logged as an error and the launcher keeps
 * running without its web app: serving status is never worth stopping
 * launches for. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "model_request.h"

struct launcher;
struct pool;
struct node;
struct table;

struct webapp;

/* Create l->webapp: metrics registry, statsd client from the environment,
 * and the HTTP server unless disabled. Call after launcher_subsystems_start().
 * Failures are logged; returns 0 always (the launcher runs without it). */
int webapp_start(struct launcher *l);
/* Stop serving and free l->webapp (NULL ok). Open connections are closed. */
void webapp_stop(struct launcher *l);
/* The TCP port the server listens on, 0 when off (tests, logs). */
int webapp_port(const struct webapp *w);

/* ---- hooks (webapp_stats.c); all no-ops when l->webapp is NULL ---- */
/* A launch of node N by pool P for REQUEST_ID (may be NULL) ended with
 * RESULT (0 ready, -EDQUOT quota, other -errno failed) after DURATION_MS. */
void webapp_launch_done(struct launcher *l, const struct pool *p, const struct node *n, const char *request_id,
                        int result, uint64_t duration_ms);
/* A request reached final STATE (fulfilled or failed), written by us;
 * CREATED_TIME is its created_time (NaN or 0 when unknown). */
void webapp_request_done(struct launcher *l, enum node_request_state state, double created_time);

/* The cleanup deleted N leaked resources of provider PROVIDER; WHAT is Nodepool's
 * plural ("instances", "floatingips", "ports"): statsd counter
 * nodepool.provider.<PROVIDER>.leaked.<WHAT>. */
void webapp_leaked(struct launcher *l, const char *provider, const char *what, size_t n);

/* ---- internal to the webapp*.c files ---- */
/* True once the caches finished their first listing, every active pool is
 * registered and ZooKeeper is connected: what /ready reports. */
bool webapp_ready(struct launcher *l);
/* Listing NAME ("node-list", …) from the caches; NULL for an unknown name.
 * NODE_ID (may be NULL) filters node-list. Caller frees the table. */
struct table *webapp_list(struct launcher *l, const char *name, const char *node_id);
/* Declare the Prometheus families and open statsd. */
void webapp_stats_init(struct webapp *w, struct launcher *l);
/* Recompute gauges from the caches (Prometheus) and, if they changed or a
 * minute passed, send the statsd gauges. Called every second and before /metrics. */
void webapp_stats_refresh(struct webapp *w, struct launcher *l, bool for_scrape);
/* The Prometheus text (after a refresh). Malloc'd. */
char *webapp_stats_render(struct webapp *w);
void webapp_stats_free(struct webapp *w);
/* The status page (a static NUL-terminated string). */
extern const char webapp_page_html[];
