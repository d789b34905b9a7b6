/* webapp_internal.h — struct webapp and what the webapp*.c files share. */
#pragma once

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smap.h"
#include "table.h"
#include "webapp.h"

struct MHD_Connection;
struct MHD_Daemon;
struct loop_io;
struct loop_timer;
struct metrics;
struct statsd;
struct webapp_cached;
struct webapp_conn;
struct webapp_job;
struct webapp_rows;
struct workq;

struct webapp {
        struct launcher *l;
        /* webapp.c: the HTTP server */
        struct MHD_Daemon *mhd;
        int port;
        struct loop_io *io;             /* MHD's epoll fd in our loop */
        struct loop_timer *mhd_timer;   /* MHD's connection timeouts, our sweep of waiting connections */
        struct webapp_conn *conns;      /* every open connection (webapp_conns.c) */
        unsigned n_conns;
        uint64_t conns_swept_ms;
        struct webapp_cached *cache;    /* rendered answers, 1 s like Nodepool (list) */
        unsigned n_cached;
        size_t cached_bytes;
        struct workq *wq;               /* formats answers off the loop (one thread) */
        struct webapp_job *jobs;        /* answers being made (list) */
        unsigned n_jobs;
        struct loop_timer *slice_timer; /* the next refresh slice while a rows job waits */
        struct webapp_rows *node_rows, *request_rows; /* NULL until first asked for */
        uint64_t rows_used_ms;          /* last listing made from them (idle ones are dropped) */
        double loop_block_max;          /* longest time one web app step held the loop, seconds */
        double loop_block_cpu_max;      /* the most CPU time one step used (preemption excluded) */
        /* stats.c */
        struct loop_timer *stats_timer;
        struct statsd *statsd;
        struct metrics *metrics;
        struct zk_lock *stats_election;  /* /nodepool/elections/stats: held while we send the gauges */
        uint64_t stats_election_next_ms; /* no new attempt before */
        char *last_gauges;              /* what was last sent to statsd (change detection) */
        uint64_t last_gauges_ms;
};

/* ---- webapp_conns.c: connections that have not sent a whole request yet
 * are closed when their client left or their request is overdue (loop
 * thread; MHD's callbacks) ---- */
/* MHD opened connection CONN on socket FD (MHD_CONNECTION_NOTIFY_STARTED):
 * track it in *SOCKET_CONTEXT until webapp_conn_closed(). */
void webapp_conn_opened(struct webapp *w, struct MHD_Connection *conn, int fd, void **socket_context);
/* MHD closed it (MHD_CONNECTION_NOTIFY_CLOSED): forget and free it. */
void webapp_conn_closed(struct webapp *w, void **socket_context);
/* CONN's request is over: the time for its next one (keep-alive) counts from now. */
void webapp_conn_request_done(struct MHD_Connection *conn);
/* Shut down the connections still waiting for a whole request whose client
 * hung up or whose time is up (short while the table is full: LIMIT
 * connections open); MHD frees them on its next run. Rate-limited, so cheap
 * to call after every MHD_run(). Returns the ms until the next sweep is due
 * (UINT64_MAX: no connection open). */
uint64_t webapp_conns_sweep(struct webapp *w, unsigned limit);

/* ---- webapp_rows.c: long listings kept up to date row by row (loop thread
 * unless said otherwise) ---- */

/* How a listing is made from one of the launcher's maps. */
struct webapp_rows_ops {
        struct smap *(*map)(struct launcher *l);        /* id → item */
        struct table *(*new_table)(void);               /* empty, the listing's columns */
        /* The item's version: a JSON object the item owns and never modifies
         * (its raw record). NULL when unknown: the row is rebuilt every time. */
        json_t *(*version)(const void *item);
        bool (*flag)(const void *item);                 /* a bit the row also shows (locked); may be NULL */
        void (*add_row)(struct table *t, const void *item); /* the dynamic column's text is ignored */
        double (*when)(const void *item);               /* the dynamic column's time; may be NULL */
        size_t dyn_col;                                 /* an age column drawn at format time, or SIZE_MAX */
};
/* Rows sort by their first column (the id), as the map's keys. */
extern const struct webapp_rows_ops webapp_node_rows_ops, webapp_request_rows_ops;

struct webapp_snap_item {
        struct table_row *row;
        double when;
};

/* Every row of a listing at one moment: immutable, so any thread may read it. */
struct webapp_snapshot {
        _Atomic unsigned refs;
        struct webapp_snap_item *items; /* map order */
        size_t n;
        double now;                     /* model_now() when taken: ages count from it */
};

struct webapp_rows *webapp_rows_new(struct launcher *l, const struct webapp_rows_ops *ops);
void webapp_rows_free(struct webapp_rows *rc); /* NULL ok */
/* An empty table with the listing's columns (borrowed; do not modify). */
const struct table *webapp_rows_columns(const struct webapp_rows *rc);
/* Rows built since creation (tests, metrics). */
uint64_t webapp_rows_built(const struct webapp_rows *rc);
/* One slice of bringing the rows up to date with the map, rebuilding changed
 * rows for at most BUDGET_NS: 1 and *ret_snap (the caller's reference) when
 * every row is current, 0 when another slice is needed. */
int webapp_rows_refresh(struct webapp_rows *rc, uint64_t budget_ns, struct webapp_snapshot **ret_snap);
/* References; any thread. */
struct webapp_snapshot *webapp_snapshot_ref(struct webapp_snapshot *snap);
void webapp_snapshot_unref(struct webapp_snapshot *snap); /* NULL ok */
/* The listing's text (with COLS' columns and hidden flags; DYN_COL drawn from
 * each item's `when` and the snapshot's `now`) or JSON, rows sorted by id.
 * Malloc'd. Any thread. */
char *webapp_snapshot_format(const struct webapp_snapshot *snap, const struct table *cols, size_t dyn_col,
                             bool json);
