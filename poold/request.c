/* request.c — node request handlers (protocol.md §4.2 _assignHandlers and
 * _waitForNodeSet).
 *
 * DESIGN. A pass runs whenever a cache changed: for each pool, first the
 * handlers it already owns try to fill slots still waiting for quota (the pool
 * is paused while any cannot), then cached requests in §1.4 order are declined
 * (lock, re-read, append our pool id; failed when every registered pool
 * declined) or accepted (lock /nodepool/requests-lock/<id> and write `pending`
 * conditional on the cached version, in one multi request when the lock
 * directory is new). A handler is an explicit state machine: each slot is
 * EMPTY → (READY by reuse | LAUNCHING → READY/FAILED/EMPTY on abort); when no
 * slot is EMPTY or LAUNCHING the handler finishes: fulfilled with nodes in
 * node_types order (one multi request: the launched nodes' `ready` records,
 * the request, our node and request locks released; allocated_to kept), or
 * declined (ready nodes unallocated), or —
 * when the request vanished — its nodes are unallocated and unlocked. A cloud
 * pool accepts and launches only while this launcher holds its provider's
 * launch lease (owner.c); without it, a handler needing a new node gives its
 * request back (`requested` again, our pool id not in declined_by). As
 * Nodepool, a request's nodes share one availability zone (chosen_az): fixed
 * by the first reused node that has one, else by the first launch; a ready
 * node elsewhere is then not reused for it. */
#include <math.h>
#include <string.h>
#include <sys/random.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "stats.h"
#include "zk_lock.h"
#include "zk_update.h"

enum slot_state { SLOT_EMPTY, SLOT_LAUNCHING, SLOT_READY, SLOT_FAILED };

struct slot {
        char *label;
        char *node_id;
        struct zk_lock *lock;
        enum slot_state st;
        char *ready;                    /* the node's `ready` record, not written yet (request_slot_ready) */
        size_t ready_len;
        bool unlock_sent;               /* our contender's delete went with the fulfilment */
};

struct req_handler {
        struct launcher *l;
        struct pool *pool;
        char *id;
        struct zk_lock *lock;
        struct slot *slots;
        size_t n;
        bool min_ready, reuse;
        char *tenant, *requestor;
        /* Nodepool's chosen_az: every node of the request in one zone. Set by the
         * first reused node that has a zone, else by the first launch (from the
         * pool's availability-zones, else the cloud's); NULL while none is chosen. */
        char *chosen_az;
        unsigned launching;
        bool waiting_quota;
        bool finishing;                 /* the final request write is in flight */
        bool finish_fresh;              /* ... based on a fresh read (not the cache) */
        bool give_back;                 /* declined: another launcher launches for the provider now */
        bool finish_retry;              /* its outcome was lost with the connection: read again */
        double created_time;            /* the request's, for the fulfil latency metric */
        bool in_flight;                 /* an async read/write with us as userdata is outstanding */
        char *written;                  /* the fulfilment's bytes, told to the request cache */
        size_t written_len;
        bool final_told;                /* the cache has our final write: its entry stays muted */
        bool ready_sent;                /* the fulfilment carries the slots' `ready` records */
        bool unlock_sent;               /* ... and our request contender's delete */
};

static int unallocate_edit(struct node *n, void *ud) {
        bool *writing = ud;
        model_set_str(&n->allocated_to, NULL);
        *writing = true;
        return ZK_UPDATE_WRITE;
}

/* Blocking (zkrec_node_update): its callers, handler teardown paths, go on
 * at once and take no callback. */
static void node_release(struct launcher *l, char *node_id, struct zk_lock **lock, bool clear_allocation) {
        if (!node_id) return;
        if (clear_allocation && *lock) {
                bool writing = false; /* only the write's failure is worth a warning */
                int r = zkrec_node_update(l, node_id, TAKE_PTR(*lock), unallocate_edit, &writing);
                if (r < 0 && writing) log_warning_errno(r, "node %s: cannot clear allocation: %m", node_id);
        }
        if (*lock) {
                zk_lock_release_async(*lock);
                zk_lock_free(*lock);
                *lock = NULL;
        }
        smap_remove(&l->held, node_id);
}

/* Slot I's `ready` record, if it waits for the fulfilment, written now
 * (through the write-behind queue: before anything else we do to the node). */
static void slot_flush(struct req_handler *h, size_t i) {
        struct slot *s = &h->slots[i];
        if (s->ready) zkrec_node_write_async_data(h->l, s->node_id, TAKE_PTR(s->ready), s->ready_len);
}

static void slots_flush(struct req_handler *h) {
        for (size_t i = 0; i < h->n; i++) slot_flush(h, i);
}

/* Let go of slot I's node (see node_release), its `ready` record written first. */
static void slot_release(struct req_handler *h, size_t i, bool clear_allocation) {
        slot_flush(h, i);
        node_release(h->l, h->slots[i].node_id, &h->slots[i].lock, clear_allocation);
}

static void handler_free(struct req_handler *h) {
        if (!h) return;
        /* zk_cancel() walks every outstanding call: only when one of ours is. */
        if (h->in_flight) zk_cancel(h->l->zk, h);
        for (size_t i = 0; i < h->n; i++) {
                if (h->slots[i].lock) slot_release(h, i, false);
                free(h->slots[i].ready);
                free(h->slots[i].label);
                free(h->slots[i].node_id);
        }
        free(h->slots);
        if (h->lock) {
                zk_lock_release_async(h->lock);
                zk_lock_free(h->lock);
        }
        free(h->id);
        free(h->tenant);
        free(h->requestor);
        free(h->chosen_az);
        free(h->written);
        free(h);
}

/* The request cache reads the request again (and watches it) unless it has
 * our final write: muted while we held the request lock (accept_edit). */
static void request_unmute(struct launcher *l, const char *id) {
        _cleanup_free_ char *path = npzk_request_path(id);
        zk_cache_unmute(l->request_cache, path);
}

static void handler_remove(struct req_handler *h) {
        if (!h->final_told) request_unmute(h->l, h->id);
        smap_remove(&h->l->handlers, h->id);
        handler_free(h);
}

/* Declining: (lock,) read, append our pool id to declined_by (failed when every
 * registered pool declined), write with the read version, unlock — one
 * asynchronous zk_update. The op owns the request lock (taken over from a
 * handler or an accept, or acquired here) and sits in l->declining so the
 * passes leave the request alone meanwhile. */
struct decline_op {
        struct launcher *l;
        struct pool *pool;
        char *id, *why;
        struct zk_update *upd;
        bool only_requested;            /* not ours yet: skip unless still requested */
        bool give_back;                 /* back to requested without our pool id in declined_by */
};

static void decline_free(struct decline_op *op) {
        zk_update_free(op->upd);
        free(op->id);
        free(op->why);
        free(op);
}

static void decline_end(struct decline_op *op) {
        struct launcher *l = op->l;
        if (smap_get(&l->declining, op->id) == op) smap_remove(&l->declining, op->id);
        decline_free(op);
        launcher_kick(l);
}

static void on_declined(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct decline_op *op = ud;
        if (at == ZK_UPDATE_STEP_READ && r == -ENOENT) log_info("request %s vanished before its decline", op->id);
        if (at == ZK_UPDATE_STEP_WRITE && r < 0) log_warning_errno(r, "request %s: cannot write decline: %m", op->id);
        decline_end(op);
}

static int decline_edit(struct zk_update_record *rec, void *ud) {
        struct decline_op *op = ud;
        struct launcher *l = op->l;
        struct pool *p = op->pool;
        _cleanup_(node_request_freep) struct node_request *rq = NULL;
        struct model_error err;
        if (node_request_from_json(rec->data, rec->len, op->id, &rq, &err) < 0) return -EBADMSG;
        if (op->only_requested &&
            (rq->state != NODE_REQUEST_STATE_REQUESTED || model_strv_contains(rq->declined_by, p->id)))
                return -ECANCELED;
        if (!op->give_back && !model_strv_contains(rq->declined_by, p->id)) model_strv_push(&rq->declined_by, p->id);
        bool all = !op->give_back && pools_all_declined(l, rq->declined_by);
        node_request_set_state(rq, all ? NODE_REQUEST_STATE_FAILED : NODE_REQUEST_STATE_REQUESTED);
        int r = node_request_to_json(rq, &rec->new_data, &rec->new_len);
        if (r < 0) return r;
        /* Logged and counted now: the write is conditional and rarely fails (we hold the lock). */
        if (all) stats_request_done(l, rq->state, rq->created_time);
        log_info("pool %s %s request %s (%s)%s", p->id, op->give_back ? "gave back" : "declined", op->id, op->why,
                 all ? "; request failed" : "");
        return ZK_UPDATE_WRITE;
}

/* Decline request ID for pool P because of WHY. LOCK: the request lock we hold
 * (owned now), or NULL to take it first (then only a still-requested request is declined). */
static void decline_start(struct pool *p, const char *id, const char *why, struct zk_lock *lock) {
        struct launcher *l = p->l;
        if (smap_get(&l->declining, id)) {
                zk_lock_free(lock); /* released */
                return;
        }
        struct decline_op *op = xnew(struct decline_op, 1);
        op->l = l;
        op->pool = p;
        op->id = xstrdup(id);
        op->why = xstrdup(why);
        op->only_requested = !lock;
        smap_put(&l->declining, id, op);
        _cleanup_free_ char *path = npzk_request_path(id), *lpath = npzk_request_lock_path(id);
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .lock = lock, .edit = decline_edit, .done = on_declined,
                .userdata = op,
        };
        if (zk_update_start(l->zk, &spec, &op->upd) < 0) decline_end(op);
}

/* What RQ costs in pool P (labels P lacks cost nothing but count as nodes). */
static struct usage request_cost(struct pool *p, char *const *types) {
        struct usage need = {};
        for (char *const *t = types; *t; t++) {
                const struct config_pool_label *pl = pool_find_label(p, *t);
                struct usage c = pl ? quota_label_cost(pl) : (struct usage){ .servers = 1 };
                need.servers++;
                need.cores += c.cores;
                need.ram += c.ram;
                need.volumes += c.volumes;
                need.volume_gb += c.volume_gb;
        }
        return need;
}

/* Why POOL can never serve RQ, or NULL. Returns a static string or BUF. */
static const char *decline_reason(struct pool *p, const struct node_request *rq, char *buf, size_t sz) {
        const struct config_pool *cp = p->cpool;
        if (cp->max_servers == 0) return "pool is disabled (max-servers ≤ 0)";
        return p->prov->drv->never_fits(p, rq, buf, sz);
}

/* Reusing a ready node for a handler's slot: a zk_update (lock → read → write
 * allocated_to, version-checked; the lock kept) → the slot gets the node through
 * request_slot_done() (a static node after its liveness check). Asynchronous like
 * a launch: the slot is LAUNCHING meanwhile and the node in `held`, so no other
 * slot picks it. A node that turns out taken makes the slot EMPTY again (another
 * candidate next pass). */
struct reuse_op {
        struct launcher *l;
        struct pool *pool;
        char *request_id, *node_id;
        size_t slot;
        struct zk_update *upd;
        char *tenant, *requestor;
};

static void reuse_free(struct reuse_op *op) {
        zk_update_free(op->upd);
        free(op->request_id);
        free(op->node_id);
        free(op->tenant);
        free(op->requestor);
        free(op);
}

/* Done with OP: R 0 (LOCK, owned, handed on) or -EAGAIN (the slot tries again; LOCK released). */
static void reuse_end(struct reuse_op *op, int r, struct zk_lock *lock) {
        struct launcher *l = op->l;
        smap_remove(&l->reusing, op->node_id);
        caches_ready_update(l, op->node_id);
        _cleanup_free_ char *rid = TAKE_PTR(op->request_id), *nid = TAKE_PTR(op->node_id);
        if (r < 0) zk_lock_free(TAKE_PTR(lock));
        struct pool *p = op->pool;
        size_t slot = op->slot;
        reuse_free(op);
        struct req_handler *h = smap_get(&l->handlers, rid);
        /* No slot will own it: not ours to guard any more (the delete pass unallocates it). */
        if (r < 0 || !h) smap_remove(&l->held, nid);
        if (r == 0) {
                log_info("request %s: reusing ready node %s", rid, nid);
                /* The driver may check it first (static: liveness); the check reports through request_slot_done(). */
                if (h && p->prov->drv->check_ready && p->prov->drv->check_ready(p, nid, lock, rid, slot) > 0) return;
        }
        request_slot_done(l, rid, slot, r, lock);
}

/* Under the node's lock, from the cached record (no read): the write is
 * conditional on the cached version, so a record the cache is behind on fails
 * with -ESTALE and the node is skipped this time. */
static int reuse_edit(struct zk_update_record *rec, void *ud) {
        struct reuse_op *op = ud;
        _cleanup_(node_freep) struct node *n = NULL;
        struct model_error err;
        const struct zk_cache_node *zn = zk_cache_get(op->l->node_cache, rec->path);
        if (!zn) return -EAGAIN;
        rec->version = zn->version;
        if (node_from_json(zn->data, zn->len, op->node_id, &n, &err) < 0 || n->state != NODE_STATE_READY ||
            n->allocated_to)
                return -EAGAIN;
        model_set_str(&n->allocated_to, op->request_id);
        model_set_str(&n->tenant_name, op->tenant);
        model_set_str(&n->requestor, op->requestor);
        return node_to_json(n, &rec->new_data, &rec->new_len) < 0 ? -EAGAIN : ZK_UPDATE_WRITE;
}

static void on_reused(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct reuse_op *op = ud;
        /* Someone else holds it: skip it until the cache says otherwise. */
        if (at == ZK_UPDATE_STEP_LOCK && r == -EBUSY) caches_node_mark_locked(op->l, op->node_id);
        reuse_end(op, r > 0 ? 0 : -EAGAIN, lock);
}

/* Start reusing a ready node for slot I: 1 started (slot LAUNCHING), 0 none available. */
static int try_reuse(struct req_handler *h, size_t i) {
        struct launcher *l = h->l;
        const char *found =
                caches_ready_find(l, h->pool->provider_name, h->pool->name, h->slots[i].label, h->chosen_az);
        if (!found) return 0;
        /* Chosen now, not once locked: the other slots of this pass must follow it
         * (Nodepool locks synchronously). A reuse that fails keeps the zone. */
        const struct cnode *cn = smap_get(&l->nodes, found);
        if (!h->chosen_az && cn && cn->node->az) h->chosen_az = xstrdup(cn->node->az);
        struct reuse_op *op = xnew(struct reuse_op, 1);
        op->l = l;
        op->pool = h->pool;
        op->request_id = xstrdup(h->id);
        op->node_id = xstrdup(found);
        op->slot = i;
        op->tenant = xstrdup(h->tenant);
        op->requestor = xstrdup(h->requestor);
        _cleanup_free_ char *path = npzk_node_path(op->node_id), *lpath = npzk_node_lock_path(op->node_id);
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .flags = ZK_UPDATE_KEEP_LOCK | ZK_UPDATE_NO_READ,
                .edit = reuse_edit, .done = on_reused, .userdata = op,
        };
        if (zk_update_start(l->zk, &spec, &op->upd) < 0) {
                reuse_free(op);
                return 0;
        }
        smap_put(&l->reusing, op->node_id, op);
        smap_put(&l->held, op->node_id, (void *)1);
        caches_ready_update(l, op->node_id); /* not a candidate while ours */
        h->slots[i].node_id = xstrdup(op->node_id);
        h->slots[i].st = SLOT_LAUNCHING;
        h->launching++;
        return 1;
}

/* A node znode being created for a handler's slot: create (init) → a zk_update
 * taking its lock and writing `building` (not waited for) → launch_start().
 * Asynchronous, so a burst of requests does not wait for these round trips one
 * after another. Usage is reserved at once so
 * the quota sees the node before the cache does. */
struct create_op {
        struct launcher *l;
        struct pool *pool;
        char *request_id;
        size_t slot;
        char *az;                       /* the request's chosen zone when it started */
        struct node *n;
        struct zk_update *upd;          /* lock + `building` */
        struct usage cost;              /* no .other: labels of ours cost none */
        bool reserved;
        bool in_flight;                 /* the acreate with us as userdata is outstanding */
        struct create_op *prev, *next;
};

static void create_unreserve(struct create_op *op) {
        if (!op->reserved) return;
        op->reserved = false;
        caches_usage_reserve(op->l, op->pool->provider_name, op->pool->name, op->n->tenant_name, &op->cost, -1);
}

static void create_free(struct create_op *op) {
        struct launcher *l = op->l;
        if (op->prev) op->prev->next = op->next;
        else if (l->creates == op) l->creates = op->next;
        if (op->next) op->next->prev = op->prev;
        if (op->in_flight) zk_cancel(l->zk, op);
        create_unreserve(op);
        zk_update_free(op->upd);
        node_free(op->n);
        free(op->request_id);
        free(op->az);
        free(op);
}

/* The creation failed with R: the handler's slot fails. */
static void create_failed(struct create_op *op, int r, const char *what) {
        struct launcher *l = op->l;
        log_error_errno(r, "request %s: %s: %m", op->request_id, what);
        _cleanup_free_ char *rid = xstrdup(op->request_id);
        size_t slot = op->slot;
        create_free(op);
        request_slot_done(l, rid, slot, r, NULL);
}

/* `building`, written in the lock's multi (ZK_UPDATE_EDIT_FIRST): the lock
 * and the state Nodepool writes under it cost one request. */
static int create_edit(struct zk_update_record *rec, void *ud) {
        struct create_op *op = ud;
        node_set_state(op->n, NODE_STATE_BUILDING);
        int r = node_to_json(op->n, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

/* Locked and `building` sent: launch. LOCK owned. */
static void node_building(struct create_op *op, struct zk_lock *lock) {
        if (op->pool->retired || !op->pool->cpool) {
                zk_lock_free(lock);
                create_failed(op, -ECANCELED, "pool retired before the launch");
                return;
        }
        struct pool *p = op->pool;
        struct node *n = TAKE_PTR(op->n);
        _cleanup_free_ char *rid = xstrdup(op->request_id), *az = TAKE_PTR(op->az);
        size_t slot = op->slot;
        create_free(op);
        p->prov->drv->launch(p, n, lock, rid, slot, az);
}

static void on_orphan_deleted(struct zk *zk, const struct zk_result *res, void *ud) {
        if (res->r < 0 && res->r != -ENOENT)
                log_warning_errno(res->r, "cannot delete %s (left for the cleanup): %m", res->path);
}

/* Locking the node we just created failed with an error: nothing else knows of
 * it, so its `init` znode and lock directory go (a contender of someone else's
 * makes both deletes fail with -ENOTEMPTY, and the node is theirs to handle). */
static void create_delete_orphan(struct create_op *op) {
        struct launcher *l = op->l;
        _cleanup_free_ char *lpath = npzk_node_lock_path(op->n->id), *path = npzk_node_path(op->n->id);
        (void)zk_adelete(l->zk, lpath, -1, NULL, NULL);
        (void)zk_adelete(l->zk, path, -1, on_orphan_deleted, NULL);
        smap_remove(&l->held, op->n->id);
        log_info("node %s: deleted after its lock failed", op->n->id);
}

static void on_node_locked(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct create_op *op = ud;
        if (r < 0 && lock) {
                /* Locked (the directory existed), but `building` written after it
                 * failed: the write-behind queue sends it (again after a reconnect),
                 * as for any later write of ours; the launch goes on. */
                log_debug_errno(r, "node %s: `building` not written with the lock: %m", op->n->id);
                zkrec_node_write_async(op->l, op->n);
                r = 0;
        }
        if (r < 0) {
                /* Busy: someone else locked our new node; it is theirs now. */
                if (r != -EBUSY) create_delete_orphan(op);
                create_failed(op, r, "cannot lock the node we created");
                return;
        }
        node_building(op, lock);
}

static void on_node_created(struct zk *zk, const struct zk_result *res, void *ud) {
        struct create_op *op = ud;
        struct launcher *l = op->l;
        op->in_flight = false;
        if (res->r < 0) {
                create_failed(op, res->r, "cannot create a node");
                return;
        }
        const char *id = strrchr(res->created_path, '/') + 1;
        model_set_str(&op->n->id, id);
        /* Counted by the cache entry from now on: a copy of what we wrote, unless the
         * cache has seen it already (its lock count is the cache's to keep: `held`
         * guards the node until the lock shows). */
        create_unreserve(op);
        if (!smap_get(&l->nodes, id)) {
                struct node *cached = node_new(id);
                cached->state = NODE_STATE_INIT;
                model_set_str(&cached->provider, op->n->provider);
                model_set_str(&cached->pool, op->n->pool);
                model_set_str(&cached->allocated_to, op->n->allocated_to);
                model_set_str(&cached->tenant_name, op->n->tenant_name);
                model_strv_push(&cached->type, op->n->type[0]);
                caches_node_store(l, id, cached, 0);
        }
        smap_put(&l->held, id, (void *)1);
        struct req_handler *h = smap_get(&l->handlers, op->request_id);
        if (h && op->slot < h->n && h->slots[op->slot].st == SLOT_LAUNCHING && !h->slots[op->slot].node_id)
                h->slots[op->slot].node_id = xstrdup(id);
        log_info("request %s: launching node %s (%s) in pool %s%s%s", op->request_id, id, op->n->type[0],
                 op->pool->id, op->az ? ", availability zone " : "", op->az ? op->az : "");
        /* The lock directory is made with our contender (one multi request, sent
         * now, before anything else): the node cache can only ask about this node
         * after this callback, and ZooKeeper answers a session in order, so the
         * cache lists the directory at once (no ENOENT, exists, list again). */
        _cleanup_free_ char *lpath = npzk_node_lock_path(id), *path = npzk_node_path(id);
        /* No read: we just created the record, and nothing else writes a node it cannot lock. */
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath,
                .flags = ZK_UPDATE_KEEP_LOCK | ZK_UPDATE_NO_READ | ZK_UPDATE_FRESH_LOCK | ZK_UPDATE_EDIT_FIRST,
                .edit = create_edit, .done = on_node_locked, .userdata = op,
        };
        int r = zk_update_start(l->zk, &spec, &op->upd);
        if (r < 0) {
                create_delete_orphan(op);
                create_failed(op, r, "cannot lock the node we created");
        }
}

/* Nodepool's setNodeMetadata: with no zone chosen yet, one at random from the
 * pool's availability-zones, else from the cloud's; none when the cloud has
 * none (it places the server, and says where). */
static void choose_az(struct req_handler *h) {
        if (h->chosen_az) return;
        const struct config_strv *pz = &h->pool->cpool->availability_zones;
        const struct launcher_provider *pv = h->pool->prov;
        char *const *v = pz->n ? pz->items : pv->azs;
        size_t n = pz->n ? pz->n : pv->n_azs;
        if (n == 0) return;
        unsigned rnd = 0;
        if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (unsigned)loop_now_ms();
        h->chosen_az = xstrdup(v[rnd % n]);
}

/* Start creating a node for slot I (init, allocated). 0 or -errno. */
static int launch_new_node(struct req_handler *h, size_t i) {
        struct launcher *l = h->l;
        struct pool *p = h->pool;
        choose_az(h);
        _cleanup_(node_freep) struct node *n = node_new(NULL);
        n->state = NODE_STATE_INIT;
        n->state_time = n->created_time = model_now();
        model_set_str(&n->provider, p->provider_name);
        model_set_str(&n->pool, p->name);
        model_strv_push(&n->type, h->slots[i].label);
        model_set_str(&n->allocated_to, h->id);
        model_set_str(&n->launcher, p->id);
        model_set_str(&n->tenant_name, h->tenant);
        model_set_str(&n->requestor, h->requestor);
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = node_to_json(n, &data, &len);
        if (r < 0) return r;
        const struct config_pool_label *pl = pool_find_label(p, h->slots[i].label);
        struct create_op *op = xnew(struct create_op, 1);
        op->l = l;
        op->pool = p;
        op->request_id = xstrdup(h->id);
        op->slot = i;
        op->az = h->chosen_az ? xstrdup(h->chosen_az) : NULL;
        op->n = TAKE_PTR(n);
        op->cost = pl ? quota_label_cost(pl) : (struct usage){ .servers = 1 };
        op->reserved = true;
        caches_usage_reserve(l, p->provider_name, p->name, op->n->tenant_name, &op->cost, 1);
        op->next = l->creates;
        if (l->creates) l->creates->prev = op;
        l->creates = op;
        h->slots[i].st = SLOT_LAUNCHING;
        h->launching++;
        op->in_flight = true;
        (void)zk_acreate(l->zk, NPZK_NODES "/", data, len, ZK_SEQUENCE | ZK_MAKEPATH, on_node_created, op);
        return 0;
}

static void handler_finish(struct req_handler *h);

static void fail_empty_slots(struct req_handler *h) {
        for (size_t k = 0; k < h->n; k++)
                if (h->slots[k].st == SLOT_EMPTY) h->slots[k].st = SLOT_FAILED;
}

/* Fill empty slots. Returns false when waiting for quota. */
static bool handler_fill(struct req_handler *h) {
        bool was_waiting = h->waiting_quota;
        h->waiting_quota = false;
        char buf[256];
        if (!h->pool->prov->drv->launch) {
                /* Registered nodes only (static): wait for a free one (the pool does not pause). */
                for (size_t i = 0; i < h->n; i++) {
                        if (h->slots[i].st != SLOT_EMPTY || try_reuse(h, i) > 0) continue;
                        if (!pool_has_label(h->pool, h->slots[i].label)) {
                                fail_empty_slots(h);
                                return true;
                        }
                        if (!was_waiting) log_info("request %s waits for a free static %s node", h->id,
                                                   h->slots[i].label);
                        h->waiting_quota = true;
                        return false;
                }
                return true;
        }
        /* The provider's quota may have become known since the request was accepted. */
        for (size_t i = 0; i < h->n; i++) {
                if (h->slots[i].st != SLOT_EMPTY) continue;
                char **types = xnew(char *, h->n + 1);
                for (size_t k = 0; k < h->n; k++) types[k] = h->slots[k].label;
                struct usage need = request_cost(h->pool, types);
                free(types);
                const char *never = quota_never_fits(h->pool, &need, buf, sizeof buf);
                if (never) {
                        log_info("request %s: %s, declining", h->id, never);
                        fail_empty_slots(h);
                        return true;
                }
                break;
        }
        for (size_t i = 0; i < h->n; i++) {
                if (h->slots[i].st != SLOT_EMPTY) continue;
                if (h->reuse && try_reuse(h, i) > 0) continue;
                if (!h->pool->prov->launch_ok) {
                        /* Only the launch lease holder launches (owner.c): give the request back. */
                        h->give_back = true;
                        fail_empty_slots(h);
                        return true;
                }
                const struct config_pool_label *pl = pool_find_label(h->pool, h->slots[i].label);
                const char *why = "label removed from pool";
                enum quota_verdict v = pl ? quota_check(h->pool, pl, buf, sizeof buf, &why) : QUOTA_WAIT;
                if (v != QUOTA_FITS) {
                        if (h->min_ready || !pl) {
                                /* min-ready requests never wait for quota. */
                                for (size_t k = 0; k < h->n; k++) h->slots[k].st =
                                        h->slots[k].st == SLOT_EMPTY ? SLOT_FAILED : h->slots[k].st;
                                log_info("request %s: %s, declining (min-ready)", h->id, why);
                                return true;
                        }
                        h->waiting_quota = true;
                        /* As Nodepool: an idle ready node (of another label, or it
                         * would have been reused) must not keep this request waiting. */
                        if (v == QUOTA_USAGE) delete_make_room(h->pool);
                        pool_set_paused(h->pool, true, why);
                        if (!was_waiting) log_info("request %s waits: pool %s %s", h->id, h->pool->id, why);
                        return false;
                }
                if (launch_new_node(h, i) < 0) h->slots[i].st = SLOT_FAILED;
        }
        return true;
}

static bool handler_done(const struct req_handler *h) {
        if (h->launching) return false;
        for (size_t i = 0; i < h->n; i++)
                if (h->slots[i].st == SLOT_EMPTY || h->slots[i].st == SLOT_LAUNCHING) return false;
        return true;
}

static void on_finish_read(struct zk *zk, const struct zk_result *res, void *ud);

/* The fulfilment's write or read met R: when the answer was lost with the
 * connection while our request lock lives, its outcome is unknown — the
 * request is read again once reconnected (requests_pass) and fulfilled then,
 * or found fulfilled already. True when so deferred. */
static bool finish_later(struct req_handler *h, int r) {
        if (r != -ECONNRESET && r != -ETIMEDOUT && r != -EAGAIN) return false;
        if (!h->lock || !zk_lock_is_held(h->lock)) return false;
        log_info("request %s: fulfilment not confirmed (%s); looking again after the reconnect", h->id,
                 strerror(-r));
        h->finish_retry = true;
        h->finish_fresh = true;
        return true;
}

static void on_fulfilled_written(struct zk *zk, const struct zk_result *res, void *ud) {
        struct req_handler *h = ud;
        struct launcher *l = h->l;
        /* res->path is the first operation's: a node's when `ready` records went along. */
        _cleanup_free_ char *path = npzk_request_path(h->id);
        h->in_flight = false;
        /* Not written (all or nothing): the `ready` records go on their own, first;
         * our contenders stay (released the usual way). Written: they are gone. */
        if (res->r < 0 && h->ready_sent) slots_flush(h);
        for (size_t i = 0; i < h->n; i++) {
                if (res->r == 0 && h->slots[i].unlock_sent && h->slots[i].lock) zk_lock_forget(h->slots[i].lock);
                h->slots[i].unlock_sent = false;
        }
        if (res->r == 0 && h->unlock_sent && h->lock) zk_lock_forget(h->lock);
        h->ready_sent = h->unlock_sent = false;
        if (res->r == -ESTALE && !h->finish_fresh) {
                /* The cached version was behind: read the request and write again. */
                h->finish_fresh = true;
                h->in_flight = true;
                (void)zk_aget(l->zk, path, NULL, on_finish_read, h);
                return;
        }
        if (res->r < 0) {
                if (finish_later(h, res->r)) return;
                /* With the session gone, so are our node locks: their allocations are
                 * not ours to clear (the lost-request reset does it if need be). */
                bool ours = res->r != -EKEYEXPIRED && zk_lock_is_held(h->lock);
                log_warning_errno(res->r, "request %s: cannot write fulfilled: %m", h->id);
                for (size_t i = 0; i < h->n; i++) slot_release(h, i, ours);
        } else {
                /* Final: nobody writes it again (Zuul deletes it), so it stays unwatched. */
                if (res->stat && h->written &&
                    zk_cache_apply(l->request_cache, path, h->written, h->written_len, res->stat) >= 0)
                        h->final_told = true;
                log_info("request %s fulfilled by pool %s", h->id, h->pool->id);
                stats_request_done(l, NODE_REQUEST_STATE_FULFILLED, h->created_time);
                /* A min-ready request is ours and done once fulfilled: its node is free for
                 * any request now, not only after min-ready's next pass deletes the request
                 * (up to a second during which a Zuul request would boot a new node). */
                for (size_t i = 0; i < h->n; i++) {
                        free(h->slots[i].ready); /* written with the fulfilment */
                        h->slots[i].ready = NULL;
                        node_release(l, h->slots[i].node_id, &h->slots[i].lock, h->min_ready);
                }
                if (h->min_ready) (void)zk_adelete(l->zk, path, -1, NULL, NULL);
        }
        handler_remove(h);
}

/* RQ (fulfilled) lists exactly our slots' nodes, in order. */
static bool fulfilled_by_us(const struct req_handler *h, const struct node_request *rq) {
        if (model_strv_length(rq->nodes) != h->n) return false;
        for (size_t i = 0; i < h->n; i++)
                if (!h->slots[i].node_id || strcmp(rq->nodes[i], h->slots[i].node_id) != 0) return false;
        return true;
}

/* Our contender in LOCK, as a delete for the fulfilment's multi (its path in
 * *PATH, owned), when held; false otherwise. */
static bool contender_delete(struct zk_lock *lock, char **path, struct zk_multi_op *op) {
        if (!lock || !zk_lock_is_held(lock) || !zk_lock_node(lock)) return false;
        *path = xasprintf("%s/%s", zk_lock_path(lock), zk_lock_node(lock));
        *op = (struct zk_multi_op){ .kind = ZK_MULTI_DELETE, .path = *path, .version = -1 };
        return true;
}

/* The fulfilment as one request: the `ready` records left to us, the request
 * (the last set: the answer's stat is the request's), then the deletes of our
 * contenders on the nodes and the request — Nodepool unlocks both once it has
 * fulfilled (a min-ready request keeps its nodes' locks: their allocation is
 * cleared under them). All or nothing; on_fulfilled_written sorts it out. */
static void send_fulfilment(struct req_handler *h, const char *path, const char *data, size_t len, int32_t version) {
        struct launcher *l = h->l;
        struct zk_multi_op ops[64];
        char *paths[64] = { NULL };
        size_t n = 0;
        bool fits = 2 * h->n + 2 <= ELEMENTSOF(ops);
        if (!fits) slots_flush(h); /* over a multi's limit: the parts one by one */
        for (size_t i = 0; fits && i < h->n; i++)
                if (h->slots[i].ready) {
                        paths[n] = npzk_node_path(h->slots[i].node_id);
                        ops[n] = (struct zk_multi_op){ .kind = ZK_MULTI_SET, .path = paths[n], .data = h->slots[i].ready,
                                                       .len = h->slots[i].ready_len, .version = -1 };
                        n++;
                }
        h->ready_sent = n > 0;
        ops[n++] = (struct zk_multi_op){ .kind = ZK_MULTI_SET, .path = path, .data = data, .len = len,
                                         .version = version };
        for (size_t i = 0; fits && !h->min_ready && i < h->n; i++)
                if ((h->slots[i].unlock_sent = contender_delete(h->slots[i].lock, &paths[n], &ops[n]))) n++;
        h->unlock_sent = fits && contender_delete(h->lock, &paths[n], &ops[n]);
        if (h->unlock_sent) n++;
        int r = n > 1 ? zk_amulti(l->zk, ops, n, on_fulfilled_written, h) : -EINVAL;
        if (r < 0) {
                if (n > 1) slots_flush(h);
                h->ready_sent = h->unlock_sent = false;
                for (size_t i = 0; i < h->n; i++) h->slots[i].unlock_sent = false;
                (void)zk_aset(l->zk, path, data, len, version, on_fulfilled_written, h);
        }
        for (size_t i = 0; i < n; i++) free(paths[i]);
}

static void on_finish_read(struct zk *zk, const struct zk_result *res, void *ud) {
        struct req_handler *h = ud;
        struct launcher *l = h->l;
        h->in_flight = false;
        _cleanup_(node_request_freep) struct node_request *rq = NULL;
        struct model_error err;
        int r = res->r;
        if (r < 0 && finish_later(h, r)) return;
        if (r >= 0 && node_request_from_json(res->data, res->len, h->id, &rq, &err) < 0) r = -EBADMSG;
        if (r < 0) {
                log_info("request %s vanished while pending: unallocating its nodes", h->id);
                for (size_t i = 0; i < h->n; i++)
                        slot_release(h, i, h->slots[i].st == SLOT_READY);
                handler_remove(h);
                return;
        }
        h->created_time = rq->created_time;
        if (rq->state == NODE_REQUEST_STATE_FULFILLED && fulfilled_by_us(h, rq)) {
                /* Our write landed; only its answer was lost. */
                struct zk_result done = { .r = 0, .path = res->path };
                on_fulfilled_written(zk, &done, h);
                return;
        }
        model_strv_free(rq->nodes);
        rq->nodes = model_strv_new();
        for (size_t i = 0; i < h->n; i++) model_strv_push(&rq->nodes, h->slots[i].node_id);
        node_request_set_state(rq, NODE_REQUEST_STATE_FULFILLED);
        _cleanup_free_ char *data = NULL;
        size_t len;
        r = node_request_to_json(rq, &data, &len);
        if (r < 0) {
                struct zk_result fake = { .r = r };
                on_fulfilled_written(zk, &fake, h);
                return;
        }
        /* Our node writes were issued earlier on the same session, or go in the
         * same multi request (the `ready` records left to us): ZooKeeper applies
         * them first, so Zuul never sees a fulfilled request with a node that
         * is not ready yet. */
        h->in_flight = true;
        (void)zk_cache_mute(l->request_cache, res->path); /* still ours: told on success */
        send_fulfilment(h, res->path, data, len, res->stat->version);
        free(h->written);
        h->written = TAKE_PTR(data);
        h->written_len = len;
}

/* Fulfil (read, then write with its version: asynchronous) or decline. */
static void handler_finish(struct req_handler *h) {
        struct launcher *l = h->l;
        if (h->finishing) return;
        bool failed = false;
        for (size_t i = 0; i < h->n; i++) failed |= h->slots[i].st == SLOT_FAILED;
        if (failed) {
                for (size_t i = 0; i < h->n; i++)
                        slot_release(h, i, h->slots[i].st == SLOT_READY);
                decline_start(h->pool, h->id, h->give_back ? "another launcher launches for this provider now"
                                                           : "a launch failed", TAKE_PTR(h->lock));
                struct decline_op *op = smap_get(&l->declining, h->id);
                /* Not declined: it may come back to this pool when it launches again. */
                if (op && h->give_back && !op->only_requested) op->give_back = true;
                handler_remove(h);
                return;
        }
        h->finishing = true;
        _cleanup_free_ char *path = npzk_request_path(h->id);
        const struct creq *cr = smap_get(&l->requests, h->id);
        _cleanup_free_ char *data = NULL;
        size_t len;
        if (cr && cr->req->state == NODE_REQUEST_STATE_PENDING && node_request_to_json(cr->req, &data, &len) >= 0) {
                /* Usually the cache has our `pending` write by now: skip the read. */
                struct zk_stat st = { .version = cr->version };
                struct zk_result res = { .r = 0, .path = path, .data = data, .len = len, .stat = &st };
                on_finish_read(l->zk, &res, h);
                return;
        }
        h->finish_fresh = true;
        h->in_flight = true;
        (void)zk_aget(l->zk, path, NULL, on_finish_read, h);
}

/* The node id in a node lock path (NPZK_NODE_LOCK), or NULL. */
static char *node_id_of_lock(const char *path) {
        struct npzk_path p;
        if (npzk_path_parse(path, &p) < 0) return NULL;
        char *id = p.kind == NPZK_NODE_LOCK ? TAKE_PTR(p.id) : NULL;
        npzk_path_done(&p);
        return id;
}

void request_slot_ready(struct launcher *l, const char *request_id, size_t slot, struct zk_lock *lock, char *ready,
                        size_t len) {
        struct req_handler *h = request_id ? smap_get(&l->handlers, request_id) : NULL;
        if (!h || slot >= h->n || h->slots[slot].st != SLOT_LAUNCHING || !h->slots[slot].node_id) {
                /* No handler to write it with: now, before the lock goes. */
                _cleanup_free_ char *id = lock ? node_id_of_lock(zk_lock_path(lock)) : NULL;
                if (id) zkrec_node_write_async_data(l, id, ready, len);
                else free(ready);
                request_slot_done(l, request_id, slot, 0, lock);
                return;
        }
        request_slot_done(l, request_id, slot, 0, lock);
        struct slot *s = &h->slots[slot];
        free(s->ready);
        s->ready = ready;
        s->ready_len = len;
        /* Other slots still launching: no reason to hold it back. */
        if (!handler_done(h)) slot_flush(h, slot);
}

void request_slot_done(struct launcher *l, const char *request_id, size_t slot, int result, struct zk_lock *lock) {
        struct req_handler *h = request_id ? smap_get(&l->handlers, request_id) : NULL;
        if (!h || slot >= h->n || h->slots[slot].st != SLOT_LAUNCHING) {
                if (lock) {
                        /* Nobody takes the node (its handler went, e.g. with the session):
                         * unguarded, the passes may pick it up again. */
                        _cleanup_free_ char *id = node_id_of_lock(zk_lock_path(lock));
                        if (id) smap_remove(&l->held, id);
                        zk_lock_release_async(lock);
                        zk_lock_free(lock);
                }
                return;
        }
        struct slot *s = &h->slots[slot];
        h->launching--;
        if (result == 0) {
                s->st = SLOT_READY;
                s->lock = lock;
        } else {
                if (lock) {
                        zk_lock_release_async(lock);
                        zk_lock_free(lock);
                }
                if (s->node_id) smap_remove(&l->held, s->node_id);
                free(s->node_id);
                s->node_id = NULL;
                /* Aborted (quota) or a static node that failed its liveness check:
                 * try again with another node, not counted as a failure. */
                s->st = result == -EDQUOT || result == -EAGAIN ? SLOT_EMPTY : SLOT_FAILED;
        }
        launcher_kick(l);
}

/* Accepting a request: a zk_update (the cached record, then lock and write
 * `pending` in one multi; the lock kept) — asynchronous, so the round trips of many requests overlap.
 * The op is in l->accepting meanwhile (the passes skip that request) and
 * becomes a handler at the end. */
struct accept_op {
        struct launcher *l;
        struct pool *pool;
        char *id;
        struct zk_update *upd;
        struct node_request *rq;
        char *why;                      /* a reason to decline found under the lock */
        char *written;                  /* `pending` as written, told to the request cache */
        size_t written_len;
};

static void accept_free(struct accept_op *op) {
        zk_update_free(op->upd);
        free(op->written);
        node_request_free(op->rq);
        free(op->id);
        free(op->why);
        free(op);
}

/* Done with OP (accepted or not): out of the accepting map, freed. */
static void accept_end(struct accept_op *op) {
        smap_remove(&op->l->accepting, op->id);
        accept_free(op);
}

static void on_accepted(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct accept_op *op = ud;
        _cleanup_(zk_lock_freep) struct zk_lock *held = lock;
        struct launcher *l = op->l;
        struct pool *p = op->pool;
        if (r == 0) {
                decline_start(p, op->id, op->why, TAKE_PTR(held));
                accept_end(op);
                return;
        }
        if (r < 0) {
                if (at == ZK_UPDATE_STEP_WRITE) {
                        if (r == -ESTALE) log_debug("request %s changed meanwhile; looking again", op->id);
                        else log_warning_errno(r, "request %s: cannot set pending: %m", op->id);
                }
                request_unmute(l, op->id); /* not written: what the cache skipped is someone else's */
                accept_end(op);
                if (at == ZK_UPDATE_STEP_WRITE) launcher_kick(l);
                return;
        }
        /* `pending` as written: the request cache is told, not made to read it back. */
        _cleanup_free_ char *path = npzk_request_path(op->id);
        if (zk_cache_apply(l->request_cache, path, op->written, op->written_len, zk_update_written_stat(op->upd)) < 0)
                request_unmute(l, op->id);
        const struct node_request *rq = op->rq;
        struct req_handler *h = xnew(struct req_handler, 1);
        h->l = l;
        h->pool = p;
        h->id = xstrdup(rq->id);
        h->lock = TAKE_PTR(held);
        h->n = model_strv_length(rq->node_types);
        h->slots = xnew(struct slot, h->n);
        for (size_t i = 0; i < h->n; i++) h->slots[i].label = xstrdup(rq->node_types[i]);
        h->reuse = rq->reuse;
        h->min_ready = rq->requestor && strcmp(rq->requestor, LAUNCHER_MINREADY_REQUESTOR) == 0;
        h->tenant = xstrdup(rq->tenant_name);
        h->requestor = xstrdup(rq->requestor);
        accept_end(op);
        smap_put(&l->handlers, h->id, h);
        log_info("pool %s accepted request %s", p->id, h->id);
        if (p->retired || !p->cpool) {
                fail_empty_slots(h);
        } else {
                handler_fill(h);
        }
        if (handler_done(h)) handler_finish(h);
}

static int accept_edit(struct zk_update_record *rec, void *ud) {
        struct accept_op *op = ud;
        struct pool *p = op->pool;
        /* No re-read: the write is conditional on the cached version, so a
         * request changed meanwhile fails with -ESTALE and is looked at again. */
        const struct creq *cr = smap_get(&op->l->requests, op->id);
        _cleanup_free_ char *data = NULL;
        size_t len;
        struct model_error err;
        if (!cr || node_request_to_json(cr->req, &data, &len) < 0) return -ENOENT;
        rec->version = cr->version;
        if (node_request_from_json(data, len, op->id, &op->rq, &err) < 0) return -EBADMSG;
        if (op->rq->state != NODE_REQUEST_STATE_REQUESTED || model_strv_contains(op->rq->declined_by, p->id) ||
            p->retired || !p->cpool)
                return -ECANCELED;
        char buf[256];
        const char *why = decline_reason(p, op->rq, buf, sizeof buf);
        if (why) {
                op->why = xstrdup(why);
                return ZK_UPDATE_NO_WRITE; /* declined with the lock we hold */
        }
        node_request_set_state(op->rq, NODE_REQUEST_STATE_PENDING);
        int r = node_request_to_json(op->rq, &rec->new_data, &rec->new_len);
        if (r < 0) return r;
        /* We hold the request lock: only we write it until we let go (or it is
         * deleted, which the cache still sees). Our writes are told to the cache
         * (on_accepted, on_fulfilled_written), not read back. */
        op->written = xstrndup(rec->new_data, rec->new_len);
        op->written_len = rec->new_len;
        (void)zk_cache_mute(op->l->request_cache, rec->path);
        return ZK_UPDATE_WRITE;
}

/* Start accepting CACHED for pool P. */
static void accept_request(struct pool *p, const struct node_request *cached) {
        struct launcher *l = p->l;
        struct accept_op *op = xnew(struct accept_op, 1);
        op->l = l;
        op->pool = p;
        op->id = xstrdup(cached->id);
        _cleanup_free_ char *path = npzk_request_path(cached->id), *lpath = npzk_request_lock_path(cached->id);
        /* A new request has no lock directory yet: made with our contender and
         * the `pending` write, in one multi request. */
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath,
                .flags = ZK_UPDATE_KEEP_LOCK | ZK_UPDATE_NO_READ | ZK_UPDATE_FRESH_LOCK | ZK_UPDATE_EDIT_FIRST,
                .edit = accept_edit, .done = on_accepted, .userdata = op,
        };
        if (zk_update_start(l->zk, &spec, &op->upd) < 0) {
                if (op->written) request_unmute(l, op->id); /* muted by the edit, never written */
                accept_free(op);
                return;
        }
        smap_put(&l->accepting, op->id, op);
}

/* Another online pool of the preferred provider that has not declined? */
static bool preferred_elsewhere(struct launcher *l, const struct node_request *rq, const struct pool *p) {
        if (!rq->provider || strcmp(rq->provider, p->provider_name) == 0) return false;
        size_t n = 0;
        json_t **comps = caches_pool_components(l, &n);
        bool other = false;
        for (size_t i = 0; i < n; i++) {
                const char *prov = json_string_value(json_object_get(comps[i], "provider_name"));
                const char *id = json_string_value(json_object_get(comps[i], "id"));
                if (prov && id && strcmp(prov, rq->provider) == 0 && !model_strv_contains(rq->declined_by, id))
                        other = true;
                json_decref(comps[i]);
        }
        free(comps);
        return other;
}

/* A better (lower priority value), unpaused pool of ours that supports every label? */
static bool better_pool(struct launcher *l, const struct node_request *rq, const struct pool *p) {
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *o = l->pools[i];
                if (o == p || o->retired || o->paused || o->cpool->priority >= p->cpool->priority) continue;
                if (model_strv_contains(rq->declined_by, o->id)) continue;
                bool all = true;
                for (char **t = rq->node_types; *t && all; t++) all = pool_has_label(o, *t);
                if (all) return true;
        }
        return false;
}

struct collect_req {
        const struct node_request **v;
        size_t n;
};

static void collect_req_fn(const char *key, void *value, void *ud) {
        struct collect_req *c = ud;
        const struct creq *cr = value;
        if (cr->req->state == NODE_REQUEST_STATE_REQUESTED) c->v[c->n++] = cr->req;
}

struct gone_ctx {
        struct launcher *l;
        struct req_handler **v;
        size_t n;
};

static void handler_collect_fn(const char *key, void *value, void *ud) {
        struct gone_ctx *g = ud;
        g->v[g->n++] = value;
}

/* Handlers in their requests' order (priority, relative priority, age): a node
 * that becomes free goes to the most urgent waiting request, not to whichever
 * handler the map yields first. Handlers whose request left the cache go last. */
static int handler_cmp(const void *a, const void *b, void *ud) {
        struct launcher *l = ud;
        const struct req_handler *x = *(struct req_handler *const *)a, *y = *(struct req_handler *const *)b;
        const struct creq *cx = smap_get(&l->requests, x->id), *cy = smap_get(&l->requests, y->id);
        if (!cx || !cy) return (cx == NULL) - (cy == NULL);
        return node_request_compare(cx->req, cy->req);
}

void requests_pass(struct launcher *l) {
        if (!caches_synced(l)) return;
        _cleanup_(owners_freep) struct owners *o = owners_snapshot(l);
        for (size_t i = 0; i < l->n_provs; i++) owners_launch_lease_sync(l->provs[i], o);
        /* Handlers first: vanished requests, quota waits, finished ones. */
        struct gone_ctx g = { .l = l, .v = xnew(struct req_handler *, l->handlers.n + 1) };
        smap_foreach(&l->handlers, handler_collect_fn, &g);
        if (g.n > 1) qsort_r(g.v, g.n, sizeof *g.v, handler_cmp, l);
        for (size_t i = 0; i < g.n; i++) {
                struct req_handler *h = g.v[i];
                if (h->finishing && h->finish_retry) {
                        /* Reconnected (passes run only then): what became of our fulfilment? */
                        _cleanup_free_ char *path = npzk_request_path(h->id);
                        h->finish_retry = false;
                        h->in_flight = true;
                        (void)zk_aget(l->zk, path, NULL, on_finish_read, h);
                        continue;
                }
                if (h->finishing) continue;
                bool gone = !smap_get(&l->requests, h->id);
                if (gone) {
                        for (size_t k = 0; k < h->n; k++)
                                if (h->slots[k].st == SLOT_EMPTY) h->slots[k].st = SLOT_FAILED;
                } else if (!h->pool->retired && h->pool->cpool) {
                        handler_fill(h);
                } else {
                        for (size_t k = 0; k < h->n; k++)
                                if (h->slots[k].st == SLOT_EMPTY) h->slots[k].st = SLOT_FAILED;
                }
                if (handler_done(h)) handler_finish(h);
        }
        free(g.v);
        /* Pools waiting for quota stay paused; others resume. */
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired) continue;
                bool waiting = false;
                struct gone_ctx g2 = { .l = l, .v = xnew(struct req_handler *, l->handlers.n + 1) };
                smap_foreach(&l->handlers, handler_collect_fn, &g2);
                for (size_t k = 0; k < g2.n; k++) waiting |= g2.v[k]->pool == p && g2.v[k]->waiting_quota;
                free(g2.v);
                if (p->prov->down_r) {
                        /* The cloud is down: paused until its probe answers (quota_ready runs it). */
                        pool_set_paused(p, true, p->prov->down_reason);
                        (void)quota_ready(p);
                } else if (!waiting && p->paused) {
                        pool_set_paused(p, false, NULL);
                }
        }

        struct collect_req c = { .v = xnew(const struct node_request *, l->requests.n + 1) };
        smap_foreach(&l->requests, collect_req_fn, &c);
        qsort(c.v, c.n, sizeof *c.v, node_request_compare_qsort);
        /* Copy ids: accepting or declining may dispatch nothing, but the cache
         * entries are replaced by our own writes only after the next dispatch. */
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired || !p->cpool) continue;
                if (p->cp->max_concurrency == 0) continue; /* Nodepool: handle no requests */
                for (size_t k = 0; k < c.n; k++) {
                        const struct node_request *rq = c.v[k];
                        if (smap_get(&l->handlers, rq->id) || smap_get(&l->accepting, rq->id) ||
                            smap_get(&l->declining, rq->id))
                                continue;
                        if (model_strv_contains(rq->declined_by, p->id)) continue;
                        if (!rq->node_types[0]) continue;
                        if (pools_foreign_label(l, rq->node_types)) continue; /* another launcher's */
                        char buf[256];
                        const char *why = decline_reason(p, rq, buf, sizeof buf);
                        if (why) {
                                decline_start(p, rq->id, why, NULL);
                                continue;
                        }
                        if (!p->prov->launch_ok) {
                                /* Another launcher launches for this pool: its refusal is ours. */
                                if (owners_declined_by_sibling(o, rq->declined_by, p->provider_name, p->name))
                                        decline_start(p, rq->id, "declined by the launcher launching for this pool",
                                                      NULL);
                                continue;
                        }
                        if (p->paused || !quota_ready(p)) continue;
                        if (preferred_elsewhere(l, rq, p) || better_pool(l, rq, p)) continue;
                        if (l->cfg->n_tenant_limits > 0) {
                                struct usage need = request_cost(p, rq->node_types);
                                const char *tw = quota_tenant_check(l, rq->tenant_name, &need, buf, sizeof buf);
                                if (tw) {
                                        /* Deferred, not declined (Nodepool): it stays requested. */
                                        log_debug("request %s deferred: %s", rq->id, tw);
                                        continue;
                                }
                        }
                        accept_request(p, rq);
                }
        }
        free(c.v);
}

static void abort_fn(const char *key, void *value, void *ud) {
        struct req_handler *h = value;
        /* Launching slots: the launch owns that node lock and releases it. */
        handler_free(h);
}

static void abort_accept_fn(const char *key, void *value, void *ud) { accept_free(value); }

static void abort_decline_fn(const char *key, void *value, void *ud) { decline_free(value); }

static void abort_reuse_fn(const char *key, void *value, void *ud) {
        struct reuse_op *op = value;
        struct launcher *l = op->l;
        smap_remove(&l->reusing, op->node_id); /* KEY goes with it: OP's copy of the id is used */
        smap_remove(&l->held, op->node_id); /* its lock goes: the node is free again */
        caches_ready_update(l, op->node_id);
        reuse_free(op);
}

void requests_abort_all(struct launcher *l) {
        smap_foreach(&l->accepting, abort_accept_fn, NULL);
        smap_clear(&l->accepting, NULL);
        smap_foreach(&l->declining, abort_decline_fn, NULL);
        smap_clear(&l->declining, NULL);
        smap_foreach(&l->reusing, abort_reuse_fn, NULL);
        smap_clear(&l->reusing, NULL);
        while (l->creates) {
                /* A node created but not launched yet: left unguarded for the cleanup. */
                if (l->creates->n && l->creates->n->id) smap_remove(&l->held, l->creates->n->id);
                create_free(l->creates);
        }
        smap_foreach(&l->handlers, abort_fn, NULL);
        smap_clear(&l->handlers, NULL);
}
