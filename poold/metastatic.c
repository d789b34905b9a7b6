/* metastatic.c — the metastatic driver kind (pool_driver.h): nodes carved out
 * of backing nodes of another label (Nodepool's nodepool/driver/metastatic).
 *
 * DESIGN. A metastatic node is a slot on a backing node: it copies the backing
 * node's address and connection fields, and its driver_data names the backing
 * node and slot ({"backing_node", "slot", "node"}, as Nodepool writes it). The
 * provider gets backing nodes as any client does: an ephemeral node request for
 * the backing label (priority 100, requestor "NodePool:metastatic:<provider>",
 * served by request.c of whichever launcher has that label), then, once
 * fulfilled, a lock on the node that outlives our session (a persistent
 * contender with that requestor as identifier, Nodepool's non-ephemeral lock),
 * the node `in-use` with user_data {"owner","label","slots","failed","launched"}
 * and the request deleted.
 * Which slots of a backing node are taken is read from the node cache (our
 * provider's nodes whose driver_data names it) plus the launches we are
 * finishing, so a deleted metastatic node frees its slot with no bookkeeping,
 * and a restart loses nothing: the backing nodes (user_data owner ours, first
 * lock contender ours) are adopted again at the first pass that may launch.
 * Launches that need a backing node wait on its record (bounded by the
 * provider's launch-timeout) and are finished by the sync. With
 * host-key-checking, a placed node is scanned (nodescan within boot-timeout)
 * before it is ready; a failed scan fails the launch and the backing node
 * takes no new node (Nodepool's notifyNodescanFailure). The sync also returns
 * a backing node idle for grace-time (and held min-retention-time; at once when
 * failed or past max-age): state `used`, our contender deleted, so its own
 * launcher deletes it. Only the launch lease holder launches (launch_lease);
 * records are this launcher's. Every function runs on the loop thread; the
 * ZooKeeper calls of the sync are synchronous, as static.c's registrations. */
#include <string.h>

#include "alloc.h"
#include "json_util.h"
#include "keyscan.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "zk_lock.h"

#define META_PRIORITY "100"
#define REQUEST_UNSEEN_MS 30000   /* our request not in the cache this long: gone */

/* A launch waiting for (or given) a slot of a backing node. */
struct meta_wait {
        struct pool *p;
        struct node *n;
        struct zk_lock *lock;
        char *request_id;               /* NULL once forgotten */
        size_t slot;
        uint64_t deadline_ms;
        struct meta_prov *ms;
        char *backing_id;               /* while its host-key check runs */
        struct keyscan *scan;
        struct meta_wait *next;
};

/* A backing node we hold or have asked for (Nodepool's BackingNodeRecord). */
struct backing {
        char *label;                    /* the metastatic label it serves */
        int64_t slots;
        char *request_id;               /* asked for: our node request, until fulfilled */
        uint64_t requested_ms;
        char *node_id;                  /* held: the backing node */
        char **assigned;                /* held: node id we put in each slot (the cache may lag) */
        char *contender;                /* held: our persistent lock contender (full path) */
        bool failed;                    /* no new slots; returned once empty */
        double launched;                /* epoch seconds */
        uint64_t last_used_ms;
        struct meta_wait *waits;
        struct backing *next;
};

struct meta_prov {
        struct launcher *l;
        struct launcher_provider *pv;
        char *my_id;                    /* "NodePool:metastatic:<provider>" */
        struct backing *backings;
        struct meta_wait *scans;        /* placed, their host-key check running */
        struct loop_timer *retire_timer; /* notices the provider retired (no sync runs then) */
        bool adopted;
        bool retired_done;                   /* backing nodes of an earlier run looked for */
};

static size_t waits_count(const struct backing *b) {
        size_t n = 0;
        for (const struct meta_wait *w = b->waits; w; w = w->next) n++;
        return n;
}

static void wait_free(struct meta_wait *w) {
        keyscan_cancel(w->scan);
        free(w->backing_id);
        if (w->lock) {
                zk_lock_release_async(w->lock);
                zk_lock_free(w->lock);
        }
        node_free(w->n);
        free(w->request_id);
        free(w);
}

static void backing_free(struct backing *b) {
        while (b->waits) {
                struct meta_wait *w = b->waits;
                b->waits = w->next;
                wait_free(w);
        }
        for (int64_t i = 0; b->assigned && i < b->slots; i++) free(b->assigned[i]);
        free(b->assigned);
        free(b->label);
        free(b->request_id);
        free(b->node_id);
        free(b->contender);
        free(b);
}

static void backing_unlink(struct meta_prov *ms, struct backing *b) {
        for (struct backing **pp = &ms->backings; *pp; pp = &(*pp)->next)
                if (*pp == b) {
                        *pp = b->next;
                        return;
                }
}

static const struct config_pool_label *label_config(const struct meta_prov *ms, const char *label) {
        const struct config_provider *cp = ms->pv->cp;
        for (size_t i = 0; cp && i < cp->n_pools; i++)
                for (size_t k = 0; k < cp->pools[i].n_labels; k++)
                        if (strcmp(cp->pools[i].labels[k].name, label) == 0) return &cp->pools[i].labels[k];
        return NULL;
}

/* driver_data of a node of ours: its backing node id and slot, or false. */
static bool slot_of(const struct node *n, const char **ret_backing, int64_t *ret_slot) {
        json_t *bn = n->driver_data ? json_object_get(n->driver_data, "backing_node") : NULL;
        json_t *sl = n->driver_data ? json_object_get(n->driver_data, "slot") : NULL;
        if (!json_is_string(bn) || !json_is_integer(sl)) return false;
        *ret_backing = json_string_value(bn);
        *ret_slot = json_integer_value(sl);
        return true;
}

struct slot_scan {
        const struct meta_prov *ms;
        const char *backing;
        bool *taken;
        int64_t slots;
        size_t used;
};

static void slot_scan_fn(const char *key, void *value, void *ud) {
        struct slot_scan *s = ud;
        const struct node *n = ((const struct cnode *)value)->node;
        const char *bn;
        int64_t slot;
        if (!n->provider || strcmp(n->provider, s->ms->pv->name) != 0 || !slot_of(n, &bn, &slot) ||
            strcmp(bn, s->backing) != 0 || smap_get(&s->ms->l->gone, key))
                return;
        if (slot >= 0 && slot < s->slots) s->taken[slot] = true;
}

/* Slots of held backing node B in use (cached nodes and our finishing launches);
 * *ret_free the lowest free one, or -1. */
static size_t slots_used(const struct meta_prov *ms, struct backing *b, int64_t *ret_free) {
        bool *taken = xnew(bool, (size_t)b->slots + 1);
        struct slot_scan s = { .ms = ms, .backing = b->node_id, .taken = taken, .slots = b->slots };
        if (!b->assigned) b->assigned = xnew(char *, (size_t)b->slots + 1);
        smap_foreach(&ms->l->nodes, slot_scan_fn, &s);
        /* A slot we gave is taken while its node lives, whatever the cache shows of it yet. */
        for (int64_t i = 0; i < b->slots; i++) {
                const char *id = b->assigned[i];
                if (!id) continue;
                if (smap_get(&ms->l->nodes, id) && !smap_get(&ms->l->gone, id)) {
                        taken[i] = true;
                } else {
                        free(b->assigned[i]);
                        b->assigned[i] = NULL;
                }
        }
        *ret_free = -1;
        for (int64_t i = 0; i < b->slots; i++) {
                if (taken[i]) s.used++;
                else if (*ret_free < 0) *ret_free = i;
        }
        free(taken);
        return s.used;
}

/* The launch of W is over with R (0: the node is ready): report and free. */
static void wait_finish(struct meta_wait *w, int r) {
        struct launcher *l = w->p->l;
        struct zk_lock *lock = NULL;
        if (r == 0) {
                lock = TAKE_PTR(w->lock);
        } else {
                node_set_state(w->n, NODE_STATE_FAILED);
                zkrec_node_write_async(l, w->n);
                smap_remove(&l->held, w->n->id);
        }
        _cleanup_free_ char *rid = TAKE_PTR(w->request_id);
        size_t slot = w->slot;
        wait_free(w);
        request_slot_done(l, rid, slot, r, lock);
}

static void wait_ready(struct meta_wait *w) {
        struct node *n = w->n;
        node_set_state(n, NODE_STATE_READY);
        zkrec_node_write_async(w->p->l, n);
        log_info("node %s ready on backing node %s slot %lld (%s:%d)", n->id,
                 json_string_value(json_object_get(n->driver_data, "backing_node")), (long long)n->slot,
                 n->interface_ip ? n->interface_ip : "?", n->connection_port);
        wait_finish(w, 0);
}

static struct backing *backing_find(struct meta_prov *ms, const char *node_id) {
        for (struct backing *b = ms->backings; b; b = b->next)
                if (b->node_id && strcmp(b->node_id, node_id) == 0) return b;
        return NULL;
}

static char *user_data_of(const struct meta_prov *ms, const struct backing *b);

/* Nodepool's notifyNodescanFailure: the backing node takes no new node, and says so. */
static void backing_mark_failed(struct meta_prov *ms, struct backing *b) {
        if (b->failed) return;
        b->failed = true;
        struct node *n = NULL;
        int32_t ver;
        if (zkrec_node_read(ms->l, b->node_id, &n, &ver) < 0) return;
        _cleanup_free_ char *ud = user_data_of(ms, b);
        if (n->user_data) json_decref(n->user_data);
        n->user_data = json_util_must(json_string(ud));
        int r = zkrec_node_write(ms->l, n, ver);
        if (r < 0) log_warning_errno(r, "backing node %s: cannot mark failed: %m", b->node_id);
        node_free(n);
}

static void on_scan(int error, char **keys, const char *msg, void *ud) {
        struct meta_wait *w = ud;
        struct meta_prov *ms = w->ms;
        w->scan = NULL;
        for (struct meta_wait **pp = &ms->scans; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        if (error < 0) {
                log_warning("node %s: host-key check of %s:%d failed: %s; backing node %s takes no new node",
                            w->n->id, w->n->interface_ip, w->n->connection_port, msg ? msg : strerror(-error),
                            w->backing_id);
                struct backing *b = backing_find(ms, w->backing_id);
                if (b) backing_mark_failed(ms, b);
                wait_finish(w, -EIO);
                return;
        }
        if (keyscan_gathers_keys(w->n->connection_type)) {
                model_strv_free(w->n->host_keys);
                w->n->host_keys = model_strv_copy(keys);
        }
        keyscan_strv_free(keys);
        if (!zk_lock_is_held(w->lock)) {
                wait_finish(w, -ENOLCK);
                return;
        }
        wait_ready(w);
}

/* Give W slot SLOT of held backing node B (cached as BN): copy its connection
 * fields (Nodepool's MetastaticInstance), then (host-key-checking) scan it, and
 * write the node ready. */
static void wait_place(struct meta_prov *ms, struct backing *b, const struct node *bn, struct meta_wait *w,
                       int64_t slot) {
        struct launcher *l = ms->l;
        if (!zk_lock_is_held(w->lock)) {
                /* Gone with the session: not ours to hand out (the delete pass removes it). */
                log_warning("node %s: its lock went with the ZooKeeper session; not handing it out", w->n->id);
                wait_finish(w, -ENOLCK);
                return;
        }
        struct node *n = w->n;
        model_set_str(&n->cloud, bn->cloud);
        model_set_str(&n->region, bn->region);
        model_set_str(&n->az, bn->az);
        model_set_str(&n->interface_ip, bn->interface_ip);
        model_set_str(&n->public_ipv4, bn->public_ipv4);
        model_set_str(&n->private_ipv4, bn->private_ipv4);
        model_set_str(&n->public_ipv6, bn->public_ipv6);
        model_set_str(&n->hostname, bn->hostname);
        model_set_str(&n->username, bn->username);
        model_set_str(&n->python_path, bn->python_path);
        model_set_str(&n->shell_type, bn->shell_type);
        model_set_str(&n->connection_type, bn->connection_type);
        n->connection_port = bn->connection_port;
        model_strv_free(n->host_keys);
        n->host_keys = model_strv_copy(bn->host_keys);
        if (n->attributes) json_decref(n->attributes);
        n->attributes = bn->attributes ? json_incref(bn->attributes) : NULL;
        if (n->external_id) json_decref(n->external_id);
        n->external_id = json_util_must(json_string(n->id));
        if (n->driver_data) json_decref(n->driver_data);
        n->driver_data = json_util_must(
                json_pack("{s:s, s:I, s:s}", "backing_node", b->node_id, "slot", (json_int_t)slot, "node", n->id));
        n->slot_set = true;
        n->slot = slot;
        if (n->resources) json_decref(n->resources);
        n->resources = json_pack("{s:i}", "instances", 1);
        model_set_str(&n->launcher, w->p->id);
        free(b->assigned[slot]);
        b->assigned[slot] = xstrdup(n->id);
        b->last_used_ms = loop_now_ms();
        const struct config_pool_label *pl = n->type[0] ? pool_find_label(w->p, n->type[0]) : NULL;
        if (!pl || !pl->host_key_checking || !n->interface_ip) {
                wait_ready(w);
                return;
        }
        /* host-key-checking: the node is checked as any launched node is (nodescan within boot-timeout). */
        w->ms = ms;
        w->backing_id = xstrdup(b->node_id);
        uint64_t timeout = (uint64_t)MAX(pl->boot_timeout, 1) * 1000;
        int r = keyscan_start(l->loop, n->interface_ip, n->connection_port, timeout, n->connection_type, on_scan, w,
                              &w->scan);
        if (r < 0) {
                log_warning_errno(r, "node %s: cannot check %s:%d: %m", n->id, n->interface_ip, n->connection_port);
                wait_finish(w, r);
                return;
        }
        w->next = ms->scans;
        ms->scans = w;
}

/* Held backing node B: place its waiting launches in free slots. */
static void backing_place_waits(struct meta_prov *ms, struct backing *b) {
        const struct cnode *cn = smap_get(&ms->l->nodes, b->node_id);
        while (b->waits) {
                int64_t free_slot;
                slots_used(ms, b, &free_slot);
                if (!cn || free_slot < 0) break;
                struct meta_wait *w = b->waits;
                b->waits = w->next;
                wait_place(ms, b, cn->node, w, free_slot);
        }
}

static char *user_data_of(const struct meta_prov *ms, const struct backing *b) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:b, s:f}", "owner", ms->my_id, "label", b->label, "slots",
                              (json_int_t)b->slots, "failed", b->failed, "launched", b->launched);
        char *s = json_dumps(json_util_must(o), JSON_COMPACT);
        json_decref(o);
        return s;
}

/* Our persistent contender on node ID's lock: 1 held (*ret_path), 0 someone
 * else holds it (ours removed), or -errno. */
static int lock_persistent(struct meta_prov *ms, const char *id, char **ret_path) {
        struct launcher *l = ms->l;
        _cleanup_free_ char *dir = npzk_node_lock_path(id), *created = NULL, *prefix = NULL;
        char hex[33] = "00000000000000000000000000000000";
        (void)model_uuid4_hex(hex);
        prefix = xasprintf("%s/%s__lock__", dir, hex);
        int r = zk_create(l->zk, prefix, ms->my_id, strlen(ms->my_id), ZK_SEQUENCE | ZK_MAKEPATH, &created);
        if (r < 0) return r;
        char **names = NULL;
        size_t n = 0;
        r = zk_lock_contenders(l->zk, dir, &names, NULL, &n);
        bool first = r >= 0 && n > 0 && strcmp(names[0], strrchr(created, '/') + 1) == 0;
        zk_strv_free(names);
        if (!first) {
                (void)zk_delete(l->zk, created, -1);
                return r < 0 ? r : 0;
        }
        *ret_path = TAKE_PTR(created);
        return 1;
}

/* Our backing request REQ was fulfilled: lock its node, mark it ours, drop the
 * request. 0 done, -EAGAIN try again next pass, other -errno: the backing failed. */
static int backing_take(struct meta_prov *ms, struct backing *b, const struct node_request *rq) {
        struct launcher *l = ms->l;
        const char *id = rq->nodes && rq->nodes[0] ? rq->nodes[0] : NULL;
        if (!id) return -EBADMSG;
        _cleanup_free_ char *contender = NULL;
        int r = lock_persistent(ms, id, &contender);
        if (r == 0) return -EAGAIN; /* its launcher may not have let it go yet */
        if (r < 0) return log_warning_errno(r, "backing node %s: cannot lock: %m", id);
        struct node *n = NULL;
        int32_t ver;
        r = zkrec_node_read(l, id, &n, &ver);
        if (r >= 0) {
                model_set_str(&b->node_id, id);
                b->launched = model_now();
                _cleanup_free_ char *ud = user_data_of(ms, b);
                if (n->user_data) json_decref(n->user_data);
                n->user_data = json_util_must(json_string(ud));
                node_set_state(n, NODE_STATE_IN_USE);
                r = zkrec_node_write(l, n, ver);
                node_free(n);
        }
        if (r < 0) {
                log_warning_errno(r, "backing node %s: cannot take it: %m", id);
                free(b->node_id);
                b->node_id = NULL;
                (void)zk_delete(l->zk, contender, -1);
                return r;
        }
        b->contender = TAKE_PTR(contender);
        _cleanup_free_ char *rpath = npzk_request_path(b->request_id);
        r = zk_delete(l->zk, rpath, -1);
        if (r < 0 && r != -ENOENT) log_warning_errno(r, "backing request %s: cannot delete: %m", b->request_id);
        log_info("metastatic provider %s: backing node %s taken for label %s (request %s)", ms->pv->name, id,
                 b->label, b->request_id);
        free(b->request_id);
        b->request_id = NULL;
        b->last_used_ms = loop_now_ms();
        return 0;
}

/* Fail every launch waiting on B with R. */
static void backing_fail_waits(struct meta_prov *ms, struct backing *b, int r) {
        while (b->waits) {
                struct meta_wait *w = b->waits;
                b->waits = w->next;
                wait_finish(w, r);
        }
}

/* Give back held backing node B: `used`, our contender deleted; its launcher deletes it. */
static void backing_return(struct meta_prov *ms, struct backing *b, const char *why) {
        struct launcher *l = ms->l;
        struct node *n = NULL;
        int32_t ver;
        int r = zkrec_node_read(l, b->node_id, &n, &ver);
        if (r >= 0) {
                node_set_state(n, NODE_STATE_USED);
                r = zkrec_node_write(l, n, ver);
                node_free(n);
        }
        if (r < 0 && r != -ENOENT) {
                log_warning_errno(r, "backing node %s: cannot return it (trying again): %m", b->node_id);
                return;
        }
        if (b->contender) {
                r = zk_delete(l->zk, b->contender, -1);
                if (r < 0 && r != -ENOENT) {
                        log_warning_errno(r, "backing node %s: cannot unlock (trying again): %m", b->node_id);
                        return;
                }
        }
        log_info("metastatic provider %s: backing node %s returned (%s)", ms->pv->name, b->node_id, why);
        backing_unlink(ms, b);
        backing_free(b);
}

/* A fresh node request for LABEL's backing label; NULL on failure (logged). */
static struct backing *backing_request(struct meta_prov *ms, const struct config_pool_label *pl) {
        struct launcher *l = ms->l;
        _cleanup_(node_request_freep) struct node_request *rq = node_request_new(NULL);
        model_set_str(&rq->requestor, ms->my_id);
        model_strv_push(&rq->node_types, pl->backing_label);
        rq->created_time = rq->state_time = model_now();
        char hex[33] = "";
        if (model_uuid4_hex(hex) >= 0) model_set_str(&rq->event_id, hex);
        _cleanup_free_ char *data = NULL, *path = NULL;
        size_t len;
        int r = node_request_to_json(rq, &data, &len);
        if (r >= 0)
                r = zk_create(l->zk, NPZK_REQUESTS "/" META_PRIORITY "-", data, len,
                              ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH, &path);
        if (r < 0) {
                log_warning_errno(r, "metastatic provider %s: cannot request a %s node: %m", ms->pv->name,
                                  pl->backing_label);
                return NULL;
        }
        struct backing *b = xnew(struct backing, 1);
        b->label = xstrdup(pl->name);
        b->slots = pl->max_parallel_jobs;
        b->request_id = xstrdup(strrchr(path, '/') + 1);
        b->requested_ms = b->last_used_ms = loop_now_ms();
        b->next = ms->backings;
        ms->backings = b;
        log_info("metastatic provider %s: requested a backing %s node for label %s (request %s)", ms->pv->name,
                 pl->backing_label, pl->name, b->request_id);
        return b;
}

/* ---------------------------------------------------------------- launch */

static void meta_launch(struct pool *p, struct node *n, struct zk_lock *lock, const char *request_id, size_t slot,
                        const char *az) {
        (void)az; /* a backing node's zone is whatever it has */
        struct meta_prov *ms = p->prov->ms;
        struct meta_wait *w = xnew(struct meta_wait, 1);
        w->p = p;
        w->n = n;
        w->lock = lock;
        w->request_id = request_id ? xstrdup(request_id) : NULL;
        w->slot = slot;
        w->deadline_ms = loop_now_ms() + (uint64_t)MAX(p->cp->launch_timeout, 1) * 1000;
        const struct config_pool_label *pl = n->type && n->type[0] ? pool_find_label(p, n->type[0]) : NULL;
        if (!ms || !pl || !pl->backing_label) {
                log_error("node %s: label not in metastatic pool %s", n->id, p->id);
                wait_finish(w, -ENOENT);
                return;
        }
        /* A held backing node with a free slot; else one asked for with room; else a new one. */
        struct backing *b = NULL, *asked = NULL;
        for (struct backing *x = ms->backings; x && !b; x = x->next) {
                if (x->failed || strcmp(x->label, pl->name) != 0) continue;
                if (x->node_id) {
                        int64_t free_slot;
                        slots_used(ms, x, &free_slot);
                        if (free_slot >= 0 && !x->waits) b = x;
                } else if (!asked && (int64_t)waits_count(x) < x->slots) {
                        asked = x;
                }
        }
        if (!b) b = asked;
        if (!b) b = backing_request(ms, pl);
        if (!b) {
                wait_finish(w, -EIO);
                return;
        }
        w->next = b->waits;
        b->waits = w;
        if (b->node_id) backing_place_waits(ms, b);
        else log_info("node %s waits for backing request %s", n->id, b->request_id);
}

/* ------------------------------------------------------------------ sync */

/* Backing nodes of an earlier run (ours by user_data and first lock contender). */
struct adopt_scan {
        struct meta_prov *ms;
        char **ids;
        size_t n;
};

static void adopt_fn(const char *key, void *value, void *ud) {
        struct adopt_scan *a = ud;
        const struct node *n = ((const struct cnode *)value)->node;
        if (!json_is_string(n->user_data) || !strstr(json_string_value(n->user_data), a->ms->my_id)) return;
        a->ids = xrealloc(a->ids, (a->n + 1) * sizeof *a->ids);
        a->ids[a->n++] = xstrdup(key);
}

static void adopt(struct meta_prov *ms) {
        struct launcher *l = ms->l;
        struct adopt_scan a = { .ms = ms };
        smap_foreach(&l->nodes, adopt_fn, &a);
        for (size_t i = 0; i < a.n; i++) {
                const char *id = a.ids[i];
                bool known = false;
                for (struct backing *b = ms->backings; b && !known; b = b->next)
                        known = b->node_id && strcmp(b->node_id, id) == 0;
                const struct cnode *cn = smap_get(&l->nodes, id);
                json_t *ud = NULL;
                if (!known && cn && json_is_string(cn->node->user_data)) {
                        const char *s = json_string_value(cn->node->user_data);
                        ud = json_loads(s, 0, NULL);
                }
                json_t *owner = ud ? json_object_get(ud, "owner") : NULL;
                json_t *label = ud ? json_object_get(ud, "label") : NULL;
                json_t *slots = ud ? json_object_get(ud, "slots") : NULL;
                if (json_is_string(owner) && strcmp(json_string_value(owner), ms->my_id) == 0 && json_is_string(label) &&
                    json_is_integer(slots) && json_integer_value(slots) > 0) {
                        _cleanup_free_ char *dir = npzk_node_lock_path(id);
                        char **names = NULL, **idents = NULL;
                        size_t n = 0;
                        if (zk_lock_contenders(l->zk, dir, &names, &idents, &n) >= 0 && n > 0 && idents[0] &&
                            strcmp(idents[0], ms->my_id) == 0) {
                                struct backing *b = xnew(struct backing, 1);
                                b->label = xstrdup(json_string_value(label));
                                b->slots = json_integer_value(slots);
                                b->node_id = xstrdup(id);
                                b->contender = xasprintf("%s/%s", dir, names[0]);
                                b->failed = json_is_true(json_object_get(ud, "failed"));
                                b->launched = json_number_value(json_object_get(ud, "launched"));
                                b->last_used_ms = loop_now_ms();
                                b->next = ms->backings;
                                ms->backings = b;
                                log_info("metastatic provider %s: found backing node %s for label %s", ms->pv->name,
                                         id, b->label);
                        }
                        zk_strv_free(names);
                        zk_strv_free(idents);
                }
                if (ud) json_decref(ud);
                free(a.ids[i]);
        }
        free(a.ids);
}

static void sync_backing(struct meta_prov *ms, struct backing *b) {
        struct launcher *l = ms->l;
        uint64_t now = loop_now_ms();
        /* Launches waiting too long (launch-timeout) fail. */
        for (struct meta_wait **pp = &b->waits; *pp;) {
                struct meta_wait *w = *pp;
                if (now < w->deadline_ms) {
                        pp = &w->next;
                        continue;
                }
                *pp = w->next;
                log_error("node %s: no backing node within the launch-timeout", w->n->id);
                wait_finish(w, -ETIMEDOUT);
        }
        if (b->request_id) {
                const struct creq *cr = smap_get(&l->requests, b->request_id);
                if (!cr) {
                        if (now - b->requested_ms < REQUEST_UNSEEN_MS) return;
                        log_error("metastatic provider %s: backing request %s vanished", ms->pv->name, b->request_id);
                } else if (cr->req->state == NODE_REQUEST_STATE_FULFILLED) {
                        int r = backing_take(ms, b, cr->req);
                        if (r == -EAGAIN) return;
                        if (r == 0) {
                                backing_place_waits(ms, b);
                                return;
                        }
                } else if (cr->req->state == NODE_REQUEST_STATE_FAILED) {
                        log_error("metastatic provider %s: backing request %s failed", ms->pv->name, b->request_id);
                } else {
                        if (!b->waits) {
                                /* Nobody waits any more (timed out): withdraw the request. */
                                _cleanup_free_ char *rpath = npzk_request_path(b->request_id);
                                (void)zk_delete(l->zk, rpath, -1);
                                backing_unlink(ms, b);
                                backing_free(b);
                        }
                        return;
                }
                if (cr) {
                        /* Failed, or fulfilled with a node we could not take: its node goes back. */
                        _cleanup_free_ char *rpath = npzk_request_path(b->request_id);
                        (void)zk_delete(l->zk, rpath, -1);
                }
                backing_fail_waits(ms, b, -EIO);
                backing_unlink(ms, b);
                backing_free(b);
                return;
        }
        if (!smap_get(&l->nodes, b->node_id)) {
                log_warning("metastatic provider %s: backing node %s is gone", ms->pv->name, b->node_id);
                b->failed = true;
        }
        const struct config_pool_label *pl = label_config(ms, b->label);
        double age = model_now() - b->launched;
        if (pl && pl->max_age && age > (double)pl->max_age && !b->failed) {
                log_info("metastatic provider %s: backing node %s is past max-age: no new nodes on it",
                         ms->pv->name, b->node_id);
                b->failed = true;
        }
        /* A failed node takes no new node: its waiting launches try again elsewhere. */
        if (b->failed) backing_fail_waits(ms, b, -EAGAIN);
        else backing_place_waits(ms, b);
        int64_t free_slot;
        size_t used = slots_used(ms, b, &free_slot);
        if (used > 0 || b->waits) {
                b->last_used_ms = now;
                return;
        }
        /* A label removed from the configuration, or a failed node: returned at once. */
        uint64_t grace = pl && !b->failed ? (uint64_t)pl->grace_time * 1000 : 0;
        double keep = pl && !b->failed ? (double)pl->min_retention_time : 0;
        if (now - b->last_used_ms < grace || age < keep) return;
        _cleanup_free_ char *why = xasprintf("idle for %.1f s", (double)(now - b->last_used_ms) / 1000);
        backing_return(ms, b, why);
}

static void meta_sync(struct launcher_provider *pv, const struct owners *o) {
        struct meta_prov *ms = pv->ms;
        if (!ms || !zk_is_connected(ms->l->zk)) return;
        if (!ms->adopted && pv->launch_ok) {
                ms->adopted = true;
                adopt(ms);
        }
        for (struct backing *b = ms->backings, *next; b; b = next) {
                next = b->next;
                sync_backing(ms, b);
        }
}

static void meta_forget_requests(struct launcher_provider *pv) {
        for (struct meta_wait *w = pv->ms ? pv->ms->scans : NULL; w; w = w->next) {
                free(w->request_id);
                w->request_id = NULL;
        }
        for (struct backing *b = pv->ms ? pv->ms->backings : NULL; b; b = b->next)
                for (struct meta_wait *w = b->waits; w; w = w->next) {
                        free(w->request_id);
                        w->request_id = NULL;
                }
}

/* The provider was retired by a reload (its configuration changed): the sync
 * no longer runs for it, and the new provider adopts the backing nodes we hold
 * (same lock identifier). Launches in flight end (their requests are served
 * anew) and our backing requests are withdrawn. */
static void on_retire_tick(struct loop *loop, struct loop_timer *t, void *ud) {
        struct meta_prov *ms = ud;
        if (!ms->pv->retired || ms->retired_done) return;
        ms->retired_done = true;
        while (ms->scans) {
                struct meta_wait *w = ms->scans;
                ms->scans = w->next;
                wait_finish(w, -ECANCELED);
        }
        while (ms->backings) {
                struct backing *b = ms->backings;
                ms->backings = b->next;
                if (b->request_id) {
                        _cleanup_free_ char *rpath = npzk_request_path(b->request_id);
                        (void)zk_adelete(ms->l->zk, rpath, -1, NULL, NULL);
                }
                backing_fail_waits(ms, b, -ECANCELED);
                backing_free(b);
        }
        log_info("metastatic provider %s: retired; its backing nodes are left to its successor", ms->pv->name);
}

/* ----------------------------------------------------------------- table */

static int meta_open(struct launcher_provider *pv) {
        struct meta_prov *ms = xnew(struct meta_prov, 1);
        ms->l = pv->l;
        ms->pv = pv;
        ms->my_id = xasprintf("NodePool:metastatic:%s", pv->name);
        ms->retire_timer = loop_add_timer(pv->l->loop, 1000, true, on_retire_tick, ms);
        pv->ms = ms;
        return 0;
}

/* Held backing nodes stay locked (persistent contenders): the next run adopts them. */
static void meta_close(struct launcher_provider *pv) {
        struct meta_prov *ms = pv->ms;
        if (!ms) return;
        loop_timer_cancel(ms->retire_timer);
        while (ms->scans) {
                struct meta_wait *w = ms->scans;
                ms->scans = w->next;
                smap_remove(&ms->l->held, w->n->id);
                wait_free(w);
        }
        while (ms->backings) {
                struct backing *b = ms->backings;
                ms->backings = b->next;
                for (struct meta_wait *w = b->waits; w; w = w->next) smap_remove(&ms->l->held, w->n->id);
                backing_free(b);
        }
        free(ms->my_id);
        free(ms);
        pv->ms = NULL;
}

static bool meta_has_label(const struct pool *p, const char *label) { return pool_find_label(p, label) != NULL; }

static const char *meta_never_fits(struct pool *p, const struct node_request *rq, char *buf, size_t sz) {
        int64_t n = 0;
        for (char **t = rq->node_types; *t; t++, n++)
                if (!pool_find_label(p, *t)) {
                        snprintf(buf, sz, "label %s is not in this pool", *t);
                        return buf;
                }
        if (p->cpool->max_servers >= 0 && n > p->cpool->max_servers) {
                snprintf(buf, sz, "%lld nodes exceed max-servers %lld", (long long)n, (long long)p->cpool->max_servers);
                return buf;
        }
        return NULL;
}

static bool meta_minready_offers(struct pool *p, const char *label) { return pool_find_label(p, label) != NULL; }

const struct pool_driver pool_driver_metastatic = {
        .name = "metastatic",
        .open = meta_open,
        .close = meta_close,
        .has_label = meta_has_label,
        .never_fits = meta_never_fits,
        .launch = meta_launch,
        .launch_lease = true,           /* slots and max-servers are decided by one launcher */
        .check_ready = NULL,            /* host-key-checking scans a node as it is placed */
        .delete_instance = NULL,        /* the znode goes, and its slot with it */
        .provider_quota = false,
        .leak_cleanup = false,          /* its sync returns the backing nodes nobody uses */
        .max_ready_age = true,
        .minready_offers = meta_minready_offers,
        .sync = meta_sync,
        .forget_requests = meta_forget_requests,
};
