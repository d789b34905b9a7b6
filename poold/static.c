/* static.c — the static driver (protocol.md §2.5): nodes registered from config.
 *
 * DESIGN. static_nodes.h decides (a pure plan over config + cached nodes +
 * scan results); this file applies it on every pass: REGISTER creates a READY
 * znode (and puts it in the cache at once so the next plan sees the slot
 * taken), UPDATE and DEREGISTER lock the node without waiting, re-read it and
 * rewrite it (`deleting` for a deregistration: the delete pass then removes
 * the znode without any cloud call). A host that needs a scan (ssh with
 * host-key-checking: host keys; other connection types: a port check) gets
 * one keyscan on the loop; its result is kept for a while (a failure only
 * briefly, so a host that comes back is registered again) and the plan runs
 * again when it arrives. A used node is deleted like any other and its slot,
 * now free, is registered again as a new READY node — Nodepool's
 * re-registration. Before a ready node is handed out, the host's port is
 * checked (liveness, host-key-checking hosts only); a dead host's node is set
 * `deleting`, its scan forgotten, and the request tries another node.
 * With several launchers, only the provider's owner plans, and it applies a
 * plan under a lock all launchers share, made from ZooKeeper's current node
 * listing (see the DESIGN note above sync_prov()).
 * A provider whose configuration changes gets a new struct launcher_provider (pool.c), so
 * nothing here has to notice reloads. Everything runs on the loop thread.
 * The launcher core reaches all of this through pool_driver_static (end of
 * file): it launches nothing, needs no launch lease, and has no cloud quota,
 * leaks or max-ready-age. */
#include <string.h>

#include "alloc.h"
#include "keyscan.h"
#include "launcher.h"
#include "log.h"
#include "pool_driver.h"
#include "static_nodes.h"
#include "zk_lock.h"
#include "zk_update.h"

#define SCAN_OK_TTL_MS 60000     /* a successful scan serves registrations this long */
#define SCAN_FAIL_TTL_MS 3000    /* a failed one is retried after this */

struct static_scan {
        struct static_prov *st;
        char *name, *username;
        int64_t port;
        struct keyscan *scan;   /* in flight, else NULL */
        bool done;
        int error;
        char **keys;
        uint64_t time_ms;
};

struct liveness {
        struct static_prov *st;
        char *node_id, *request_id;
        size_t slot;
        struct zk_lock *lock;
        struct keyscan *scan;
        char *name, *username;
        int64_t port;
        struct liveness *next;
};

struct static_prov {
        struct launcher *l;
        struct launcher_provider *pv;
        struct static_scan **scans;
        size_t n_scans;
        struct liveness *checks;
        struct smap warned;     /* plan warnings already logged */
        bool identity_error_logged;
        uint64_t last_sync_ms;  /* when sync_prov() last ran */
        struct loop_timer *resync; /* a pass after a skipped sync, or NULL */
};

static void scan_free(struct static_scan *s) {
        if (!s) return;
        keyscan_cancel(s->scan);
        keyscan_strv_free(s->keys);
        free(s->name);
        free(s->username);
        free(s);
}

static void liveness_free(struct liveness *c) {
        keyscan_cancel(c->scan);
        if (c->lock) {
                zk_lock_release_async(c->lock);
                zk_lock_free(c->lock);
        }
        free(c->node_id);
        free(c->request_id);
        free(c->name);
        free(c->username);
        free(c);
}

static void static_prov_free(struct static_prov *st) {
        if (!st) return;
        for (size_t i = 0; i < st->n_scans; i++) scan_free(st->scans[i]);
        free(st->scans);
        while (st->checks) {
                struct liveness *c = st->checks;
                st->checks = c->next;
                liveness_free(c);
        }
        smap_clear(&st->warned, NULL);
        loop_timer_cancel(st->resync);
        free(st);
}

static const char *uname(const char *u) { return u ? u : "zuul"; }

static struct static_scan *scan_find(struct static_prov *st, const char *name, const char *username, int64_t port) {
        for (size_t i = 0; i < st->n_scans; i++) {
                struct static_scan *s = st->scans[i];
                if (s->port == port && strcmp(s->name, name) == 0 && strcmp(s->username, uname(username)) == 0)
                        return s;
        }
        return NULL;
}

static void scan_forget(struct static_prov *st, const char *name, const char *username, int64_t port) {
        for (size_t i = 0; i < st->n_scans; i++) {
                struct static_scan *s = st->scans[i];
                if (s->port != port || strcmp(s->name, name) != 0 || strcmp(s->username, uname(username)) != 0)
                        continue;
                scan_free(s);
                st->scans[i] = st->scans[--st->n_scans];
                return;
        }
}

static void on_scan(int error, char **keys, const char *msg, void *ud) {
        struct static_scan *s = ud;
        s->scan = NULL;
        s->done = true;
        s->error = error;
        s->keys = keys;
        s->time_ms = loop_now_ms();
        if (error < 0)
                log_warning("static node %s:%lld (%s) failed its check: %s", s->name, (long long)s->port, s->username,
                            msg ? msg : strerror(-error));
        else
                log_info("static node %s:%lld (%s) scanned: %zu host key(s)", s->name, (long long)s->port,
                         s->username, model_strv_length(keys));
        launcher_kick(s->st->l);
}

static void scan_start(struct static_prov *st, const struct config_static_node *h) {
        if (scan_find(st, h->name, h->username, h->connection_port)) return;
        struct static_scan *s = xnew(struct static_scan, 1);
        s->st = st;
        s->name = xstrdup(h->name);
        s->username = xstrdup(uname(h->username));
        s->port = h->connection_port;
        st->scans = xrealloc(st->scans, (st->n_scans + 1) * sizeof *st->scans);
        st->scans[st->n_scans++] = s;
        uint64_t timeout = (uint64_t)(h->timeout > 0 ? h->timeout : 5) * 1000;
        int r = keyscan_start(st->l->loop, h->name, (int)h->connection_port, timeout, h->connection_type, on_scan, s,
                              &s->scan);
        if (r < 0) {
                s->done = true;
                s->error = r;
                s->time_ms = loop_now_ms();
        }
}

/* Drop expired results (not in flight) so the plan asks for a new scan. */
static void scans_expire(struct static_prov *st) {
        uint64_t now = loop_now_ms();
        for (size_t i = 0; i < st->n_scans;) {
                struct static_scan *s = st->scans[i];
                uint64_t ttl = s->error < 0 ? SCAN_FAIL_TTL_MS : SCAN_OK_TTL_MS;
                if (s->done && now - s->time_ms >= ttl) {
                        scan_free(s);
                        st->scans[i] = st->scans[--st->n_scans];
                        continue;
                }
                i++;
        }
}

static void do_register(struct static_prov *st, struct static_nodes_action *a) {
        struct launcher *l = st->l;
        _cleanup_free_ char *data = NULL, *created = NULL;
        size_t len;
        if (node_to_json(a->node, &data, &len) < 0) return;
        int r = zk_create(l->zk, NPZK_NODES "/", data, len, ZK_SEQUENCE | ZK_MAKEPATH, &created);
        if (r < 0) {
                log_warning_errno(r, "static node %s: cannot register: %m", a->host->name);
                return;
        }
        const char *id = strrchr(created, '/') + 1;
        struct node *n = TAKE_PTR(a->node);
        model_set_str(&n->id, id);
        log_info("static node %s registered as node %s (pool %s, slot %lld)", a->host->name, id, a->pool->name,
                 (long long)a->slot);
        /* In the cache at once: the next plan must see this slot taken. */
        caches_node_store(l, id, n, 0);
        launcher_kick(l);
}

static void unlock(struct zk_lock *lock) {
        zk_lock_release_async(lock);
        zk_lock_free(lock);
}

/* Static-node edits under the node's lock (zkrec_node_update: blocking, as is
 * the rest of this synchronous pass). WRITING: the edit asked for a write. */
struct static_edit {
        const struct static_nodes_action *action;
        char *hostname;
        bool writing;
};

static int update_edit(struct node *n, void *ud) {
        struct static_edit *e = ud;
        if (n->state != NODE_STATE_READY || n->allocated_to) return ZK_UPDATE_NO_WRITE;
        static_nodes_apply_update(e->action, n);
        e->writing = true;
        return ZK_UPDATE_WRITE;
}

static void do_update(struct static_prov *st, const struct static_nodes_action *a, const char *id) {
        struct static_edit e = { .action = a };
        int r = zkrec_node_update(st->l, id, NULL, update_edit, &e);
        if (!e.writing) return;
        if (r < 0) log_warning_errno(r, "static node %s: cannot update: %m", id);
        else log_info("static node %s (%s) updated from the configuration", id, a->host->name);
}

static int deregister_edit(struct node *n, void *ud) {
        struct static_edit *e = ud;
        if (!static_nodes_may_deregister(n, false)) return ZK_UPDATE_NO_WRITE;
        node_set_state(n, NODE_STATE_DELETING);
        e->hostname = xstrdup(n->hostname ? n->hostname : "?");
        e->writing = true;
        return ZK_UPDATE_WRITE;
}

static void do_deregister(struct static_prov *st, const char *id, const char *why) {
        struct static_edit e = {};
        int r = zkrec_node_update(st->l, id, NULL, deregister_edit, &e);
        _cleanup_free_ char *hostname = e.hostname;
        if (!e.writing) return;
        if (r < 0) log_warning_errno(r, "static node %s: cannot deregister: %m", id);
        else log_info("static node %s (%s) deregistered: %s", id, hostname, why);
}

static int set_deleting_edit(struct node *n, void *ud) {
        bool *writing = ud;
        node_set_state(n, NODE_STATE_DELETING);
        *writing = true;
        return ZK_UPDATE_WRITE;
}

/* The nodes a plan is made from: borrowed from the cache or owned (read fresh). */
struct view {
        struct launcher *l;
        const char *provider;
        const struct node **nodes;
        bool *locked;
        char **ids;
        size_t n, cap;
        struct node **owned;
        size_t n_owned;
};

static void view_add(struct view *v, const char *id, const struct node *n, bool locked) {
        if (v->n == v->cap) {
                v->cap = v->cap ? 2 * v->cap : 16;
                v->nodes = xrealloc(v->nodes, v->cap * sizeof *v->nodes);
                v->locked = xrealloc(v->locked, v->cap * sizeof *v->locked);
                v->ids = xrealloc(v->ids, v->cap * sizeof *v->ids);
        }
        v->nodes[v->n] = n;
        v->locked[v->n] = locked;
        v->ids[v->n] = xstrdup(id);
        v->n++;
}

static void view_done(struct view *v) {
        for (size_t i = 0; i < v->n; i++) free(v->ids[i]);
        for (size_t i = 0; i < v->n_owned; i++) node_free(v->owned[i]);
        free(v->nodes);
        free(v->locked);
        free(v->ids);
        free(v->owned);
}

static bool ours(const struct view *v, const struct node *n) {
        return n->provider && strcmp(n->provider, v->provider) == 0;
}

static void cached_fn(const char *key, void *value, void *ud) {
        struct view *v = ud;
        const struct cnode *cn = value;
        if (!ours(v, cn->node) || smap_get(&v->l->gone, key)) return;
        view_add(v, key, cn->node, cn->lock_contenders > 0 || smap_get(&v->l->held, key));
}

/* The provider's nodes as ZooKeeper has them now, for a plan made under the
 * registration lock: which nodes exist comes from a fresh listing (the cache
 * may not have seen a registration another launcher made just before it
 * released the lock); their content from the cache when it has them, else
 * read now. A cached record can only be older than the truth, and a static
 * node's state only moves towards `deleting` (its identity and slot never
 * change), so an old record never shows a slot as free that is taken. */
static int view_fresh(struct view *v) {
        struct launcher *l = v->l;
        char **children = NULL;
        size_t n = 0;
        int r = zk_get_children(l->zk, NPZK_NODES, &children, &n);
        if (r == -ENOENT) return 0;
        if (r < 0) return r;
        v->owned = xnew(struct node *, n + 1);
        for (size_t i = 0; i < n; i++) {
                const char *id = children[i];
                if (smap_get(&l->gone, id)) continue;
                const struct cnode *cn = smap_get(&l->nodes, id);
                if (cn) {
                        if (ours(v, cn->node))
                                view_add(v, id, cn->node, cn->lock_contenders > 0 || smap_get(&l->held, id));
                        continue;
                }
                _cleanup_free_ char *path = npzk_node_path(id), *data = NULL;
                size_t len;
                struct node *nd = NULL;
                struct model_error err;
                /* Gone meanwhile, or not a node (empty, malformed: the cache logs those). */
                if (zk_get(l->zk, path, &data, &len, NULL) < 0 || len == 0 ||
                    node_from_json(data, len, id, &nd, &err) < 0)
                        continue;
                v->owned[v->n_owned++] = nd;
                if (ours(v, nd)) view_add(v, id, nd, false);
        }
        zk_strv_free(children);
        return 0;
}

/* Plan from V. WARN: log the plan's warnings (only for a fresh view: the cache
 * still shows for a moment nodes other launchers deleted, which look excess). */
static int plan_view(struct static_prov *st, const struct view *v, bool warn, struct static_nodes_plan **ret) {
        struct launcher_provider *pv = st->pv;
        struct static_nodes_scan *scans = xnew(struct static_nodes_scan, st->n_scans + 1);
        size_t ns = 0;
        for (size_t i = 0; i < st->n_scans; i++) {
                const struct static_scan *s = st->scans[i];
                if (!s->done) continue;
                scans[ns++] = (struct static_nodes_scan){ .name = s->name, .username = s->username, .port = s->port,
                                                          .error = s->error, .keys = s->keys };
        }
        _cleanup_free_ char *err = NULL;
        int r = static_nodes_plan(pv->cp, v->nodes, v->locked, v->n, scans, ns, ret, &err);
        free(scans);
        if (r < 0) {
                if (!st->identity_error_logged) log_error("static provider %s: %s", pv->name, err ? err : strerror(-r));
                st->identity_error_logged = true;
                return r;
        }
        for (char **w = (*ret)->warnings; warn && *w; w++)
                if (!smap_get(&st->warned, *w)) {
                        smap_put(&st->warned, *w, (void *)1);
                        log_warning("static provider %s: %s", pv->name, *w);
                }
        return 0;
}

/* Start the scans the plan asks for; returns how many actions can run now. */
static size_t plan_scans(struct static_prov *st, const struct static_nodes_plan *plan) {
        size_t runnable = 0;
        for (size_t i = 0; i < plan->n_actions; i++) {
                if (plan->actions[i].needs_scan) scan_start(st, plan->actions[i].host);
                else runnable++;
        }
        return runnable;
}

static void plan_apply(struct static_prov *st, struct static_nodes_plan *plan, const struct view *v) {
        for (size_t i = 0; i < plan->n_actions; i++) {
                struct static_nodes_action *a = &plan->actions[i];
                if (a->needs_scan) continue;
                switch (a->kind) {
                case STATIC_NODES_REGISTER:
                        do_register(st, a);
                        break;
                case STATIC_NODES_UPDATE:
                        if (a->index < v->n) do_update(st, a, v->ids[a->index]);
                        break;
                case STATIC_NODES_DEREGISTER:
                        if (a->index < v->n) do_deregister(st, v->ids[a->index], "not (or no longer) configured");
                        break;
                default:
                        break;
                }
        }
}

/* DESIGN (several launchers). Registering is a decision every launcher could
 * make from its own cache, and two made at once put two nodes in one slot (a
 * host then runs more than max-parallel-jobs jobs). Nodepool serialises its
 * registrations with a lock inside one process only. Here: (1) one launcher
 * does a provider's registrations, the owner of the provider by rendezvous
 * hashing over the live pools serving it (owner.c) — the others do not even
 * plan; (2) because two launchers can both believe they are the owner while
 * one comes or goes, the owner plans from its cache and, only when that plan
 * has something to do, takes the provider's registration lock
 * (NPZK_POOLD_LOCKS/static-registration/<provider>, non-blocking: a
 * busy lock means another launcher is at it, and we look again at the next
 * pass), plans again from ZooKeeper's current listing (view_fresh) and applies
 * that plan before releasing. Our creates are sent before the release, so the
 * next holder's listing has them. Updates and deregistrations also lock the
 * node itself and re-read it (do_update, do_deregister). */
static void sync_prov(struct launcher *l, struct launcher_provider *pv) {
        struct static_prov *st = pv->st;
        scans_expire(st);
        struct view v = { .l = l, .provider = pv->name };
        smap_foreach(&l->nodes, cached_fn, &v);
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *plan = NULL;
        int r = plan_view(st, &v, false, &plan);
        view_done(&v);
        if (r < 0) return;
        size_t runnable = plan_scans(st, plan);
        /* What follows calls ZooKeeper synchronously: not while it is away. */
        if (!zk_is_connected(l->zk)) return;
        if (runnable == 0) {
                bool news = false;
                for (char **w = plan->warnings; *w && !news; w++) news = !smap_get(&st->warned, *w);
                if (news) {
                        /* Something to report: say it only if ZooKeeper's listing agrees. */
                        struct view fresh = { .l = l, .provider = pv->name };
                        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *check = NULL;
                        if (view_fresh(&fresh) >= 0) (void)plan_view(st, &fresh, true, &check);
                        view_done(&fresh);
                }
                return;
        }

        _cleanup_free_ char *lpath = owners_lock_path("static-registration", pv->name, NULL),
                            *lid = owners_lock_id(l);
        struct zk_lock *lock = NULL;
        r = zk_lock_try_new(l->zk, lpath, lid, &lock);
        if (r != 1) {
                if (r < 0) log_debug_errno(r, "static provider %s: registration lock: %m", pv->name);
                return;
        }
        struct view fresh = { .l = l, .provider = pv->name };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *plan2 = NULL;
        r = view_fresh(&fresh);
        if (r < 0) log_warning_errno(r, "static provider %s: cannot list nodes: %m", pv->name);
        else if (plan_view(st, &fresh, true, &plan2) >= 0 && plan_scans(st, plan2) > 0) plan_apply(st, plan2, &fresh);
        view_done(&fresh);
        unlock(lock);
}

static void on_resync(struct loop *loop, struct loop_timer *t, void *ud) {
        struct static_prov *st = ud;
        st->resync = NULL;
        launcher_kick(st->l);
}

/* Passes run on every cache change, and a plan walks every cached node: with
 * a thousand slots, planning on each of a burst's events was most of the
 * launcher's CPU. So at most every STATIC_SYNC_MS; a skipped sync runs at
 * the end of the interval (a timer kicks the passes). */
#define STATIC_SYNC_MS 100

/* Each pass: bring the registered nodes in line with config and cache (register,
 * update, deregister; scans started as needed). */
static void static_drv_sync(struct launcher_provider *pv, const struct owners *o) {
        struct static_prov *st = pv->st;
        if (!owners_mine(o, pv->name, pv->name, NULL, NULL)) return;
        uint64_t now = loop_now_ms();
        if (st->last_sync_ms && now - st->last_sync_ms < STATIC_SYNC_MS) {
                if (!st->resync)
                        st->resync = loop_add_timer(st->l->loop, STATIC_SYNC_MS - (now - st->last_sync_ms), false,
                                                    on_resync, st);
                return;
        }
        st->last_sync_ms = now;
        sync_prov(pv->l, pv);
}

static void on_liveness(int error, char **keys, const char *msg, void *ud) {
        struct liveness *c = ud;
        struct static_prov *st = c->st;
        struct launcher *l = st->l;
        c->scan = NULL;
        keyscan_strv_free(keys);
        for (struct liveness **pp = &st->checks; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        if (error >= 0) {
                request_slot_done(l, c->request_id, c->slot, 0, TAKE_PTR(c->lock));
                liveness_free(c);
                return;
        }
        log_warning("static node %s (%s:%lld) failed its liveness check: %s; deregistering it", c->node_id, c->name,
                    (long long)c->port, msg ? msg : strerror(-error));
        /* Under the lock we hold (released by the update). */
        bool writing = false;
        int r = zkrec_node_update(l, c->node_id, TAKE_PTR(c->lock), set_deleting_edit, &writing);
        if (r < 0 && writing) log_warning_errno(r, "static node %s: cannot set deleting: %m", c->node_id);
        /* Register the host again only after a new successful scan. */
        scan_forget(st, c->name, c->username, c->port);
        smap_remove(&l->held, c->node_id); /* unguarded even when its handler went meanwhile */
        request_slot_done(l, c->request_id, c->slot, -EAGAIN, NULL);
        liveness_free(c);
}

/* Before handing node ID (locked by us) out: the liveness check (pool_driver.h check_ready). */
static int static_check_liveness(struct pool *p, const char *id, struct zk_lock *lock, const char *request_id,
                                 size_t slot) {
        struct launcher *l = p->l;
        const struct cnode *cn = smap_get(&l->nodes, id);
        if (!cn || !p->cpool || !p->prov->st) return 0;
        const struct node *n = cn->node;
        const struct config_static_node *h = NULL;
        for (size_t i = 0; i < p->cpool->n_nodes && !h; i++) {
                const struct config_static_node *c = &p->cpool->nodes[i];
                if (n->hostname && strcmp(c->name, n->hostname) == 0 && strcmp(uname(c->username), uname(n->username)) == 0 &&
                    c->connection_port == n->connection_port)
                        h = c;
        }
        /* Nodepool checks only hosts with host-key-checking, with a bare TCP connect. */
        if (!h || !h->host_key_checking) return 0;
        struct liveness *c = xnew(struct liveness, 1);
        c->st = p->prov->st;
        c->node_id = xstrdup(id);
        c->request_id = xstrdup(request_id);
        c->slot = slot;
        c->name = xstrdup(h->name);
        c->username = xstrdup(uname(h->username));
        c->port = h->connection_port;
        uint64_t timeout = (uint64_t)(h->timeout > 0 ? h->timeout : 5) * 1000;
        /* A connection type that gathers no keys makes keyscan a port check. */
        int r = keyscan_start(l->loop, h->name, (int)h->connection_port, timeout, "tcp-port", on_liveness, c, &c->scan);
        if (r < 0) {
                c->lock = NULL;
                liveness_free(c);
                return 0;
        }
        c->lock = lock;
        c->next = c->st->checks;
        c->st->checks = c;
        return 1;
}

static void static_forget_requests(struct launcher_provider *pv) {
        for (struct liveness *c = pv->st ? pv->st->checks : NULL; c; c = c->next) {
                free(c->request_id);
                c->request_id = NULL;
        }
}

/* Every launcher needs the state (liveness checks); only the provider's owner plans. */
static int static_open(struct launcher_provider *pv) {
        pv->st = xnew(struct static_prov, 1);
        pv->st->l = pv->l;
        pv->st->pv = pv;
        return 0;
}

static void static_close(struct launcher_provider *pv) {
        static_prov_free(pv->st);
        pv->st = NULL;
}

/* A static pool offers its nodes' labels. */
static bool static_has_label(const struct pool *p, const char *label) {
        for (size_t i = 0; i < p->cpool->n_nodes; i++)
                for (size_t k = 0; k < p->cpool->nodes[i].labels.n; k++)
                        if (strcmp(p->cpool->nodes[i].labels.items[k], label) == 0) return true;
        return false;
}

/* Slots (max-parallel-jobs) of the pool's hosts that have LABEL, or any of
 * LABELS when LABEL is NULL. */
static int64_t slots_for(const struct config_pool *cp, const char *label, char *const *labels) {
        int64_t n = 0;
        for (size_t i = 0; i < cp->n_nodes; i++) {
                const struct config_static_node *sn = &cp->nodes[i];
                bool has = false;
                for (char *const *t = labels; !label && t && *t && !has; t++) has = config_strv_contains(&sn->labels, *t);
                if (label) has = config_strv_contains(&sn->labels, label);
                if (has) n += sn->max_parallel_jobs > 0 ? sn->max_parallel_jobs : 1;
        }
        return n;
}

/* A request this pool can never hold (Nodepool's static handler declines it):
 * a label no host has, more nodes of a label than its hosts have slots, or
 * more nodes than the slots of every host with a requested label. Accepted,
 * it would take the ready nodes it can and wait for the rest forever, starving
 * every other request. */
static const char *static_never_fits(struct pool *p, const struct node_request *rq, char *buf, size_t sz) {
        size_t total = 0;
        for (char **t = rq->node_types; *t; t++, total++)
                if (!pool_has_label(p, *t)) {
                        snprintf(buf, sz, "label %s is not on any static node of this pool", *t);
                        return buf;
                }
        if (!p->cpool) return NULL;
        for (char **t = rq->node_types; *t; t++) {
                int64_t want = 0;
                for (char **u = rq->node_types; *u; u++) want += strcmp(*t, *u) == 0;
                int64_t have = slots_for(p->cpool, *t, NULL);
                if (want > have) {
                        snprintf(buf, sz, "%lld %s nodes requested; the pool's hosts with that label have %lld slot%s",
                                 (long long)want, *t, (long long)have, have == 1 ? "" : "s");
                        return buf;
                }
        }
        int64_t have = slots_for(p->cpool, NULL, rq->node_types);
        if ((int64_t)total > have) {
                snprintf(buf, sz, "%zu nodes requested; the pool's hosts with those labels have %lld slot%s", total,
                         (long long)have, have == 1 ? "" : "s");
                return buf;
        }
        return NULL;
}

/* Min-ready counts a static label's ready nodes like any other label's. */
static bool static_minready_offers(struct pool *p, const char *label) { return pool_has_label(p, label); }

const struct pool_driver pool_driver_static = {
        .name = "static",
        .open = static_open,
        .close = static_close,
        .has_label = static_has_label,
        .never_fits = static_never_fits,
        .launch = NULL,                 /* hands out registered nodes only */
        .launch_lease = false,          /* it launches nothing: no limits to decide */
        .check_ready = static_check_liveness,
        .delete_instance = NULL,        /* the znode goes, the sync registers the slot again */
        .provider_quota = false,
        .leak_cleanup = false,
        .max_ready_age = false,         /* the configured machines themselves never age out */
        .minready_offers = static_minready_offers,
        .sync = static_drv_sync,
        .forget_requests = static_forget_requests,
};
