/* webapp_lists.c — the web app's listings, built from the launcher's caches
 * with the same row code poolctl uses (shared/model/listing.h), so the columns and
 * JSON keys match `poolctl`/`nodepool` exactly. Plus two poold additions the
 * status page needs: pool-list (pools, pause reasons, usage) is the "why"
 * behind waiting requests.
 *
 * DESIGN. Reads only loop-owned data, on the loop thread (the HTTP server is
 * driven by the same loop), so no lock. The two listings that grow with the
 * load, nodes and requests, are not built here whole: their rows are kept
 * pre-rendered by webapp_rows.c, through the ops below. Rows are sorted like
 * ZooKeeper's sorted children so listings are stable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "component.h"
#include "json_util.h"
#include "launcher.h"
#include "listing.h"
#include "webapp_internal.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static const char **sorted_keys(const struct smap *m, size_t *ret_n) {
        const char **k = smap_keys(m, ret_n);
        if (*ret_n > 1) qsort(k, *ret_n, sizeof *k, cmp_str);
        return k;
}

static struct table *node_list(struct launcher *l, const char *node_id) {
        struct table *t = listing_node_table(true);
        double now = model_now();
        if (node_id) {
                const struct cnode *cn = smap_get(&l->nodes, node_id);
                if (cn) listing_node_row(t, cn->node, cn->lock_contenders > 0, now);
                return t;
        }
        size_t n = 0;
        const char **ids = sorted_keys(&l->nodes, &n);
        for (size_t i = 0; i < n; i++) {
                const struct cnode *cn = smap_get(&l->nodes, ids[i]);
                listing_node_row(t, cn->node, cn->lock_contenders > 0, now);
        }
        free(ids);
        return t;
}

/* ---- row ops for webapp_rows.c ---- */

static struct smap *node_map(struct launcher *l) { return &l->nodes; }
static struct table *node_table(void) { return listing_node_table(true); }
static json_t *node_version(const void *item) { return ((const struct cnode *)item)->node->raw; }
static bool node_locked(const void *item) { return ((const struct cnode *)item)->lock_contenders > 0; }
static void node_row(struct table *t, const void *item) {
        const struct cnode *cn = item;
        listing_node_row(t, cn->node, cn->lock_contenders > 0, 0);
}
static double node_when(const void *item) { return ((const struct cnode *)item)->node->state_time; }

const struct webapp_rows_ops webapp_node_rows_ops = {
        .map = node_map,
        .new_table = node_table,
        .version = node_version,
        .flag = node_locked,
        .add_row = node_row,
        .when = node_when,
        .dyn_col = LISTING_NODE_AGE,
};

static struct smap *request_map(struct launcher *l) { return &l->requests; }
static json_t *request_version(const void *item) { return ((const struct creq *)item)->req->raw; }
static void request_row(struct table *t, const void *item) { listing_request_row(t, ((const struct creq *)item)->req); }

const struct webapp_rows_ops webapp_request_rows_ops = {
        .map = request_map,
        .new_table = listing_request_table,
        .version = request_version,
        .add_row = request_row,
        .dyn_col = SIZE_MAX,
};

static struct table *request_list(struct launcher *l) {
        struct table *t = listing_request_table();
        size_t n = 0;
        const char **ids = sorted_keys(&l->requests, &n);
        for (size_t i = 0; i < n; i++) {
                const struct creq *cr = smap_get(&l->requests, ids[i]);
                listing_request_row(t, cr->req);
        }
        free(ids);
        return t;
}

/* Image-tree facts from the image cache (flags and the build lock): does the
 * znode at PATH (taken; nodepool_zk.h builds it) exist? */
static bool image_flag(struct launcher *l, char *path, int64_t *ret_ctime) {
        _cleanup_free_ char *p = path;
        const struct zk_cache_node *zn = zk_cache_get(l->image_cache, p);
        if (zn && ret_ctime) *ret_ctime = zn->ctime;
        return zn != NULL;
}

/* Sort key of a build or upload: the path components, compared one by one
 * (so image "a" sorts before "a-b" as names do, not as paths). */
static int cmp_path(const void *a, const void *b) {
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        for (;;) {
                size_t nx = strcspn(x, "/"), ny = strcspn(y, "/");
                size_t n = nx < ny ? nx : ny;
                int c = strncmp(x, y, n);
                if (c) return c;
                if (nx != ny) return nx < ny ? -1 : 1;
                x += nx;
                y += ny;
                if (!*x || !*y) return *x ? 1 : *y ? -1 : 0;
                x++;
                y++;
        }
}

/* Is upload path UP under build path BUILD? */
static bool under_build(const char *up, const char *build) {
        size_t n = strlen(build);
        return strncmp(up, build, n) == 0 && up[n] == '/';
}

static struct table *dib_image_list(struct launcher *l) {
        struct table *t = listing_dib_image_table();
        double now = model_now();
        size_t n = 0, nu = 0;
        const char **paths = smap_keys(&l->builds, &n);
        if (n > 1) qsort(paths, n, sizeof *paths, cmp_path);
        /* Uploads in the same order: each build's are the run that follows its path. */
        const char **upaths = smap_keys(&l->uploads, &nu);
        if (nu > 1) qsort(upaths, nu, sizeof *upaths, cmp_path);
        struct image_upload **ups = xnew(struct image_upload *, nu + 1);
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
                const struct image_build *b = smap_get(&l->builds, paths[i]);
                while (j < nu && cmp_path(&upaths[j], &paths[i]) < 0) j++; /* of no listed build */
                size_t m = 0;
                for (; j < nu && under_build(upaths[j], paths[i]); j++) ups[m++] = smap_get(&l->uploads, upaths[j]);
                struct npzk_path p;
                if (npzk_path_parse(paths[i], &p) < 0) continue; /* the cache keeps build paths only */
                listing_dib_image_row(t, p.image, b, image_flag(l, npzk_image_pause_path(p.image), NULL), ups, m, now);
                npzk_path_done(&p);
        }
        free(ups);
        free(upaths);
        free(paths);
        return t;
}

static struct table *image_list(struct launcher *l) {
        struct table *t = listing_image_table();
        double now = model_now();
        size_t n = 0;
        const char **paths = smap_keys(&l->uploads, &n);
        if (n > 1) qsort(paths, n, sizeof *paths, cmp_path);
        for (size_t i = 0; i < n; i++) listing_image_row(t, smap_get(&l->uploads, paths[i]), now);
        free(paths);
        return t;
}

struct names {
        char **v;
        size_t n, cap;
};

static void names_add(struct names *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i], name) == 0) return;
        if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 16;
                s->v = xrealloc(s->v, s->cap * sizeof *s->v);
        }
        s->v[s->n++] = xstrdup(name);
}

static void names_done(struct names *s) {
        for (size_t i = 0; i < s->n; i++) free(s->v[i]);
        free(s->v);
}

static void image_name_fn(const struct zk_cache_node *zn, void *ud) {
        if (zn->depth == 1) names_add(ud, zn->name);
}

static struct table *image_status(struct launcher *l) {
        struct table *t = listing_image_status_table();
        double now = model_now();
        struct names s = {};
        zk_cache_foreach(l->image_cache, image_name_fn, &s);
        if (s.n > 1) qsort(s.v, s.n, sizeof *s.v, cmp_str);
        for (size_t i = 0; i < s.n; i++) {
                int64_t ctime = 0;
                bool requested = image_flag(l, npzk_image_request_build_path(s.v[i]), &ctime);
                _cleanup_free_ char *bp = npzk_builds_path(s.v[i]);
                const struct zk_cache_node *builds = zk_cache_get(l->image_cache, bp);
                listing_image_status_row(t, s.v[i], image_flag(l, npzk_image_pause_path(s.v[i]), NULL), requested,
                                         builds && builds->lock_contenders > 0, (double)ctime / 1000.0, now);
        }
        names_done(&s);
        return t;
}

static struct table *label_list(struct launcher *l) {
        struct table *t = listing_label_table();
        struct names s = {};
        size_t n = 0;
        json_t **comps = caches_pool_components(l, &n);
        for (size_t i = 0; i < n; i++) {
                json_t *labels = json_object_get(comps[i], "supported_labels");
                size_t k;
                json_t *v;
                json_array_foreach(labels, k, v)
                        if (json_is_string(v)) names_add(&s, json_string_value(v));
                json_decref(comps[i]);
        }
        free(comps);
        if (s.n > 1) qsort(s.v, s.n, sizeof *s.v, cmp_str);
        for (size_t i = 0; i < s.n; i++) listing_label_row(t, s.v[i]);
        names_done(&s);
        return t;
}

/* poold's own: our pools, whether they are paused and why, and their usage. */
static struct table *pool_list(struct launcher *l) {
        static const struct table_column cols[] = {
                { "provider", "Provider" }, { "pool", "Pool" },       { "id", "ID" },
                { "labels", "Labels" },     { "paused", "Paused" },   { "pause_reason", "Pause Reason" },
                { "servers", "Servers" },   { "max_servers", "Max Servers" },
                { "active_launches", "Launching" },
        };
        struct table *t = table_new(cols, ELEMENTSOF(cols));
        for (size_t i = 0; i < l->n_pools; i++) {
                const struct pool *p = l->pools[i];
                if (p->retired || !p->cpool) continue;
                const struct usage *u = caches_usage_pool(l, p->provider_name, p->name);
                int64_t servers = u ? u->servers : 0;
                char **labels = model_strv_new();
                for (size_t k = 0; k < p->cpool->n_labels; k++) model_strv_push(&labels, p->cpool->labels[k].name);
                table_add_row(t);
                table_set_str(t, 0, p->provider_name);
                table_set_str(t, 1, p->name);
                table_set_str(t, 2, p->id);
                table_set_strv(t, 3, labels);
                table_set(t, 4, p->paused ? "True" : "False", json_boolean(p->paused));
                table_set_str(t, 5, p->paused ? p->pause_reason : NULL);
                table_set_int(t, 6, servers);
                if (p->cpool->max_servers >= 0)
                        table_set_int(t, 7, p->cpool->max_servers);
                else
                        table_set(t, 7, "unlimited", NULL);
                table_set_int(t, 8, p->active_launches);
                model_strv_free(labels);
        }
        return t;
}

struct table *webapp_list(struct launcher *l, const char *name, const char *node_id) {
        if (strcmp(name, "node-list") == 0) return node_list(l, node_id);
        if (strcmp(name, "request-list") == 0) return request_list(l);
        if (strcmp(name, "image-list") == 0) return image_list(l);
        if (strcmp(name, "dib-image-list") == 0) return dib_image_list(l);
        if (strcmp(name, "image-status") == 0) return image_status(l);
        if (strcmp(name, "label-list") == 0) return label_list(l);
        if (strcmp(name, "pool-list") == 0) return pool_list(l);
        return NULL;
}

bool webapp_ready(struct launcher *l) {
        if (l->stopping || !l->zk || !zk_is_connected(l->zk) || !caches_synced(l)) return false;
        for (size_t i = 0; i < l->n_pools; i++) {
                const struct pool *p = l->pools[i];
                if (!p->retired && (!p->component || !component_path(p->component))) return false;
        }
        return true;
}
