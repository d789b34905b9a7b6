/* bw_snap.c — /nodepool/images as a tree of decoded records.
 *
 * DESIGN. Built from the watched cache for every pass (a few hundred records
 * at most: decoding them is cheaper than keeping a second mirror in sync).
 * A record that does not decode is kept with a NULL pointer and logged once,
 * so passes neither use nor delete data they do not understand. */
#include <string.h>

#include "alloc.h"
#include "bw.h"
#include "log.h"

struct bw_image_rec *bw_snap_image(struct bw_snap *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->images[i].name, name) == 0) return &s->images[i];
        return NULL;
}

static struct bw_image_rec *image_add(struct bw_snap *s, const char *name) {
        struct bw_image_rec *im = bw_snap_image(s, name);
        if (im) return im;
        s->images = xrealloc(s->images, (s->n + 1) * sizeof *s->images);
        im = &s->images[s->n++];
        *im = (struct bw_image_rec){ .name = xstrdup(name) };
        return im;
}

static struct bw_build_rec *build_add(struct bw_image_rec *im, const char *id) {
        for (size_t i = 0; i < im->n; i++)
                if (strcmp(im->builds[i].id, id) == 0) return &im->builds[i];
        im->builds = xrealloc(im->builds, (im->n + 1) * sizeof *im->builds);
        struct bw_build_rec *b = &im->builds[im->n++];
        *b = (struct bw_build_rec){ .id = xstrdup(id) };
        b->path = xasprintf(BW_IMAGE_ROOT "/%s/builds/%s", im->name, id);
        return b;
}

struct bw_prov_rec *bw_snap_prov(struct bw_build_rec *b, const char *provider) {
        for (size_t i = 0; i < b->n; i++)
                if (strcmp(b->provs[i].name, provider) == 0) return &b->provs[i];
        return NULL;
}

static struct bw_prov_rec *prov_add(struct bw_build_rec *b, const char *name) {
        struct bw_prov_rec *p = bw_snap_prov(b, name);
        if (p) return p;
        b->provs = xrealloc(b->provs, (b->n + 1) * sizeof *b->provs);
        p = &b->provs[b->n++];
        *p = (struct bw_prov_rec){ .name = xstrdup(name) };
        return p;
}

static struct bw_upload_rec *upload_add(struct bw_prov_rec *p, const char *id, const char *build_path) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->ups[i].id, id) == 0) return &p->ups[i];
        p->ups = xrealloc(p->ups, (p->n + 1) * sizeof *p->ups);
        struct bw_upload_rec *u = &p->ups[p->n++];
        *u = (struct bw_upload_rec){ .id = xstrdup(id) };
        u->path = xasprintf("%s/providers/%s/images/%s", build_path, p->name, id);
        return u;
}

struct load_ctx {
        struct bw *w;
        struct bw_snap *s;
};

static void malformed(struct bw *w, const char *path, const char *why) {
        if (smap_contains(&w->bad, path)) return;
        smap_put(&w->bad, path, NULL);
        log_warning("malformed record %s (%s): skipped and kept", path, why);
}

static void on_node(const struct zk_cache_node *node, void *ud) {
        struct load_ctx *c = ud;
        const char *rel = node->path + strlen(BW_IMAGE_ROOT);
        if (*rel != '/') return;
        /* Split into at most 7 components. */
        char *parts[8] = {};
        _cleanup_free_ char *copy = xstrdup(rel + 1);
        size_t n = 0;
        for (char *save = NULL, *t = strtok_r(copy, "/", &save); t && n < 8; t = strtok_r(NULL, "/", &save))
                parts[n++] = t;
        if (n == 0 || n > 7) return;

        struct bw_image_rec *im = image_add(c->s, parts[0]);
        if (n == 1) return;
        if (n == 2) {
                if (strcmp(parts[1], "pause") == 0) im->paused = true;
                else if (strcmp(parts[1], "request-build") == 0) {
                        im->requested = true;
                        im->request_time = (double)node->ctime / 1000.0;
                }
                else if (strcmp(parts[1], "builds") == 0) im->build_lock = node->lock_contenders;
                return;
        }
        if (strcmp(parts[1], "builds") != 0) return;
        struct bw_build_rec *b = build_add(im, parts[2]);
        if (n == 3) {
                b->lock = node->lock_contenders;
                struct model_error err = {};
                image_build_free(b->b);
                b->b = NULL;
                if (node->len == 0 || image_build_from_json(node->data, node->len, parts[2], &b->b, &err) < 0)
                        malformed(c->w, node->path, node->len == 0 ? "no data" : err.msg);
                else
                        smap_remove(&c->w->bad, node->path);
                return;
        }
        if (strcmp(parts[3], "providers") != 0 || n < 5) return;
        struct bw_prov_rec *p = prov_add(b, parts[4]);
        if (n == 5) return;
        if (strcmp(parts[5], "images") != 0) return;
        if (n == 6) {
                p->upload_lock = node->lock_contenders;
                return;
        }
        struct bw_upload_rec *u = upload_add(p, parts[6], b->path);
        u->lock = node->lock_contenders;
        struct model_error err = {};
        image_upload_free(u->u);
        u->u = NULL;
        if (node->len == 0 || image_upload_from_json(node->data, node->len, parts[6], &u->u, &err) < 0) {
                malformed(c->w, node->path, node->len == 0 ? "no data" : err.msg);
                return;
        }
        smap_remove(&c->w->bad, node->path);
        u->u->build_id = xstrdup(b->id);
        u->u->provider_name = xstrdup(p->name);
        u->u->image_name = xstrdup(im->name);
}

void bw_snap_load(struct bw *w, struct bw_snap *ret) {
        struct bw_snap s = {};
        struct load_ctx c = { .w = w, .s = &s };
        zk_cache_foreach(w->cache, on_node, &c);
        *ret = s;
}

void bw_snap_done(struct bw_snap *s) {
        for (size_t i = 0; i < s->n; i++) {
                struct bw_image_rec *im = &s->images[i];
                for (size_t j = 0; j < im->n; j++) {
                        struct bw_build_rec *b = &im->builds[j];
                        for (size_t k = 0; k < b->n; k++) {
                                struct bw_prov_rec *p = &b->provs[k];
                                for (size_t m = 0; m < p->n; m++) {
                                        free(p->ups[m].id);
                                        free(p->ups[m].path);
                                        image_upload_free(p->ups[m].u);
                                }
                                free(p->ups);
                                free(p->name);
                        }
                        free(b->provs);
                        free(b->id);
                        free(b->path);
                        image_build_free(b->b);
                }
                free(im->builds);
                free(im->name);
        }
        free(s->images);
        *s = (struct bw_snap){};
}

struct bw_build_rec *bw_snap_newest_ready(struct bw_image_rec *img) {
        struct bw_build_rec *best = NULL;
        for (size_t i = 0; img && i < img->n; i++) {
                struct bw_build_rec *b = &img->builds[i];
                if (!b->b || b->b->state != IMAGE_BUILD_STATE_READY) continue;
                if (!best || b->b->state_time > best->b->state_time) best = b;
        }
        return best;
}

struct bw_build_rec *bw_snap_newest_finished(struct bw_image_rec *img) {
        struct bw_build_rec *best = NULL;
        for (size_t i = 0; img && i < img->n; i++) {
                struct bw_build_rec *b = &img->builds[i];
                if (!b->b || (b->b->state != IMAGE_BUILD_STATE_READY && b->b->state != IMAGE_BUILD_STATE_FAILED))
                        continue;
                if (!best || b->b->state_time > best->b->state_time) best = b;
        }
        return best;
}

int bw_snap_read_newest(struct bw *w, const char *image, struct bw_newest *ret) {
        _cleanup_free_ char *dir = xasprintf(BW_IMAGE_ROOT "/%s/builds", image);
        char **kids = NULL;
        size_t n = 0;
        int r = zk_get_children(w->b->zk, dir, &kids, &n);
        struct bw_newest nw = { .failures = -1, .retry_time = MODEL_TIME_NONE };
        if (r == -ENOENT) {
                *ret = nw;
                return 0;
        }
        if (r < 0) return r;
        bool have_finished = false;
        double finished_time = 0;
        for (size_t i = 0; i < n; i++) {
                if (strcmp(kids[i], "lock") == 0) continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, kids[i]), *data = NULL;
                size_t len = 0;
                if (zk_get(w->b->zk, path, &data, &len, NULL) < 0 || len == 0) continue;
                _cleanup_(image_build_freep) struct image_build *b = NULL;
                if (image_build_from_json(data, len, kids[i], &b, NULL) < 0) continue;
                bool ready = b->state == IMAGE_BUILD_STATE_READY, failed = b->state == IMAGE_BUILD_STATE_FAILED;
                if (ready && (!nw.have_ready || b->state_time > nw.ready_time)) {
                        nw.have_ready = true;
                        nw.ready_time = b->state_time;
                        model_strv_free(nw.ready_formats);
                        nw.ready_formats = model_strv_copy(b->formats);
                }
                if ((ready || failed) && (!have_finished || b->state_time > finished_time)) {
                        have_finished = true;
                        finished_time = b->state_time;
                        nw.failed = failed;
                        nw.failed_time = b->state_time;
                        nw.failures = b->failures;
                        nw.retry_time = b->retry_time;
                }
        }
        zk_strv_free(kids);
        *ret = nw;
        return 0;
}

int bw_snap_read_has_ready_upload(struct bw *w, const char *image, const char *build_id, const char *provider) {
        _cleanup_free_ char *dir = NULL;
        int r = image_path_upload_dir(image, build_id, provider, &dir);
        if (r < 0) return r;
        char **kids = NULL;
        size_t n = 0;
        r = zk_get_children(w->b->zk, dir, &kids, &n);
        if (r == -ENOENT) return 0;
        if (r < 0) return r;
        bool ready = false;
        for (size_t i = 0; i < n && !ready; i++) {
                if (strcmp(kids[i], "lock") == 0) continue;
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, kids[i]), *data = NULL;
                size_t len = 0;
                if (zk_get(w->b->zk, path, &data, &len, NULL) < 0 || len == 0) continue;
                _cleanup_(image_upload_freep) struct image_upload *u = NULL;
                if (image_upload_from_json(data, len, kids[i], &u, NULL) < 0) continue;
                ready = u->state == IMAGE_UPLOAD_STATE_READY;
        }
        zk_strv_free(kids);
        return ready;
}
