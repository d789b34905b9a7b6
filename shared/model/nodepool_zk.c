/* nodepool_zk.c — see nodepool_zk.h.
 *
 * DESIGN. Paths are parsed by splitting below /nodepool into components and
 * matching them against the schema's shapes, so a path has exactly one kind
 * or none. The image tree is built from znodes in any order (a zk_cache walk
 * has none): each znode creates the entries of its ancestors, and a record
 * met again replaces the one kept. */
#include "nodepool_zk.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

/* Depth of the deepest path we parse: images/<i>/builds/<b>/providers/<p>/images/<u>/lock. */
#define MAX_PARTS 10

bool npzk_name_ok(const char *name) {
        return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

char *npzk_request_path(const char *id) { return xasprintf(NPZK_REQUESTS "/%s", id); }
char *npzk_request_prefix(int priority) { return xasprintf(NPZK_REQUESTS "/%03d-", priority); }
char *npzk_request_lock_path(const char *id) { return xasprintf(NPZK_REQUEST_LOCKS "/%s", id); }
char *npzk_node_path(const char *id) { return xasprintf(NPZK_NODES "/%s", id); }
char *npzk_node_lock_path(const char *id) { return xasprintf(NPZK_NODES "/%s/" NPZK_LOCK, id); }
char *npzk_lock_path(const char *path) { return xasprintf("%s/" NPZK_LOCK, path); }

char *npzk_image_path(const char *image) { return xasprintf(NPZK_IMAGES "/%s", image); }
char *npzk_image_pause_path(const char *image) { return xasprintf(NPZK_IMAGES "/%s/pause", image); }
char *npzk_image_request_build_path(const char *image) { return xasprintf(NPZK_IMAGES "/%s/request-build", image); }
char *npzk_builds_path(const char *image) { return xasprintf(NPZK_IMAGES "/%s/builds", image); }
char *npzk_build_lock_path(const char *image) { return xasprintf(NPZK_IMAGES "/%s/builds/" NPZK_LOCK, image); }

char *npzk_build_path(const char *image, const char *build_id) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s", image, build_id);
}

char *npzk_providers_path(const char *image, const char *build_id) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s/providers", image, build_id);
}

char *npzk_provider_path(const char *image, const char *build_id, const char *provider) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s/providers/%s", image, build_id, provider);
}

char *npzk_uploads_path(const char *image, const char *build_id, const char *provider) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s/providers/%s/images", image, build_id, provider);
}

char *npzk_upload_lock_path(const char *image, const char *build_id, const char *provider) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s/providers/%s/images/" NPZK_LOCK, image, build_id, provider);
}

char *npzk_upload_path(const char *image, const char *build_id, const char *provider, const char *upload_id) {
        return xasprintf(NPZK_IMAGES "/%s/builds/%s/providers/%s/images/%s", image, build_id, provider, upload_id);
}

char *npzk_component_dir(const char *kind) { return xasprintf(NPZK_COMPONENTS "/%s", kind); }
char *npzk_component_prefix(const char *kind, const char *hostname) {
        return xasprintf(NPZK_COMPONENTS "/%s/%s", kind, hostname);
}
char *npzk_election_path(const char *name) { return xasprintf(NPZK_ELECTIONS "/%s", name); }

char *npzk_poold_lock_path(const char *kind, const char *name, const char *sub) {
        return sub ? xasprintf(NPZK_POOLD_LOCKS "/%s/%s/%s", kind, name, sub)
                   : xasprintf(NPZK_POOLD_LOCKS "/%s/%s", kind, name);
}

/* ---------------------------------------------------------------- parsing */

/* Split PATH below "/nodepool/" into at most MAX_PARTS valid components
 * (pointers into COPY, which the caller frees); -EINVAL otherwise. */
static int split(const char *path, char **ret_copy, char *parts[MAX_PARTS], size_t *ret_n) {
        static const char root[] = NPZK_ROOT "/";
        if (!path || strncmp(path, root, sizeof root - 1) != 0) return -EINVAL;
        char *copy = xstrdup(path + sizeof root - 1);
        size_t n = 0;
        for (char *p = copy;;) {
                char *slash = strchr(p, '/');
                if (slash) *slash = 0;
                if (n == MAX_PARTS || !npzk_name_ok(p)) {
                        free(copy);
                        return -EINVAL;
                }
                parts[n++] = p;
                if (!slash) break;
                p = slash + 1;
        }
        *ret_copy = copy;
        *ret_n = n;
        return 0;
}

static bool is(const char *part, const char *literal) { return strcmp(part, literal) == 0; }
/* An id, image, build, provider or upload: anything but the lock child. */
static bool id_ok(const char *part) { return !is(part, NPZK_LOCK); }

/* The kind of PARTS (N of them), or _NPZK_KIND_INVALID. */
static enum npzk_kind classify(char **parts, size_t n) {
        if (n < 2 || !id_ok(parts[1])) return _NPZK_KIND_INVALID;
        if (is(parts[0], "requests")) return n == 2 ? NPZK_REQUEST : _NPZK_KIND_INVALID;
        if (is(parts[0], "requests-lock")) return n == 2 ? NPZK_REQUEST_LOCK : _NPZK_KIND_INVALID;
        if (is(parts[0], "nodes")) {
                if (n == 2) return NPZK_NODE;
                return n == 3 && is(parts[2], NPZK_LOCK) ? NPZK_NODE_LOCK : _NPZK_KIND_INVALID;
        }
        if (!is(parts[0], "images")) return _NPZK_KIND_INVALID;
        if (n == 2) return NPZK_IMAGE;
        if (n == 3) {
                if (is(parts[2], "pause")) return NPZK_IMAGE_PAUSE;
                if (is(parts[2], "request-build")) return NPZK_IMAGE_REQUEST;
                return is(parts[2], "builds") ? NPZK_BUILDS : _NPZK_KIND_INVALID;
        }
        if (!is(parts[2], "builds")) return _NPZK_KIND_INVALID;
        if (n == 4) return is(parts[3], NPZK_LOCK) ? NPZK_BUILD_LOCK : NPZK_BUILD;
        if (!id_ok(parts[3])) return _NPZK_KIND_INVALID;
        if (n == 5) {
                if (is(parts[4], NPZK_LOCK)) return NPZK_BUILD_RECORD_LOCK;
                return is(parts[4], "providers") ? NPZK_PROVIDERS : _NPZK_KIND_INVALID;
        }
        if (!is(parts[4], "providers") || !id_ok(parts[5])) return _NPZK_KIND_INVALID;
        if (n == 6) return NPZK_PROVIDER;
        if (!is(parts[6], "images")) return _NPZK_KIND_INVALID;
        if (n == 7) return NPZK_UPLOADS;
        if (n == 8) return is(parts[7], NPZK_LOCK) ? NPZK_UPLOAD_LOCK : NPZK_UPLOAD;
        return n == 9 && id_ok(parts[7]) && is(parts[8], NPZK_LOCK) ? NPZK_UPLOAD_RECORD_LOCK : _NPZK_KIND_INVALID;
}

int npzk_path_parse(const char *path, struct npzk_path *ret) {
        char *copy = NULL, *parts[MAX_PARTS];
        size_t n = 0;
        int r = split(path, &copy, parts, &n);
        if (r < 0) return r;
        enum npzk_kind k = classify(parts, n);
        if (k < 0) {
                free(copy);
                return -EINVAL;
        }
        struct npzk_path p = { .kind = k };
        if (k <= NPZK_NODE_LOCK)
                p.id = xstrdup(parts[1]);
        else {
                p.image = xstrdup(parts[1]);
                if (k >= NPZK_BUILD) p.build_id = xstrdup(parts[3]);
                if (k >= NPZK_PROVIDER) p.provider = xstrdup(parts[5]);
                if (k >= NPZK_UPLOAD) p.upload_id = xstrdup(parts[7]);
        }
        free(copy);
        *ret = p;
        return 0;
}

void npzk_path_done(struct npzk_path *p) {
        if (!p) return;
        free(p->id);
        free(p->image);
        free(p->build_id);
        free(p->provider);
        free(p->upload_id);
        *p = (struct npzk_path){ .kind = _NPZK_KIND_INVALID };
}

char *npzk_path_format(const struct npzk_path *p) {
        _cleanup_free_ char *dir = NULL;
        switch (p->kind) {
        case NPZK_REQUEST: return npzk_request_path(p->id);
        case NPZK_REQUEST_LOCK: return npzk_request_lock_path(p->id);
        case NPZK_NODE: return npzk_node_path(p->id);
        case NPZK_NODE_LOCK: return npzk_node_lock_path(p->id);
        case NPZK_IMAGE: return npzk_image_path(p->image);
        case NPZK_IMAGE_PAUSE: return npzk_image_pause_path(p->image);
        case NPZK_IMAGE_REQUEST: return npzk_image_request_build_path(p->image);
        case NPZK_BUILDS: return npzk_builds_path(p->image);
        case NPZK_BUILD_LOCK: return npzk_build_lock_path(p->image);
        case NPZK_BUILD: return npzk_build_path(p->image, p->build_id);
        case NPZK_BUILD_RECORD_LOCK:
                dir = npzk_build_path(p->image, p->build_id);
                return npzk_lock_path(dir);
        case NPZK_PROVIDERS: return npzk_providers_path(p->image, p->build_id);
        case NPZK_PROVIDER: return npzk_provider_path(p->image, p->build_id, p->provider);
        case NPZK_UPLOADS: return npzk_uploads_path(p->image, p->build_id, p->provider);
        case NPZK_UPLOAD_LOCK: return npzk_upload_lock_path(p->image, p->build_id, p->provider);
        case NPZK_UPLOAD: return npzk_upload_path(p->image, p->build_id, p->provider, p->upload_id);
        case NPZK_UPLOAD_RECORD_LOCK:
                dir = npzk_upload_path(p->image, p->build_id, p->provider, p->upload_id);
                return npzk_lock_path(dir);
        default: return NULL;
        }
}

/* ---------------------------------------------------------------- the image tree */

bool npzk_kind_in_image_tree(enum npzk_kind k) { return k >= NPZK_IMAGE && k < _NPZK_KIND_MAX; }

int npzk_image_record_decode(const struct npzk_znode *zn, struct image_build **ret_build,
                             struct image_upload **ret_upload, struct model_error *err) {
        struct npzk_path p;
        int r = npzk_path_parse(zn->path, &p);
        if (r < 0) return r;
        enum npzk_kind k = p.kind;
        if (!npzk_kind_in_image_tree(k)) {
                npzk_path_done(&p);
                return -EINVAL;
        }
        if (!zn->data || (k == NPZK_BUILD && !ret_build) || (k == NPZK_UPLOAD && !ret_upload) ||
            (k != NPZK_BUILD && k != NPZK_UPLOAD)) {
                npzk_path_done(&p);
                return k;
        }
        if (zn->len == 0) {
                npzk_path_done(&p);
                return model_error_set(err, EBADMSG, "no data");
        }
        if (k == NPZK_BUILD) {
                r = image_build_from_json(zn->data, zn->len, p.build_id, ret_build, err);
        } else {
                struct image_upload *u = NULL;
                r = image_upload_from_json(zn->data, zn->len, p.upload_id, &u, err);
                if (r >= 0) {
                        u->image_name = TAKE_PTR(p.image);
                        u->build_id = TAKE_PTR(p.build_id);
                        u->provider_name = TAKE_PTR(p.provider);
                        *ret_upload = u;
                }
        }
        npzk_path_done(&p);
        return r < 0 ? -EBADMSG : (int)k;
}

struct npzk_image *npzk_images_find(const struct npzk_images *t, const char *image) {
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->images[i].name, image) == 0) return &t->images[i];
        return NULL;
}

struct npzk_provider *npzk_build_provider(const struct npzk_build *b, const char *provider) {
        for (size_t i = 0; b && i < b->n; i++)
                if (strcmp(b->provs[i].name, provider) == 0) return &b->provs[i];
        return NULL;
}

static struct npzk_image *image_add(struct npzk_images *t, const char *name) {
        struct npzk_image *im = npzk_images_find(t, name);
        if (im) return im;
        t->images = xrealloc(t->images, (t->n + 1) * sizeof *t->images);
        im = &t->images[t->n++];
        *im = (struct npzk_image){ .name = xstrdup(name) };
        return im;
}

static struct npzk_build *build_add(struct npzk_image *im, const char *id) {
        for (size_t i = 0; i < im->n; i++)
                if (strcmp(im->builds[i].id, id) == 0) return &im->builds[i];
        im->builds = xrealloc(im->builds, (im->n + 1) * sizeof *im->builds);
        struct npzk_build *b = &im->builds[im->n++];
        *b = (struct npzk_build){ .id = xstrdup(id), .path = npzk_build_path(im->name, id) };
        return b;
}

static struct npzk_provider *prov_add(struct npzk_build *b, const char *name) {
        struct npzk_provider *p = npzk_build_provider(b, name);
        if (p) return p;
        b->provs = xrealloc(b->provs, (b->n + 1) * sizeof *b->provs);
        p = &b->provs[b->n++];
        *p = (struct npzk_provider){ .name = xstrdup(name) };
        return p;
}

static struct npzk_upload *upload_add(struct npzk_provider *p, const char *image, const char *build_id,
                                      const char *id) {
        for (size_t i = 0; i < p->n; i++)
                if (strcmp(p->ups[i].id, id) == 0) return &p->ups[i];
        p->ups = xrealloc(p->ups, (p->n + 1) * sizeof *p->ups);
        struct npzk_upload *u = &p->ups[p->n++];
        *u = (struct npzk_upload){ .id = xstrdup(id), .path = npzk_upload_path(image, build_id, p->name, id) };
        return u;
}

/* Keep a copy of the raw record (NUL-terminated) in *data and its length in *len. */
static void keep_data(char **data, size_t *len, const struct npzk_znode *zn) {
        free(*data);
        *data = xmalloc(zn->len + 1);
        memcpy(*data, zn->data, zn->len);
        (*data)[zn->len] = 0;
        *len = zn->len;
}

int npzk_images_add(struct npzk_images *t, const struct npzk_znode *zn, struct model_error *err) {
        struct npzk_path p;
        int r = npzk_path_parse(zn->path, &p);
        if (r < 0) return r;
        enum npzk_kind k = p.kind;
        if (!npzk_kind_in_image_tree(k)) {
                npzk_path_done(&p);
                return -EINVAL;
        }
        /* Lock directories are counted on what they lock (lock_contenders). */
        if (k == NPZK_BUILD_LOCK || k == NPZK_BUILD_RECORD_LOCK || k == NPZK_UPLOAD_LOCK ||
            k == NPZK_UPLOAD_RECORD_LOCK) {
                npzk_path_done(&p);
                return k;
        }
        struct image_build *build = NULL;
        struct image_upload *upload = NULL;
        r = npzk_image_record_decode(zn, &build, &upload, err);

        struct npzk_image *im = image_add(t, p.image);
        struct npzk_build *b = p.build_id ? build_add(im, p.build_id) : NULL;
        struct npzk_provider *pr = p.provider ? prov_add(b, p.provider) : NULL;
        switch (k) {
        case NPZK_IMAGE_PAUSE: im->paused = true; break;
        case NPZK_IMAGE_REQUEST:
                im->requested = true;
                im->request_time = (double)zn->ctime_ms / 1000.0;
                break;
        case NPZK_BUILDS: im->build_lock = zn->lock_contenders; break;
        case NPZK_BUILD:
                b->lock = zn->lock_contenders;
                if (!zn->data) break;
                keep_data(&b->data, &b->len, zn);
                image_build_free(b->b);
                b->b = build;
                break;
        case NPZK_UPLOADS: pr->upload_lock = zn->lock_contenders; break;
        case NPZK_UPLOAD: {
                struct npzk_upload *u = upload_add(pr, p.image, p.build_id, p.upload_id);
                u->lock = zn->lock_contenders;
                if (!zn->data) break;
                keep_data(&u->data, &u->len, zn);
                image_upload_free(u->u);
                u->u = upload;
                break;
        }
        default: break;
        }
        npzk_path_done(&p);
        return r;
}

static int cmp_image(const void *a, const void *b) {
        return strcmp(((const struct npzk_image *)a)->name, ((const struct npzk_image *)b)->name);
}
static int cmp_build(const void *a, const void *b) {
        return strcmp(((const struct npzk_build *)a)->id, ((const struct npzk_build *)b)->id);
}
static int cmp_provider(const void *a, const void *b) {
        return strcmp(((const struct npzk_provider *)a)->name, ((const struct npzk_provider *)b)->name);
}
static int cmp_upload(const void *a, const void *b) {
        return strcmp(((const struct npzk_upload *)a)->id, ((const struct npzk_upload *)b)->id);
}

void npzk_images_sort(struct npzk_images *t) {
        if (t->n > 1) qsort(t->images, t->n, sizeof *t->images, cmp_image);
        for (size_t i = 0; i < t->n; i++) {
                struct npzk_image *im = &t->images[i];
                if (im->n > 1) qsort(im->builds, im->n, sizeof *im->builds, cmp_build);
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_build *b = &im->builds[j];
                        if (b->n > 1) qsort(b->provs, b->n, sizeof *b->provs, cmp_provider);
                        for (size_t k = 0; k < b->n; k++)
                                if (b->provs[k].n > 1)
                                        qsort(b->provs[k].ups, b->provs[k].n, sizeof *b->provs[k].ups, cmp_upload);
                }
        }
}

void npzk_images_done(struct npzk_images *t) {
        for (size_t i = 0; i < t->n; i++) {
                struct npzk_image *im = &t->images[i];
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_build *b = &im->builds[j];
                        for (size_t k = 0; k < b->n; k++) {
                                struct npzk_provider *p = &b->provs[k];
                                for (size_t m = 0; m < p->n; m++) {
                                        free(p->ups[m].id);
                                        free(p->ups[m].path);
                                        free(p->ups[m].data);
                                        image_upload_free(p->ups[m].u);
                                }
                                free(p->ups);
                                free(p->name);
                        }
                        free(b->provs);
                        free(b->id);
                        free(b->path);
                        free(b->data);
                        image_build_free(b->b);
                }
                free(im->builds);
                free(im->name);
        }
        free(t->images);
        *t = (struct npzk_images){};
}
