/* launcher.h — the launcher daemon's one state object and its subsystems.
 *
 * struct launcher is the only global of poold (a static instance in main.c,
 * passed by pointer everywhere). Every function declared here runs on the loop
 * thread unless it says otherwise. Subsystems (one .c each):
 *   launcher.c  start/stop, ZooKeeper session, launcher component, config reload
 *   caches.c    watched caches of nodes, requests and images, decoded into maps
 *   pool.c      providers and pools (components, quota, label lookup)
 *   cloud.c, static.c, metastatic.c  the driver kinds behind struct pool_driver (pool_driver.h)
 *   request.c   request handlers: decline / accept / fill / fulfil
 *   launch.c    one launch state machine per node being built
 *   delete.c    deletion of unlocked nodes in deletable states
 *   minready.c  min-ready requests
 *   cleanup.c   lost requests, stale locks, leaked instances, max-ready-age, hold
 *   owner.c     which launcher does shared work (rendezvous hashing over live pools) */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "component.h"
#include "config.h"
#include "loop.h"
#include "model_image.h"
#include "model_node.h"
#include "model_request.h"
#include "nodepool_zk.h"
#include "provider.h"
#include "smap.h"
#include "workq.h"
#include "zk.h"
#include "zk_cache.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

/* The schema's paths are nodepool_zk.h's (NPZK_*, npzk_*_path()). */
#define LAUNCHER_MINREADY_REQUESTOR "NodePool:min-ready"

struct pool;
struct pool_driver;
struct req_handler;
struct static_prov;
struct meta_prov;
struct create_op;
struct launch;
struct zk_lock;
struct webapp;
struct lock_sweep;
struct owners;
struct reconcile;

struct launcher {
        struct loop *loop;
        struct zk *zk;
        struct workq *wq;
        /* The cloud drivers' API-call metrics (nodepool.task.*), sent from the
         * worker threads; NULL without STATSD_HOST/PORT. Outlives the providers. */
        struct statsd *api_statsd;
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
        bool zk_was_down;               /* the session was SUSPENDED or EXPIRED since it started */

        /* caches.c */
        struct zk_cache *node_cache, *request_cache, *image_cache, *pool_cache;
        struct smap nodes;            /* node id -> struct cnode* */
        struct smap requests;         /* request id -> struct creq* */
        struct smap uploads;          /* upload znode path -> struct image_upload* */
        struct smap builds;           /* build znode path -> struct image_build* */
        struct smap bad_records;      /* path -> (void*)1: malformed, logged once */
        struct smap ready;            /* "<provider>\n<pool>\n<label>" -> nodes a request may reuse (caches.c) */
        /* zkrec.c */
        struct smap node_writes;      /* node id -> its newest async write, until confirmed */
        /* Quota usage kept incrementally as nodes come and go (struct usage*, freed at stop). */
        struct smap usage_pool;       /* "<provider>/<pool>" */
        struct smap usage_prov;       /* "<provider>" */
        struct smap usage_tenant;     /* "<tenant>" */

        /* pool.c */
        struct launcher_provider **provs;            /* open providers (retired ones stay until stop) */
        size_t n_provs;
        struct pool **pools;            /* active and retired pools */
        size_t n_pools;

        /* request.c */
        struct smap handlers;         /* request id -> struct req_handler* */
        struct smap held;             /* node id -> (void*)1: we hold its lock */
        struct smap accepting;        /* request id -> struct accept_op*: lock/read/write in flight */
        struct smap declining;        /* request id -> struct decline_op*: lock/read/write in flight */
        struct smap reusing;          /* node id -> struct reuse_op*: lock/read/write in flight */
        struct create_op *creates;      /* node znodes being created/locked for handlers (list) */
        /* launch.c */
        struct launch *launches;        /* in flight (list) */
        /* delete.c */
        struct smap deleting;         /* node id -> struct node_delete* */
        struct smap unallocating;     /* node id -> struct unalloc_op* */
        struct smap gone;             /* node ids we deleted (skip until the cache drops them) */
        struct smap delete_candidates; /* node id -> NULL: unlocked and deletable, INIT or allocated (delete_candidate) */
        struct smap making_room;      /* "<provider>/<pool>" -> struct room_op*: its oldest unused node going (delete_make_room) */
        /* cleanup.c */
        struct smap leak_seen;        /* "<provider>/<external id>" -> (void*)1 */
        struct smap leak_seen_next;
        uint64_t lost_check_until_ms;   /* a pool component went: look for its lost requests until then */
        uint64_t last_minready_ms;
        struct smap minready_leases;  /* label -> struct zk_lock*: we decide its min-ready (minready.c) */
        struct smap minready_unchecked; /* label -> (void*)1: leased, predecessor's requests not yet seen */
        struct smap minready_created; /* request id -> struct mr_created*: ours, not in the cache yet */
        struct lock_sweep *lock_sweep;  /* the stale request-lock sweep in flight, or NULL */
        /* reconcile.c: after a reconnect or a new session */
        bool reconcile_wanted;
        struct reconcile *reconcile;    /* the sweep in flight, or NULL */
        /* webapp*.c: status web app, Prometheus and statsd */
        struct webapp *webapp;
};

/* Resources counted against a quota: a node's cost, or a sum of them. Keys
 * as in a node's `resources` (instances, cores, ram, volumes, volume-gb). */
struct usage {
        int64_t servers, cores, ram, volumes, volume_gb;
        /* Further integer keys of nodes' `resources` (other drivers' quota
         * codes), which a tenant-resource-limits entry may cap as Nodepool
         * does; NULL when none. Kept in tenant sums and node costs only. */
        json_t *other;
};

/* A node as cached: decoded record plus cache facts. */
struct cnode {
        struct node *node;
        unsigned lock_contenders;       /* > 0: someone holds /nodepool/nodes/<id>/lock */
        bool ours;                      /* we hold its lock (launch, handler, delete) */
        struct ready_links *ready;      /* its places in l->ready while reusable (caches.c) */
        /* What this node added to the usage maps (subtracted when it changes or goes). */
        struct usage *acct_pool, *acct_prov, *acct_tenant;
        struct usage acct;              /* its cost; acct.other owned */
};

/* A request as cached. */
struct creq {
        struct node_request *req;
        bool ephemeral;
        int32_t version;                /* of the znode the record was decoded from */
};

/* The launcher's view of one provider (one per config provider, shared by its
 * pools): the driver instance (struct provider), quota cache, down state and
 * launch lease. Not to be confused with struct provider (a driver connection)
 * or struct config_provider (the configuration). */
struct launcher_provider {
        struct launcher *l;
        char *name;
        const struct pool_driver *drv;  /* its driver kind (pool_driver.h), chosen when opened */
        bool opened;                    /* drv->open succeeded (else it has no pools) */
        struct provider *provider;      /* cloud driver: the provider_ops instance; else NULL */
        unsigned refs;                  /* running jobs using it */
        bool retired;
        struct config_provider *cp;     /* into l->cfg; NULL once retired */
        struct static_prov *st;         /* static driver state */
        struct meta_prov *ms;           /* metastatic driver state */
        /* quota.c: the cloud's limits (cached 5 min) minus servers that are not our nodes */
        struct provider_limits limits;
        struct usage unmanaged;
        bool limits_valid, quota_fetching;
        uint64_t limits_time_ms, backoff_until_ms;
        uint64_t capacity_backoff_ms;   /* doubles while creates keep meeting -EDQUOT */
        /* quota.c: the cloud's availability zones (ops.availability_zones), read with
         * the quota, for requests whose pool names none; known once read (none when
         * the cloud has no such op or would not say, as openstacksdk). */
        char **azs;
        size_t n_azs;
        bool azs_known;
        /* quota.c: the cloud is unreachable (-EHOSTDOWN) or refuses our credentials
         * (-EACCES): its pools pause, a probe (the quota call) retries with back-off. */
        int down_r;                     /* 0 when up */
        char *down_reason;
        uint64_t down_backoff_ms, down_retry_ms;
        /* owner.c: a cloud provider's pools launch only while we hold its launch lease */
        struct zk_lock *lease;
        bool lease_pending;             /* an attempt for it is in flight */
        bool lease_unchecked;           /* leased; the predecessor's nodes not all in the cache yet */
        bool launch_ok;
        uint64_t lease_next_ms;         /* no new attempt before (a dead holder's lease lasts its session) */
};

/* One provider-pool worker. */
struct pool {
        struct launcher *l;
        struct launcher_provider *prov;
        const struct config_provider *cp;   /* into l->cfg (repointed on reload) */
        const struct config_pool *cpool;
        char *provider_name, *name;
        char *id;                       /* "<host>-PoolWorker.<provider>-<pool>-<uuid4hex>" */
        struct component *component;
        bool paused;
        char *pause_reason;
        bool retired;
        unsigned active_launches;
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
/* The session expired: every lock and ephemeral we held is gone. */
void launcher_session_lost(struct launcher *l);
/* The session is CONNECTED again (after SUSPENDED: the same one; after
 * EXPIRED: a new one): lost writes go out again, and a reconciliation runs. */
void launcher_session_back(struct launcher *l);

/* ---- caches.c ---- */
/* Create and start the watched caches. */
int caches_start(struct launcher *l);
/* Stop watching and free every decoded record. */
void caches_free(struct launcher *l);
/* True when the node and request caches finished their first listing. */
bool caches_synced(struct launcher *l);
/* The newest READY upload of IMAGE for PROVIDER whose build is READY, or NULL;
 * *ret_path (may be NULL) gets its znode path (borrowed until the next dispatch). */
const struct image_upload *caches_find_upload(struct launcher *l, const char *image, const char *provider,
                                              const char **ret_path);
/* Registered pool components decoded (new references in a new array: caller decrefs each and frees). */
json_t **caches_pool_components(struct launcher *l, size_t *ret_n);
/* Store N (owned now) as the cached node ID, keeping the usage maps in step. */
void caches_node_store(struct launcher *l, const char *id, struct node *n, unsigned lock_contenders);
/* Forget the cached node ID (usage maps in step). */
void caches_node_remove(struct launcher *l, const char *id);
/* Ready-node index: a cached node of PROVIDER/POOL labelled LABEL that a
 * request may reuse — READY, unallocated, unlocked, neither being reused
 * (l->reusing) nor held, and in availability zone AZ unless AZ is NULL — or
 * NULL. The id is borrowed until the next cache change. */
const char *caches_ready_find(struct launcher *l, const char *provider, const char *pool, const char *label,
                              const char *az);
/* The node of P's ready index (any of its labels) that has been READY longest
 * and that we do not hold, or NULL. Borrowed like caches_ready_find's. */
const char *caches_ready_oldest(struct launcher *l, const struct pool *p);
/* Node ID's entry in the index again after l->reusing changed for it. */
void caches_ready_update(struct launcher *l, const char *id);
/* Someone else holds node ID's lock (an attempt found it busy): not reusable
 * until the cache reports the node again. */
void caches_node_mark_locked(struct launcher *l, const char *id);
/* Count (SIGN 1) or uncount (-1) a node not in the cache yet (being created). */
void caches_usage_reserve(struct launcher *l, const char *provider, const char *pool, const char *tenant,
                          const struct usage *cost, int sign);
/* Recount every node (after a reload: label sizes may have changed). */
void caches_reaccount(struct launcher *l);
/* Usage of a pool / a provider / a tenant (all zero when none); borrowed. */
const struct usage *caches_usage_pool(struct launcher *l, const char *provider, const char *pool);
const struct usage *caches_usage_prov(struct launcher *l, const char *provider);
const struct usage *caches_usage_tenant(struct launcher *l, const char *tenant);

/* ---- zkrec.c: fresh reads and whole-object writes ---- */
/* Read /nodepool/nodes/ID now; 0 and *ret (caller frees) + *ret_version, -ENOENT, -EBADMSG, -errno. */
int zkrec_node_read(struct launcher *l, const char *id, struct node **ret, int32_t *ret_version);
/* Write N (version -1 = any). 0 or -errno (logged by the caller). */
int zkrec_node_write(struct launcher *l, const struct node *n, int32_t version);
/* Edit node N (read under its lock; the update frees it): ZK_UPDATE_WRITE to
 * write it, ZK_UPDATE_NO_WRITE to leave it, or -errno to give up. */
typedef int (*zkrec_node_edit_fn)(struct node *n, void *userdata);
/* Blocking zk_update_run() of node ID: under LOCK (held by us; taken over) or,
 * if NULL, its lock tried without waiting; re-read, EDIT, written with the
 * version read, lock released. 1 written, 0 no write wanted, -EBUSY locked by
 * another, -EBADMSG malformed (logged), or -errno (of the read or the write). */
int zkrec_node_update(struct launcher *l, const char *id, struct zk_lock *lock, zkrec_node_edit_fn edit,
                      void *userdata);
/* Write N (any version) without waiting; a failure is logged. Later writes on the
 * session are applied after it. A write lost with the connection is sent again
 * on the reconnect (zkrec_reconnected) while we hold the node (`held`) in the
 * same session and wrote nothing newer to it. */
void zkrec_node_write_async(struct launcher *l, const struct node *n);
/* The same with N's JSON already made (DATA, LEN bytes, taken over). */
void zkrec_node_write_async_data(struct launcher *l, const char *id, char *data, size_t len);
/* True while a write of node ID sent that way is unconfirmed or waits to be
 * sent again: a later write must go the same way, or a resend would undo it. */
bool zkrec_node_write_pending(struct launcher *l, const char *id);
/* CONNECTED: send again the node writes the connection loss swallowed. */
void zkrec_reconnected(struct launcher *l);
/* Drop every pending node write (stop). */
void zkrec_free(struct launcher *l);
int zkrec_request_read(struct launcher *l, const char *id, struct node_request **ret, int32_t *ret_version);
int zkrec_request_write(struct launcher *l, const struct node_request *r, int32_t version);

/* ---- pool.c ---- */
/* Bring l->pools in line with l->cfg (at start and after a reload). */
void pools_sync(struct launcher *l);
/* Unregister every pool component; close providers (after the workq drained). */
void pools_free_all(struct launcher *l);
/* The pool label config for LABEL, or NULL. */
const struct config_pool_label *pool_find_label(const struct pool *p, const char *label);
/* Set or clear the pause (component `paused` updated; REASON logged). */
void pool_set_paused(struct pool *p, bool paused, const char *reason);
/* Our active pool whose id is ID, or NULL. */
struct pool *pool_by_id(struct launcher *l, const char *id);
/* Our prov named NAME (not retired), or NULL. */
struct launcher_provider *prov_by_name(struct launcher *l, const char *name);
/* Labels the pool offers (its driver says: its labels, or a static pool's nodes' labels). */
bool pool_has_label(const struct pool *p, const char *label);
/* True when every registered pool id is in DECLINED_BY. */
bool pools_all_declined(struct launcher *l, char *const *declined_by);
/* The first of LABELS that only providers poold leaves to another launcher serve
 * (config_label_foreign_only), or NULL. A request for it is that launcher's:
 * poold neither accepts nor declines it, so it can never fail it (issue 15). */
const char *pools_foreign_label(struct launcher *l, char *const *labels);
/* Each pass, before the requests: every active provider's driver sync (static
 * registrations). Cheap when idle. */
void pools_drivers_sync(struct launcher *l);
/* The session ended: the drivers' work in flight reports to no request. */
void pools_forget_requests(struct launcher *l);

/* ---- quota.c ---- */
/* True when P's provider quota is known (or not used); starts a refresh otherwise.
 * Requests are accepted only then, so a pool does not pause just to learn it. */
bool quota_ready(struct pool *p);
/* What quota_check found. */
enum quota_verdict {
        QUOTA_FITS,             /* one more node fits now */
        QUOTA_USAGE,            /* a limit our nodes use up (pool max-servers/cores/ram/volumes, provider
                                 * quota): deleting an idle node of the pool frees room */
        QUOTA_WAIT,             /* anything else: max-concurrency, capacity back-off, provider
                                 * down, its quota not known yet */
        _QUOTA_VERDICT_MAX,
        _QUOTA_VERDICT_INVALID = -EINVAL,
};
/* Whether one more node of PL can start in P now (pool limits, provider quota
 * minus unmanaged usage, max-concurrency, capacity backoff). Unless it fits,
 * *RET_WHY gets the reason for logs and the pool's pause (BUF holds it when
 * formatted). Starts a quota refresh when the cache is stale. */
enum quota_verdict quota_check(struct pool *p, const struct config_pool_label *pl, char *buf, size_t sz,
                               const char **ret_why);
/* The cost of one node of PL (as Nodepool's quotaNeededByLabel: a
 * boot-from-volume label adds 1 volume of volume-size GB). */
struct usage quota_label_cost(const struct config_pool_label *pl);
/* Why a request needing NEED (servers = its node count) can never fit P (pool
 * or provider limits), or NULL. */
const char *quota_never_fits(struct pool *p, const struct usage *need, char *buf, size_t sz);
/* Why TENANT (tenant-resource-limits) cannot take NEED more, or NULL. */
const char *quota_tenant_check(struct launcher *l, const char *tenant, const struct usage *need, char *buf,
                               size_t sz);
/* The cloud refused for capacity: drop the cached limits, back off (2 s,
 * doubling up to 60 s while the cloud keeps refusing). */
void quota_invalidate(struct launcher_provider *pv);
/* A create succeeded: the capacity back-off starts small again. */
void quota_capacity_ok(struct launcher_provider *pv);
/* True for the errors that mean "the cloud is down or refuses us" (-EHOSTDOWN,
 * -EACCES): nothing was done, pause and retry later, never fail a request for it. */
bool quota_cloud_down_error(int r);
/* PV answered R (quota_cloud_down_error) with MSG: pause its pools (reason
 * logged, in the component and the web app) and back off (1 s doubling to 30 s). */
void quota_cloud_down(struct launcher_provider *pv, int r, const char *msg);
/* PV answered again: clear the down state (pools resume at the next pass). */
void quota_cloud_up(struct launcher_provider *pv);
/* Milliseconds until PV's next probe is due (0 when up or due now). */
uint64_t quota_cloud_retry_in_ms(const struct launcher_provider *pv);

/* ---- request.c ---- */
/* One pass over the cached requests for every pool: decline, accept, fill. */
void requests_pass(struct launcher *l);
/* Release every request and node lock held by handlers (stop or session loss). */
void requests_abort_all(struct launcher *l);
/* A launch for a handler's slot finished: RESULT 0 ready, -EDQUOT aborted, other failed.
 * LOCK (the node's, owned from now on; NULL when already released) goes back to
 * the handler, or is released when the handler is gone. */
void request_slot_done(struct launcher *l, const char *request_id, size_t slot, int result, struct zk_lock *lock);
/* The same for a node that is ready but whose `ready` record (READY, LEN bytes,
 * taken over) is not written yet: the handler writes it in one request with
 * the fulfilment when this was the last slot, else at once; written at once
 * when the handler is gone (while we hold the node, as any write-behind). */
void request_slot_ready(struct launcher *l, const char *request_id, size_t slot, struct zk_lock *lock, char *ready,
                        size_t len);

/* ---- launch.c ---- */
/* The cloud driver's launch (pool_driver.h). Start launching node N (state
 * building, locked by LOCK: both owned now) for POOL in availability zone AZ
 * (NULL: the cloud's choice); on completion request_slot_done(request_id, slot, result) is
 * called if REQUEST_ID is non-NULL. */
void launch_start(struct pool *pool, struct node *n, struct zk_lock *lock, const char *request_id, size_t slot,
                  const char *az);
/* Forget every launch (stop): release their node locks; jobs in flight finish later. */
void launch_abort_all(struct launcher *l);
/* The session ended: launches finish for no request (a handler made for the same
 * request later must not get their results; set_ready sees the lock is gone). */
void launch_forget_requests(struct launcher *l);

/* ---- delete.c ---- */
/* Delete unlocked nodes in deletable states; clear stale allocations. */
void delete_pass(struct launcher *l);
/* Whether the delete pass must look at cached node CN: unlocked and in a deletable
 * state, INIT (an orphan after a while) or READY and allocated (its request may be
 * gone). Kept as an index by the node cache, so a pass costs what it may act on,
 * not the number of nodes. */
bool delete_candidate(const struct cnode *cn);
/* P has no quota left for a waiting request (Nodepool's deleteOldestUnusedNode):
 * mark its oldest unused READY node (any label) `deleting` under the node's
 * lock; the delete pass then frees its quota. One at a time per pool: nothing
 * while the previous one is still in the cache (up to 5 minutes). */
void delete_make_room(struct pool *p);

/* ---- minready.c ---- */
void minready_pass(struct launcher *l);
/* Stop (or session loss): release the min-ready leases, forget our creations. */
void minready_stop(struct launcher *l);
/* The request cache shows request ID (min-ready counts it from there now). */
void minready_request_seen(struct launcher *l, const char *id);

/* ---- owner.c: work shared between launchers ---- */
/* The live pool workers of every launcher now (component registry + our own
 * active pools). Free with owners_free(); NULL ok there. */
struct owners *owners_snapshot(struct launcher *l);
void owners_free(struct owners *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct owners *, owners_free);
/* True when this launcher owns KEY among the live pools serving PROVIDER, named
 * POOL and offering LABEL (each NULL: any) — or when no such pool is known.
 * Alone it only avoids duplicate work: the work must be safe if two launchers
 * both do it (a lock, a lease or a version-checked write). */
bool owners_mine(const struct owners *o, const char *key, const char *provider, const char *pool,
                 const char *label);
/* NPZK_POOLD_LOCKS/KIND/NAME[/SUB], each name one path component. Caller frees. */
char *owners_lock_path(const char *kind, const char *name, const char *sub);
/* "<hostname>-<pid>": the identifier of our poold locks (who holds one). Caller frees. */
char *owners_lock_id(struct launcher *l);
/* Set PV->launch_ok: may PV's pools accept requests and launch new nodes now?
 * One whose driver needs no launch lease (static: it launches nothing) always;
 * otherwise only while this launcher holds the provider's launch lease, taken
 * when we own the provider and let go when we do not. */
void owners_launch_lease_sync(struct launcher_provider *pv, const struct owners *o);
/* Let PV's launch lease go (provider retired, stop). */
void owners_launch_lease_release(struct launcher_provider *pv);
/* True when another launcher's live pool of PROVIDER named POOL is in DECLINED_BY
 * (the one launching for it could not serve the request: neither can we). */
bool owners_declined_by_sibling(const struct owners *o, char *const *declined_by, const char *provider,
                                const char *pool);

/* ---- cleanup.c ---- */
/* The periodic cleanup (lost requests, stale locks, leaks, ages, hold). */
void cleanup_run(struct launcher *l);
/* Stop: deletes in flight are abandoned (freed when their provider call returns). */
void delete_abort_all(struct launcher *l);
/* Stop (or session loss): drop cleanup's ZooKeeper work in flight. */
void cleanup_abort(struct launcher *l);
/* Reset pending requests whose launcher lost them (nobody holds their lock). */
void cleanup_lost_requests(struct launcher *l);

/* ---- reconcile.c: what we believe we hold vs what ZooKeeper has ---- */
/* Run a reconciliation once the caches are synced again (see reconcile.c). */
void reconcile_request(struct launcher *l);
/* From the passes: start the wanted reconciliation when it can run. */
void reconcile_pass(struct launcher *l);
/* Stop or session loss: drop the one in flight. */
void reconcile_abort(struct launcher *l);
