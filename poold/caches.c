/* caches.c — watched caches of /nodepool/nodes, /nodepool/requests,
 * /nodepool/images and /nodepool/components/pool, decoded into maps.
 *
 * DESIGN. zk_cache keeps the bytes and re-arms watches; on every event we
 * decode the record once into an id → object map and mark the launcher dirty
 * so the passes run before the loop sleeps again (a new request is seen in
 * milliseconds). A malformed record is logged once (by path) and skipped.
 * Image tree depths: 1 image, 3 build, 7 upload; "lock" dirs are ignored;
 * builds and uploads are decoded by nodepool_zk.h, as every reader does. */
#include <string.h>

#include "alloc.h"
#include "json_util.h"
#include "launcher.h"
#include "log.h"

static void bad_record(struct launcher *l, const char *path, const char *msg) {
        if (smap_get(&l->bad_records, path)) return;
        smap_put(&l->bad_records, path, (void *)1);
        log_warning("malformed record %s: %s (skipped)", path, msg);
}

/* The ready index. For each "<provider>\n<pool>\n<label>" a list of the
 * cached nodes a request may reuse, so that try_reuse() looks at candidates
 * only instead of every cached node for every waiting request. A node is
 * linked (once per label of its type list) while READY, unallocated, unlocked
 * in the cache and not being reused by us; every store, removal and change of
 * those facts relinks it, in O(labels). */
struct ready_list {
        struct ready_entry *head, *tail;
};

struct ready_entry {
        struct ready_list *list;
        struct ready_links *links;
        struct ready_entry *prev, *next;
};

struct ready_links {
        char *id;
        size_t n;
        struct ready_entry *e;
};

static bool reusable(struct launcher *l, const char *id, const struct cnode *cn) {
        const struct node *n = cn->node;
        return n && n->state == NODE_STATE_READY && !n->allocated_to && cn->lock_contenders == 0 && n->provider &&
               n->pool && n->type && n->type[0] && !smap_get(&l->reusing, id);
}

static void ready_unlink(struct cnode *cn) {
        struct ready_links *k = TAKE_PTR(cn->ready);
        if (!k) return;
        for (size_t i = 0; i < k->n; i++) {
                struct ready_entry *e = &k->e[i];
                if (e->prev) e->prev->next = e->next;
                else e->list->head = e->next;
                if (e->next) e->next->prev = e->prev;
                else e->list->tail = e->prev;
        }
        free(k->e);
        free(k->id);
        free(k);
}

/* Link or unlink CN (cached as ID) as its current facts say. */
static void ready_relink(struct launcher *l, const char *id, struct cnode *cn) {
        ready_unlink(cn);
        if (!reusable(l, id, cn)) return;
        const struct node *n = cn->node;
        struct ready_links *k = xnew(struct ready_links, 1);
        k->id = xstrdup(id);
        k->n = model_strv_length(n->type);
        k->e = xnew(struct ready_entry, k->n);
        for (size_t i = 0; i < k->n; i++) {
                _cleanup_free_ char *key = xasprintf("%s\n%s\n%s", n->provider, n->pool, n->type[i]);
                struct ready_list *list = smap_get(&l->ready, key);
                if (!list) {
                        list = xnew(struct ready_list, 1);
                        smap_put(&l->ready, key, list);
                }
                struct ready_entry *e = &k->e[i];
                e->list = list;
                e->links = k;
                e->prev = list->tail;
                if (list->tail) list->tail->next = e;
                else list->head = e;
                list->tail = e;
        }
        cn->ready = k;
}

const char *caches_ready_find(struct launcher *l, const char *provider, const char *pool, const char *label,
                              const char *az) {
        _cleanup_free_ char *key = xasprintf("%s\n%s\n%s", provider, pool, label);
        const struct ready_list *list = smap_get(&l->ready, key);
        /* Held nodes are rare here (ours only until the cache sees our lock). */
        for (const struct ready_entry *e = list ? list->head : NULL; e; e = e->next) {
                if (smap_get(&l->held, e->links->id)) continue;
                if (az) {
                        const struct cnode *cn = smap_get(&l->nodes, e->links->id);
                        if (!cn || !cn->node->az || strcmp(cn->node->az, az) != 0) continue;
                }
                return e->links->id;
        }
        return NULL;
}

const char *caches_ready_oldest(struct launcher *l, const struct pool *p) {
        const char *best = NULL;
        double best_time = 0;
        for (size_t i = 0; i < p->cpool->n_labels; i++) {
                _cleanup_free_ char *key = xasprintf("%s\n%s\n%s", p->provider_name, p->name,
                                                     p->cpool->labels[i].name);
                const struct ready_list *list = smap_get(&l->ready, key);
                for (const struct ready_entry *e = list ? list->head : NULL; e; e = e->next) {
                        const char *id = e->links->id;
                        const struct cnode *cn = smap_get(&l->nodes, id);
                        if (!cn || smap_get(&l->held, id)) continue;
                        if (!best || cn->node->state_time < best_time) {
                                best = id;
                                best_time = cn->node->state_time;
                        }
                }
        }
        return best;
}

void caches_ready_update(struct launcher *l, const char *id) {
        struct cnode *cn = smap_get(&l->nodes, id);
        if (cn) ready_relink(l, id, cn);
}

void caches_node_mark_locked(struct launcher *l, const char *id) {
        struct cnode *cn = smap_get(&l->nodes, id);
        if (!cn) return;
        cn->lock_contenders = MAX(cn->lock_contenders, 1u);
        ready_unlink(cn);
}

static void cnode_free(void *v) {
        struct cnode *c = v;
        if (!c) return;
        ready_unlink(c);
        node_free(c->node);
        if (c->acct.other) json_decref(c->acct.other);
        free(c);
}

static const struct usage no_usage;

static struct usage *usage_bucket(struct smap *m, const char *key) {
        struct usage *u = smap_get(m, key);
        if (!u) {
                u = xnew(struct usage, 1);
                smap_put(m, key, u);
        }
        return u;
}

static void usage_add(struct usage *u, int sign, const struct usage *c) {
        if (!u) return;
        u->servers += sign * c->servers;
        u->cores += sign * c->cores;
        u->ram += sign * c->ram;
        u->volumes += sign * c->volumes;
        u->volume_gb += sign * c->volume_gb;
        const char *k;
        json_t *v;
        json_object_foreach(c->other, k, v) {
                if (!u->other) u->other = json_object();
                json_int_t old = json_integer_value(json_object_get(u->other, k));
                json_object_set_new(u->other, k, json_integer(old + sign * json_integer_value(v)));
        }
}

static void usage_free(void *v) {
        struct usage *u = v;
        if (!u) return;
        if (u->other) json_decref(u->other);
        free(u);
}

static void unaccount(struct cnode *cn) {
        usage_add(cn->acct_pool, -1, &cn->acct);
        usage_add(cn->acct_prov, -1, &cn->acct);
        usage_add(cn->acct_tenant, -1, &cn->acct);
        cn->acct_pool = cn->acct_prov = cn->acct_tenant = NULL;
        if (cn->acct.other) json_decref(cn->acct.other);
        cn->acct = (struct usage){};
}

/* A node's cost from its `resources`: the keys Nodepool writes, any other
 * integer key (another driver's quota code) kept for tenant limits. */
static struct usage cost_from_resources(json_t *res) {
        struct usage c = { .servers = 1 };
        const char *k;
        json_t *v;
        json_object_foreach(res, k, v) {
                if (!json_is_integer(v)) continue;
                json_int_t x = json_integer_value(v);
                if (strcmp(k, "cores") == 0) c.cores = x;
                else if (strcmp(k, "ram") == 0) c.ram = x;
                else if (strcmp(k, "volumes") == 0) c.volumes = x;
                else if (strcmp(k, "volume-gb") == 0) c.volume_gb = x;
                else if (strcmp(k, "instances") != 0) {
                        if (!c.other) c.other = json_object();
                        json_object_set_new(c.other, k, json_integer(x));
                }
        }
        return c;
}

/* Count a node as Nodepool does: every node in ZooKeeper until it is gone, at
 * its `resources`, or (older records) at its label's configured size. */
static void account(struct launcher *l, struct cnode *cn) {
        const struct node *n = cn->node;
        struct usage c = { .servers = 1 };
        if (n->resources && json_is_object(n->resources)) {
                c = cost_from_resources(n->resources);
        } else if (n->provider && n->pool && n->type[0] && l->cfg) {
                const struct config_provider *cp = config_find_provider(l->cfg, n->provider);
                const struct config_pool *cpool = cp ? config_find_pool(cp, n->pool) : NULL;
                for (size_t i = 0; cpool && i < cpool->n_labels; i++)
                        if (strcmp(cpool->labels[i].name, n->type[0]) == 0) c = quota_label_cost(&cpool->labels[i]);
        }
        cn->acct = c;
        if (n->provider) {
                cn->acct_prov = usage_bucket(&l->usage_prov, n->provider);
                if (n->pool) {
                        _cleanup_free_ char *key = xasprintf("%s/%s", n->provider, n->pool);
                        cn->acct_pool = usage_bucket(&l->usage_pool, key);
                }
        }
        if (n->tenant_name) cn->acct_tenant = usage_bucket(&l->usage_tenant, n->tenant_name);
        /* Only tenant limits read the other keys: pool and provider sums skip them. */
        struct usage plain = c;
        plain.other = NULL;
        usage_add(cn->acct_pool, 1, &plain);
        usage_add(cn->acct_prov, 1, &plain);
        usage_add(cn->acct_tenant, 1, &c);
}

void caches_node_store(struct launcher *l, const char *id, struct node *n, unsigned lock_contenders) {
        struct cnode *cn = smap_get(&l->nodes, id);
        if (!cn) {
                cn = xnew(struct cnode, 1);
                smap_put(&l->nodes, id, cn);
        } else {
                unaccount(cn);
        }
        node_free(cn->node);
        cn->node = n;
        cn->lock_contenders = lock_contenders;
        account(l, cn);
        ready_relink(l, id, cn);
        if (delete_candidate(cn))
                smap_put(&l->delete_candidates, id, NULL);
        else
                (void)smap_remove(&l->delete_candidates, id);
}

void caches_node_remove(struct launcher *l, const char *id) {
        struct cnode *cn = smap_remove(&l->nodes, id);
        if (!cn) return;
        (void)smap_remove(&l->delete_candidates, id);
        unaccount(cn);
        cnode_free(cn);
}

void caches_usage_reserve(struct launcher *l, const char *provider, const char *pool, const char *tenant,
                          const struct usage *cost, int sign) {
        _cleanup_free_ char *key = xasprintf("%s/%s", provider, pool);
        struct usage plain = *cost;
        plain.other = NULL;
        usage_add(usage_bucket(&l->usage_pool, key), sign, &plain);
        usage_add(usage_bucket(&l->usage_prov, provider), sign, &plain);
        if (tenant) usage_add(usage_bucket(&l->usage_tenant, tenant), sign, cost);
}

static void reaccount_fn(const char *key, void *value, void *ud) {
        struct cnode *cn = value;
        unaccount(cn);
        account(ud, cn);
}

void caches_reaccount(struct launcher *l) { smap_foreach(&l->nodes, reaccount_fn, l); }

const struct usage *caches_usage_pool(struct launcher *l, const char *provider, const char *pool) {
        _cleanup_free_ char *key = xasprintf("%s/%s", provider, pool);
        const struct usage *u = smap_get(&l->usage_pool, key);
        return u ? u : &no_usage;
}

const struct usage *caches_usage_prov(struct launcher *l, const char *provider) {
        const struct usage *u = smap_get(&l->usage_prov, provider);
        return u ? u : &no_usage;
}

const struct usage *caches_usage_tenant(struct launcher *l, const char *tenant) {
        const struct usage *u = tenant ? smap_get(&l->usage_tenant, tenant) : NULL;
        return u ? u : &no_usage;
}

static void creq_free(void *v) {
        struct creq *c = v;
        if (!c) return;
        node_request_free(c->req);
        free(c);
}

static void on_node(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *zn, void *ud) {
        struct launcher *l = ud;
        if (zn->depth != 1) return;
        launcher_kick(l);
        if (ev == ZK_CACHE_REMOVED) {
                caches_node_remove(l, zn->name);
                smap_remove(&l->bad_records, zn->path);
                smap_remove(&l->gone, zn->name);
                return;
        }
        if (zn->len == 0) {
                /* Not a node: a lock taken on a just-deleted node re-creates it empty
                 * (kazoo's ensure_path); cleanup removes such leftovers. */
                caches_node_remove(l, zn->name);
                return;
        }
        struct node *n = NULL;
        struct model_error err;
        if (node_from_json(zn->data, zn->len, zn->name, &n, &err) < 0) {
                bad_record(l, zn->path, err.msg);
                caches_node_remove(l, zn->name);
                return;
        }
        caches_node_store(l, zn->name, n, zn->lock_contenders);
}

static void on_request(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *zn, void *ud) {
        struct launcher *l = ud;
        if (zn->depth != 1) return;
        launcher_kick(l);
        if (ev == ZK_CACHE_REMOVED) {
                creq_free(smap_remove(&l->requests, zn->name));
                smap_remove(&l->bad_records, zn->path);
                return;
        }
        struct node_request *rq = NULL;
        struct model_error err;
        if (node_request_from_json(zn->data, zn->len, zn->name, &rq, &err) < 0) {
                bad_record(l, zn->path, err.msg);
                creq_free(smap_remove(&l->requests, zn->name));
                return;
        }
        struct creq *cr = smap_get(&l->requests, zn->name);
        if (!cr) {
                cr = xnew(struct creq, 1);
                smap_put(&l->requests, zn->name, cr);
        }
        node_request_free(cr->req);
        cr->req = rq;
        cr->version = zn->version;
        minready_request_seen(l, zn->name);
}

/* Builds and uploads, decoded by nodepool_zk (the one decoder of the image
 * tree); its flags, directories and locks are read from the cache directly. */
static void on_image(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *zn, void *ud) {
        struct launcher *l = ud;
        struct npzk_znode z = { .path = zn->path, .data = ev == ZK_CACHE_REMOVED ? NULL : zn->data, .len = zn->len };
        struct image_build *b = NULL;
        struct image_upload *u = NULL;
        struct model_error err;
        int k = npzk_image_record_decode(&z, &b, &u, &err);
        if (k == -EINVAL && ev != ZK_CACHE_REMOVED) bad_record(l, zn->path, "not in Nodepool's schema");
        if (k != NPZK_BUILD && k != NPZK_UPLOAD && k != -EBADMSG) return;
        struct smap *m = zn->depth == 3 ? &l->builds : &l->uploads; /* a record: a build at depth 3, else an upload */
        if (zn->depth == 3)
                image_build_free(smap_remove(m, zn->path));
        else
                image_upload_free(smap_remove(m, zn->path));
        if (k == -EBADMSG) {
                bad_record(l, zn->path, err.msg);
                return;
        }
        if (ev == ZK_CACHE_REMOVED) return;
        smap_put(m, zn->path, b ? (void *)b : (void *)u);
        launcher_kick(l);
}

#define LOST_CHECK_MS 5000

static void on_pool_component(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *zn,
                              void *ud) {
        struct launcher *l = ud;
        /* A launcher's session ended (its ephemeral component went): the requests it
         * had accepted are lost once its request locks go too, which ZooKeeper removes
         * with the same session but may report a moment later. Look for them every
         * tick for a few seconds instead of waiting for the 60 s cleanup pass. */
        if (ev == ZK_CACHE_REMOVED) l->lost_check_until_ms = loop_now_ms() + LOST_CHECK_MS;
        launcher_kick(l);
}

int caches_start(struct launcher *l) {
        _cleanup_free_ char *pool_dir = npzk_component_dir("pool");
        int r;
        if ((r = zk_cache_new(l->zk, NPZK_NODES, 1, ZK_CACHE_TRACK_LOCKS, on_node, l, &l->node_cache)) < 0 ||
            (r = zk_cache_new(l->zk, NPZK_REQUESTS, 1, 0, on_request, l, &l->request_cache)) < 0 ||
            (r = zk_cache_new(l->zk, NPZK_IMAGES, 7, ZK_CACHE_TRACK_LOCKS, on_image, l, &l->image_cache)) < 0 ||
            (r = zk_cache_new(l->zk, pool_dir, 1, 0, on_pool_component, l, &l->pool_cache)) < 0)
                return log_error_errno(r, "cannot create caches: %m");
        if ((r = zk_cache_start(l->node_cache)) < 0 || (r = zk_cache_start(l->request_cache)) < 0 ||
            (r = zk_cache_start(l->image_cache)) < 0 || (r = zk_cache_start(l->pool_cache)) < 0)
                return log_error_errno(r, "cannot start caches: %m");
        return 0;
}

static void free_build(void *v) { image_build_free(v); }
static void free_upload(void *v) { image_upload_free(v); }

void caches_free(struct launcher *l) {
        zk_cache_free(l->node_cache);
        zk_cache_free(l->request_cache);
        zk_cache_free(l->image_cache);
        zk_cache_free(l->pool_cache);
        l->node_cache = l->request_cache = l->image_cache = l->pool_cache = NULL;
        smap_clear(&l->delete_candidates, NULL);
        smap_clear(&l->nodes, cnode_free);
        smap_clear(&l->ready, free); /* empty now: every node unlinked itself */
        smap_clear(&l->usage_pool, usage_free);
        smap_clear(&l->usage_prov, usage_free);
        smap_clear(&l->usage_tenant, usage_free);
        smap_clear(&l->requests, creq_free);
        smap_clear(&l->builds, free_build);
        smap_clear(&l->uploads, free_upload);
        smap_clear(&l->bad_records, NULL);
}

bool caches_synced(struct launcher *l) {
        return l->node_cache && zk_cache_is_synced(l->node_cache) && zk_cache_is_synced(l->request_cache) &&
               zk_cache_is_synced(l->image_cache) && zk_cache_is_synced(l->pool_cache);
}

struct find_upload {
        struct launcher *l;
        const char *image, *provider;
        const struct image_upload *best;
        const char *best_path;
};

static void find_upload_fn(const char *key, void *value, void *ud) {
        struct find_upload *f = ud;
        const struct image_upload *u = value;
        if (u->state != IMAGE_UPLOAD_STATE_READY || strcmp(u->image_name, f->image) != 0 ||
            strcmp(u->provider_name, f->provider) != 0 || !u->external_id)
                return;
        _cleanup_free_ char *bpath = npzk_build_path(u->image_name, u->build_id);
        const struct image_build *b = smap_get(&f->l->builds, bpath);
        if (!b || b->state != IMAGE_BUILD_STATE_READY) return;
        if (!f->best || u->state_time > f->best->state_time) {
                f->best = u;
                f->best_path = key;
        }
}

const struct image_upload *caches_find_upload(struct launcher *l, const char *image, const char *provider,
                                              const char **ret_path) {
        struct find_upload f = { .l = l, .image = image, .provider = provider };
        smap_foreach(&l->uploads, find_upload_fn, &f);
        if (f.best && ret_path) *ret_path = f.best_path;
        return f.best;
}

struct collect {
        json_t **v;
        size_t n, cap;
};

static void collect_fn(const struct zk_cache_node *zn, void *ud) {
        struct collect *c = ud;
        if (zn->depth != 1) return;
        json_error_t jerr;
        json_t *j = json_loadb(zn->data, zn->len, 0, &jerr);
        if (!j || !json_is_object(j)) {
                if (j) json_decref(j);
                return;
        }
        if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 8;
                c->v = xrealloc(c->v, c->cap * sizeof *c->v);
        }
        c->v[c->n++] = j;
}

json_t **caches_pool_components(struct launcher *l, size_t *ret_n) {
        struct collect c = {};
        zk_cache_foreach(l->pool_cache, collect_fn, &c);
        *ret_n = c.n;
        return c.v;
}
