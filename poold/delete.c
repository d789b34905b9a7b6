/* delete.c — deletion of nodes (protocol.md §4.2 DeletedNodeWorker).
 *
 * DESIGN. Every pass looks for unlocked nodes of our providers in a deletable
 * state (used, in-use, building, failed, aborted, deleting, deleted); each one
 * gets a small state machine, asynchronous so that deletes never hold up a
 * request: lock → re-read → `deleting` → provider delete on the workq (waited
 * for; -ENOENT is success; no instance, static: no provider call) → contender,
 * lock dir and znode deleted in one atomic multi request (so nobody can take
 * the lock of a half-deleted node: no `deleted` state needed); when that fails
 * (someone queued for the lock meanwhile) → `deleted` → contender, lock dir
 * and znode deleted in one pipelined go, Nodepool's way. The delete is done when
 * ZooKeeper confirms the znode gone; until then the node stays ours
 * (`deleting`, `held`), and a failure (a lost connection, a lost session) hands
 * it back to a later pass, which starts over from the lock. Nodes whose provider is
 * not ours are left to their launcher. READY nodes allocated to a request that
 * no longer exists are unallocated (lock, read, check in ZooKeeper that the
 * request is gone — with several launchers our request cache can be behind
 * the node cache — write with the read version: asynchronous too). */
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "zk_lock.h"
#include "zk_update.h"

enum del_stage { DEL_LOCKING, DEL_PROVIDER, DEL_FINISHING };

/* An `init` node is locked by its launcher milliseconds after its creation; one
 * still unlocked this much later was orphaned (its create's answer was lost with
 * the connection, or its launcher died in between) and is garbage. */
#define INIT_ORPHAN_AGE_S 300.0

struct node_delete {
        struct launcher *l;
        struct launcher_provider *prov;
        char *id;
        char *external_id;
        struct zk_update *upd;          /* DEL_LOCKING: lock, read, `deleting` */
        struct zk_lock *lock;
        enum del_stage stage;
        struct node *n;                 /* as read under the lock */
        int r;
        char *msg;
        bool abandoned;
};

static bool deletable(enum node_state s) {
        return s == NODE_STATE_USED || s == NODE_STATE_IN_USE || s == NODE_STATE_BUILDING ||
               s == NODE_STATE_FAILED || s == NODE_STATE_ABORTED || s == NODE_STATE_DELETING ||
               s == NODE_STATE_DELETED;
}

static void nd_free(struct node_delete *d) {
        /* Only the finishing stage can have a callback of ours outstanding. */
        if (d->stage == DEL_FINISHING) zk_cancel(d->l->zk, d);
        zk_update_free(d->upd);
        zk_lock_free(d->lock); /* released */
        d->prov->refs--;
        node_free(d->n);
        free(d->id);
        free(d->external_id);
        free(d->msg);
        free(d);
}

/* Give up on D for now (a later pass tries again): out of the maps, lock released. */
static void nd_end(struct node_delete *d) {
        struct launcher *l = d->l;
        smap_remove(&l->deleting, d->id);
        smap_remove(&l->held, d->id);
        nd_free(d);
        launcher_kick(l);
}

static void del_work(void *ud) {
        struct node_delete *d = ud;
        d->r = d->prov->drv->delete_instance(d->prov, d->external_id, &d->msg);
}

static void on_znode_deleted(struct zk *zk, const struct zk_result *res, void *ud) {
        struct node_delete *d = ud;
        struct launcher *l = d->l;
        int r = res->r;
        if (r == -ENOTEMPTY) /* someone queued for the lock meanwhile: take the whole subtree */
                r = zk_delete_recursive(zk, res->path);
        if (r < 0 && r != -ENOENT) {
                log_warning_errno(r, "node %s: cannot delete %s: %m (a later pass tries again)", d->id, res->path);
                nd_end(d);
                return;
        }
        log_info("node %s deleted", d->id);
        smap_remove(&l->deleting, d->id);
        smap_remove(&l->held, d->id);
        smap_put(&l->gone, d->id, (void *)1);
        nd_free(d);
        launcher_kick(l);
}

/* The multi could not delete it all: `deleted`, then our contender, the lock
 * directory and the znode, all sent at once (ZooKeeper applies them in order;
 * someone who takes the lock in between sees `deleted` and finishes the delete,
 * as Nodepool does); D lives on until the znode's delete is answered. */
static void finish_delete_steps(struct node_delete *d, struct node *n) {
        struct launcher *l = d->l;
        node_set_state(n, NODE_STATE_DELETED);
        zkrec_node_write_async(l, n);
        d->stage = DEL_FINISHING;
        zk_lock_free(TAKE_PTR(d->lock));        /* our contender goes (the release queue confirms it) */
        _cleanup_free_ char *lpath = npzk_node_lock_path(d->id), *path = npzk_node_path(d->id);
        (void)zk_adelete(l->zk, lpath, -1, NULL, NULL);
        (void)zk_adelete(l->zk, path, -1, on_znode_deleted, d);
}

static void on_finished(struct zk *zk, const struct zk_result *res, void *ud) {
        struct node_delete *d = ud;
        if (res->r == 0) {
                zk_lock_forget(d->lock); /* deleted with the rest */
                struct zk_result done = { .r = 0, .path = res->path };
                on_znode_deleted(zk, &done, d);
                return;
        }
        if (res->r == -ECONNRESET || res->r == -ETIMEDOUT || res->r == -EKEYEXPIRED || res->r == -ESHUTDOWN) {
                /* Maybe applied, maybe not: a later pass looks again (the lock is released). */
                log_info("node %s: delete not confirmed (%s); a later pass looks again", d->id, strerror(-res->r));
                nd_end(d);
                return;
        }
        /* -ENOTEMPTY: someone queued for the lock meanwhile. */
        log_debug("node %s: deleting it at once failed (%s): step by step", d->id, strerror(-res->r));
        finish_delete_steps(d, d->n);
}

/* The server is gone: our contender, the lock directory and the znode deleted in
 * one multi request; D lives on until it is answered. */
static void finish_delete(struct node_delete *d, struct node *n) {
        struct launcher *l = d->l;
        const char *own = zk_lock_node(d->lock);
        d->stage = DEL_FINISHING;
        if (!own) {
                finish_delete_steps(d, n);
                return;
        }
        _cleanup_free_ char *lpath = npzk_node_lock_path(d->id), *path = npzk_node_path(d->id);
        _cleanup_free_ char *cpath = xasprintf("%s/%s", lpath, own);
        const struct zk_multi_op ops[] = {
                { .kind = ZK_MULTI_DELETE, .path = cpath, .version = -1 },
                { .kind = ZK_MULTI_DELETE, .path = lpath, .version = -1 },
                { .kind = ZK_MULTI_DELETE, .path = path, .version = -1 },
        };
        if (zk_amulti(l->zk, ops, ELEMENTSOF(ops), on_finished, d) < 0) finish_delete_steps(d, n);
}

static void del_done(void *ud, int status) {
        struct node_delete *d = ud;
        if (d->abandoned) {
                nd_free(d);
                return;
        }
        if (!zk_lock_is_held(d->lock)) {
                /* The session ended during the provider call: the node is not ours any more. */
                log_info("node %s: lock lost during its delete (a later pass tries again)", d->id);
                nd_end(d);
                return;
        }
        if (status >= 0 && quota_cloud_down_error(d->r)) {
                /* The cloud is down: deletes wait for it like launches (logged once there). */
                quota_cloud_down(d->prov, d->r, d->msg);
                nd_end(d);
                return;
        }
        if (status < 0 || d->r < 0) {
                log_error("node %s: provider delete of %s failed: %s (retrying later)", d->id, d->external_id,
                          d->msg ? d->msg : strerror(-(status < 0 ? status : d->r)));
                nd_end(d);
                return;
        }
        /* Nothing else writes a node we hold locked: finish from what we read. */
        finish_delete(d, d->n);
}

/* Under the lock: only a deletable (or orphaned `init`) node goes; `deleting`
 * is sent through the node write-behind queue (not waited for). */
static int del_edit(struct zk_update_record *rec, void *ud) {
        struct node_delete *d = ud;
        struct model_error err;
        if (node_from_json(rec->data, rec->len, d->id, &d->n, &err) < 0) return -EBADMSG;
        if (!(deletable(d->n->state) || d->n->state == NODE_STATE_INIT)) return -ECANCELED;
        log_info("deleting node %s (state %s)", d->id, node_state_to_string(d->n->state));
        if (d->n->state != NODE_STATE_DELETING) {
                node_set_state(d->n, NODE_STATE_DELETING);
                zkrec_node_write_async(d->l, d->n);
        }
        return ZK_UPDATE_NO_WRITE;
}

static void on_del_updated(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct node_delete *d = ud;
        struct launcher *l = d->l;
        d->stage = DEL_PROVIDER; /* our update is over: nothing of ours outstanding */
        d->lock = lock;
        if (r < 0) {
                nd_end(d);
                return;
        }
        struct node *n = d->n;
        if (n->external_id && json_is_string(n->external_id))
                d->external_id = xstrdup(json_string_value(n->external_id));
        /* No instance to delete (static: only the znode goes, its slot is registered again). */
        if (!d->external_id || !d->prov->drv->delete_instance) {
                finish_delete(d, n);
                return;
        }
        r = workq_submit(l->wq, del_work, del_done, d);
        if (r < 0) nd_end(d);
}

/* Lock (asynchronously), read, `deleting`, provider delete on the workq, then finish. */
static void start_delete(struct launcher *l, const char *id, const struct node *cached) {
        struct launcher_provider *pv = prov_by_name(l, cached->provider);
        if (!pv || !pv->opened) return;
        if (quota_cloud_retry_in_ms(pv) > 0) return; /* the cloud is down: try at its next probe */
        struct node_delete *d = xnew(struct node_delete, 1);
        d->l = l;
        d->prov = pv;
        pv->refs++;
        d->id = xstrdup(id);
        d->stage = DEL_LOCKING;
        _cleanup_free_ char *path = npzk_node_path(id), *lpath = npzk_node_lock_path(id);
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .flags = ZK_UPDATE_KEEP_LOCK, .edit = del_edit,
                .done = on_del_updated, .userdata = d,
        };
        if (zk_update_start(l->zk, &spec, &d->upd) < 0) {
                nd_free(d);
                return;
        }
        smap_put(&l->deleting, id, d);
        smap_put(&l->held, id, (void *)1);
}

/* Unallocating a READY node whose request is gone: a zk_update (lock, read,
 * clear allocated_to once ZooKeeper confirms the request gone, write with the
 * read version, unlock) — asynchronous. The op is in l->unallocating (and the
 * node in `held`) meanwhile. */
struct unalloc_op {
        struct launcher *l;
        char *id;
        struct zk_update *upd;
        bool in_flight;                 /* the request's exists with us as userdata is outstanding */
        char *data;                     /* the node to write once the request is known gone */
        size_t len;
};

static void ua_free(struct unalloc_op *op) {
        if (op->in_flight) zk_cancel(op->l->zk, op);
        zk_update_free(op->upd);
        free(op->id);
        free(op->data);
        free(op);
}

static void ua_end(struct unalloc_op *op) {
        struct launcher *l = op->l;
        smap_remove(&l->unallocating, op->id);
        smap_remove(&l->held, op->id);
        ua_free(op);
        launcher_kick(l);
}

static void on_ua_done(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct unalloc_op *op = ud;
        if (at == ZK_UPDATE_STEP_WRITE && r < 0) log_warning_errno(r, "node %s: cannot unallocate: %m", op->id);
        ua_end(op);
}

static void on_ua_request(struct zk *zk, const struct zk_result *res, void *ud) {
        struct unalloc_op *op = ud;
        op->in_flight = false;
        if (res->r != -ENOENT) {
                zk_update_skip(op->upd, -EEXIST); /* it exists (or we cannot tell): leave the node allocated */
                return;
        }
        log_info("node %s: request %s is gone, unallocating", op->id, strrchr(res->path, '/') + 1);
        zk_update_write(op->upd, TAKE_PTR(op->data), op->len);
}

static int ua_edit(struct zk_update_record *rec, void *ud) {
        struct unalloc_op *op = ud;
        struct launcher *l = op->l;
        _cleanup_(node_freep) struct node *n = NULL;
        struct model_error err;
        if (node_from_json(rec->data, rec->len, op->id, &n, &err) < 0 || n->state != NODE_STATE_READY ||
            !n->allocated_to || smap_get(&l->requests, n->allocated_to) || smap_get(&l->handlers, n->allocated_to))
                return -ECANCELED;
        _cleanup_free_ char *rpath = npzk_request_path(n->allocated_to);
        model_set_str(&n->allocated_to, NULL);
        int r = node_to_json(n, &op->data, &op->len);
        if (r < 0) return r;
        /* Our request cache may lag our node cache (another launcher fulfilled a
         * request we have not seen yet): ask ZooKeeper whether it is gone. */
        op->in_flight = true;
        (void)zk_aexists(l->zk, rpath, NULL, on_ua_request, op);
        return ZK_UPDATE_LATER;
}

static void unallocate(struct launcher *l, const char *id) {
        struct unalloc_op *op = xnew(struct unalloc_op, 1);
        op->l = l;
        op->id = xstrdup(id);
        _cleanup_free_ char *path = npzk_node_path(id), *lpath = npzk_node_lock_path(id);
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .edit = ua_edit, .done = on_ua_done, .userdata = op,
        };
        if (zk_update_start(l->zk, &spec, &op->upd) < 0) {
                ua_free(op);
                return;
        }
        smap_put(&l->unallocating, id, op);
        smap_put(&l->held, id, (void *)1);
}

/* Making room: a zk_update (lock, read, still READY and unallocated →
 * `deleting` written with the read version, unlock); the delete pass does the
 * rest. The op stays in l->making_room until its node leaves the cache (or
 * ROOM_WAIT_MS passed, as Nodepool's MAX_DELETE_AGE), so that a pool has one
 * such delete going at a time. */
#define ROOM_WAIT_MS (5ULL * 60 * 1000)

struct room_op {
        struct launcher *l;
        char *key;                      /* "<provider>/<pool>" */
        char *pool_id;
        char *id;                       /* the node */
        struct zk_update *upd;          /* in flight; NULL once written */
        uint64_t since_ms;
};

static void room_free(void *v) {
        struct room_op *op = v;
        if (!op) return;
        if (op->upd) smap_remove(&op->l->held, op->id);
        zk_update_free(op->upd);
        free(op->key);
        free(op->pool_id);
        free(op->id);
        free(op);
}

static int room_edit(struct zk_update_record *rec, void *ud) {
        struct room_op *op = ud;
        _cleanup_(node_freep) struct node *n = NULL;
        struct model_error err;
        if (node_from_json(rec->data, rec->len, op->id, &n, &err) < 0) return -EBADMSG;
        if (n->state != NODE_STATE_READY || n->allocated_to) return -ECANCELED; /* taken meanwhile */
        node_set_state(n, NODE_STATE_DELETING);
        int r = node_to_json(n, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

static void on_room_done(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct room_op *op = ud;
        struct launcher *l = op->l;
        zk_update_free(TAKE_PTR(op->upd));
        smap_remove(&l->held, op->id);
        if (r == 1) {
                log_info("node %s: oldest unused ready node of pool %s, deleting it to make room", op->id,
                         op->pool_id);
                op->since_ms = loop_now_ms();
        } else {
                if (at == ZK_UPDATE_STEP_LOCK && r == -EBUSY) caches_node_mark_locked(l, op->id);
                else caches_ready_update(l, op->id);
                log_debug("node %s: not deleted to make room (%s)", op->id, r < 0 ? strerror(-r) : "no write");
                smap_remove(&l->making_room, op->key);
                room_free(op);
        }
        launcher_kick(l);
}

void delete_make_room(struct pool *p) {
        struct launcher *l = p->l;
        _cleanup_free_ char *key = xasprintf("%s/%s", p->provider_name, p->name);
        struct room_op *op = smap_get(&l->making_room, key);
        if (op) {
                if (op->upd) return;
                if (smap_get(&l->nodes, op->id) && loop_now_ms() - op->since_ms < ROOM_WAIT_MS) return;
                smap_remove(&l->making_room, key);
                room_free(op);
        }
        const char *id = caches_ready_oldest(l, p);
        if (!id) return;
        op = xnew(struct room_op, 1);
        op->l = l;
        op->key = xstrdup(key);
        op->pool_id = xstrdup(p->id);
        op->id = xstrdup(id);
        _cleanup_free_ char *path = npzk_node_path(op->id), *lpath = npzk_node_lock_path(op->id);
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .edit = room_edit, .done = on_room_done, .userdata = op,
        };
        if (zk_update_start(l->zk, &spec, &op->upd) < 0) {
                room_free(op);
                return;
        }
        smap_put(&l->making_room, key, op);
        smap_put(&l->held, op->id, (void *)1); /* neither reused nor picked again meanwhile */
}

struct pass {
        struct launcher *l;
        char **del, **unalloc;
        size_t n_del, n_unalloc;
};

bool delete_candidate(const struct cnode *cn) {
        const struct node *n = cn->node;
        return cn->lock_contenders == 0 && n &&
               (deletable(n->state) || n->state == NODE_STATE_INIT || (n->state == NODE_STATE_READY && n->allocated_to));
}

static void scan_fn(const char *key, void *value, void *ud) {
        struct pass *p = ud;
        const struct cnode *cn = smap_get(&p->l->nodes, key);
        if (!cn) return;
        const struct node *n = cn->node;
        if (cn->lock_contenders > 0 || smap_get(&p->l->held, key) || smap_get(&p->l->deleting, key) ||
            smap_get(&p->l->gone, key))
                return;
        if (!n->provider || !prov_by_name(p->l, n->provider)) return;
        if (deletable(n->state) ||
            (n->state == NODE_STATE_INIT && n->state_time > 0 && model_now() - n->state_time > INIT_ORPHAN_AGE_S))
                p->del[p->n_del++] = xstrdup(key);
        else if (n->state == NODE_STATE_READY && n->allocated_to && !smap_get(&p->l->requests, n->allocated_to) &&
                 !smap_get(&p->l->handlers, n->allocated_to))
                p->unalloc[p->n_unalloc++] = xstrdup(key);
}

void delete_pass(struct launcher *l) {
        if (!caches_synced(l)) return;
        struct pass p = { .l = l, .del = xnew(char *, l->delete_candidates.n + 1),
                          .unalloc = xnew(char *, l->delete_candidates.n + 1) };
        smap_foreach(&l->delete_candidates, scan_fn, &p);
        for (size_t i = 0; i < p.n_del; i++) {
                struct cnode *cn = smap_get(&l->nodes, p.del[i]);
                if (cn) start_delete(l, p.del[i], cn->node);
                free(p.del[i]);
        }
        for (size_t i = 0; i < p.n_unalloc; i++) {
                unallocate(l, p.unalloc[i]);
                free(p.unalloc[i]);
        }
        free(p.del);
        free(p.unalloc);
}

static void abandon_fn(const char *key, void *value, void *ud) {
        struct node_delete *d = value;
        if (d->stage == DEL_PROVIDER) d->abandoned = true; /* del_done frees it */
        else nd_free(d);
}

static void ua_abort_fn(const char *key, void *value, void *ud) { ua_free(value); }

/* Called at stop: deletes in flight finish their provider call and are then freed. */
void delete_abort_all(struct launcher *l) {
        smap_foreach(&l->deleting, abandon_fn, NULL);
        smap_clear(&l->deleting, NULL);
        smap_foreach(&l->unallocating, ua_abort_fn, NULL);
        smap_clear(&l->unallocating, NULL);
        smap_clear(&l->making_room, room_free);
}
