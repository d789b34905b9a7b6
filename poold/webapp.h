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
 *   webapp_page.c   the status page served at /
 * The figures behind /metrics (and statsd) are stats.h's; their state lives
 * in struct webapp.
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

/* ---- internal to the webapp*.c files ---- */
/* True once the caches finished their first listing, every active pool is
 * registered and ZooKeeper is connected: what /ready reports. */
bool webapp_ready(struct launcher *l);
/* Listing NAME ("node-list", …) from the caches; NULL for an unknown name.
 * NODE_ID (may be NULL) filters node-list. Caller frees the table. */
struct table *webapp_list(struct launcher *l, const char *name, const char *node_id);
/* The status page (a static NUL-terminated string). */
extern const char webapp_page_html[];
