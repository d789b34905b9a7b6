/* launcher.h — the launcher daemon's one state object and its subsystems.
 *
 * struct launcher is the only global of poold (a static instance in main.c,
 * passed by pointer everywhere). Every function declared here runs on the loop
 * thread unless it says otherwise. Subsystems (one .c each):
 *   launcher.c  start/stop, ZooKeeper session, launcher component, config reload
 *   caches.c    watched caches of nodes, requests and images, decoded into maps
 *   pool.c      providers and pools (components, quota, label lookup)
 *   request.c   request handlers: decline / accept / fill / fulfil
 *   launch.c    one launch state machine per node being built
 *   delete.c    deletion of unlocked nodes in deletable states
 *   minready.c  min-ready requests
 *   cleanup.c   lost requests, stale locks, leaked instances, max-ready-age, hold */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "component.h"
#include "config.h"
#include "loop.h"
#include "model_image.h"
#include "model_node.h"
#include "model_request.h"
#include "provider.h"
#include "workq.h"
#include "zk.h"
#include "zk_cache.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

#define LAUNCHER_REQUEST_ROOT "/nodepool/requests"
#define LAUNCHER_REQUEST_LOCK_ROOT "/nodepool/requests-lock"
#define LAUNCHER_NODE_ROOT "/nodepool/nodes"
#define LAUNCHER_IMAGE_ROOT "/nodepool/images"
#define LAUNCHER_MINREADY_REQUESTOR "NodePool:min-ready"

struct pool;
struct req_handler;
struct launch;

/* A node as cached: decoded record plus cache facts. */
struct cnode {
        struct node *node;
        unsigned lock_contenders;       /* > 0: someone holds /nodepool/nodes/<id>/lock */
        int32_t version;
        double mtime;                   /* seconds */
        bool ours;                      /* we hold its lock right now (launch, delete, handler) */
};

/* A READY upload of an image to a provider, the newest per (image, provider). */
struct cupload {
        struct image_upload *upload;
        char *path;                     /* its znode path (= node image_id) */
        bool build_ready;               /* its build is READY too */
};

struct launcher {
        struct loop *loop;
        struct zk *zk;
        struct workq *wq;
        struct config *cfg;
        char *config_path, *secure_path;
        struct timespec config_mtime, secure_mtime;
        char *hostname;
        struct component *component;
        struct loop_io *zk_io;
        struct loop_timer *tick;        /* 1 s: config mtime, min-ready, periodic passes */
        struct loop_timer *cleanup_timer;
        struct loop_prepare *prepare;   /* runs the passes when something changed */
        uint64_t cleanup_interval_ms;   /* 60 s; POOLD_CLEANUP_INTERVAL_MS overrides (tests) */
        bool stopping;
        bool dirty;                     /* caches changed: run the request/delete passes */

};

/* ---- launcher.c ---- */
/* Load the config, connect to ZooKeeper, register, open pools, start caches.
 * Returns 0 or a negative errno (already logged). */
int launcher_start(struct launcher *l);
/* Release every lock and component, close ZooKeeper and providers, free all. */
void launcher_stop(struct launcher *l);
/* Reload the config from disk; an invalid file keeps the old one (diagnostics logged). */
void launcher_reload(struct launcher *l);
/* Ask for the request/delete passes to run before the loop sleeps again. */
void launcher_kick(struct launcher *l);
/* Hostname without domain... as Nodepool's socket.gethostname(). */
const char *launcher_hostname(struct launcher *l);

/* Start caches, pools and timers of the subsystems (after ZooKeeper is up). */
int launcher_subsystems_start(struct launcher *l);
/* Stop launching: cancel timers and release request/node locks we hold. */
void launcher_subsystems_stop(struct launcher *l);
/* Free what the subsystems own (after the workq drained). */
void launcher_subsystems_free(struct launcher *l);
/* The passes (requests, deletes, min-ready) — run when dirty. */
void launcher_run_passes(struct launcher *l);
/* Every second: time-based checks (launch timeouts are timers of their own). */
void launcher_tick(struct launcher *l);
/* The session expired: every lock and ephemeral we held is gone. */
void launcher_session_lost(struct launcher *l);

/* ---- pool.c ---- */
/* Bring l->pools in line with l->cfg (after a reload). */
void pools_sync(struct launcher *l);
