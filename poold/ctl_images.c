/* ctl_images.c — the image subcommands of poolctl: dib-image-list,
 * image-list, image-status, image-build, image-delete, dib-image-delete,
 * image-pause, image-unpause (protocol.md §1.3, §1.6, §3.1).
 *
 * DESIGN. These only edit ZooKeeper records; the builder daemon acts on
 * them. The tree under /nodepool/images is read level by level, each level
 * as one pipelined batch (ctl_read_many). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "ctl.h"
#include "listing.h"
#include "log.h"
#include "model_image.h"
#include "provider.h"
#include "provider_params.h"
#include "table.h"
#include "zk.h"

/* ---------------------------------------------------------------- tree */

#define RD(o, p) ((struct ctl_read){ .op = (o), .path = (p) })

void ctl_images_done(struct ctl_images *t) {
        for (size_t i = 0; i < t->n_images; i++) {
                struct ctl_image *im = &t->images[i];
                for (size_t j = 0; j < im->n_builds; j++) {
                        struct ctl_build *b = &im->builds[j];
                        for (size_t k = 0; k < b->n_uploads; k++) {
                                struct ctl_upload *u = &b->uploads[k];
                                free(u->provider);
                                free(u->id);
                                free(u->path);
                                free(u->data);
                                image_upload_free(u->upload);
                        }
                        free(b->uploads);
                        free(b->id);
                        free(b->path);
                        free(b->data);
                        image_build_free(b->build);
                }
                free(im->builds);
                free(im->name);
        }
        free(t->images);
        *t = (struct ctl_images){};
}

/* Where a level-3/4 read belongs. */
struct ref {
        size_t image, build, upload;
        const char *provider;
};

int ctl_images_load(struct zk *zk, struct ctl_images *ret) {
        struct ctl_images t = {};
        char **names = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, "/nodepool/images", &names, &n);
        if (r < 0) return r;
        t.images = xnew(struct ctl_image, n + 1);
        t.n_images = n;
        for (size_t i = 0; i < n; i++) t.images[i].name = xstrdup(names[i]);
        zk_strv_free(names);

        /* Level 1: flags and build lists. */
        enum { L1_PAUSE, L1_REQUEST, L1_BUILDS, L1_LOCK, _L1_MAX };
        struct ctl_read *l1 = xnew(struct ctl_read, n * _L1_MAX + 1);
        for (size_t i = 0; i < n; i++) {
                const char *im = t.images[i].name;
                l1[i * _L1_MAX + L1_PAUSE] = RD(CTL_READ_EXISTS, xasprintf("/nodepool/images/%s/pause", im));
                l1[i * _L1_MAX + L1_REQUEST] =
                        RD(CTL_READ_EXISTS, xasprintf("/nodepool/images/%s/request-build", im));
                l1[i * _L1_MAX + L1_BUILDS] = RD(CTL_READ_CHILDREN, xasprintf("/nodepool/images/%s/builds", im));
                l1[i * _L1_MAX + L1_LOCK] =
                        RD(CTL_READ_EXISTS, xasprintf("/nodepool/images/%s/builds/lock", im));
        }
        r = ctl_read_many(zk, l1, n * _L1_MAX);
        size_t n2 = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct ctl_image *im = &t.images[i];
                struct ctl_read *rd = &l1[i * _L1_MAX];
                im->paused = rd[L1_PAUSE].r == 0;
                im->build_requested = rd[L1_REQUEST].r == 0;
                im->request_ctime_ms = rd[L1_REQUEST].ctime_ms;
                im->building = rd[L1_LOCK].r == 0 && rd[L1_LOCK].num_children > 0;
                if (rd[L1_BUILDS].r != 0) continue;
                im->builds = xnew(struct ctl_build, rd[L1_BUILDS].n_children + 1);
                for (size_t j = 0; j < rd[L1_BUILDS].n_children; j++) {
                        const char *b = rd[L1_BUILDS].children[j];
                        if (strcmp(b, "lock") == 0) continue;
                        struct ctl_build *cb = &im->builds[im->n_builds++];
                        cb->id = xstrdup(b);
                        cb->path = xasprintf("/nodepool/images/%s/builds/%s", im->name, b);
                        n2++;
                }
        }
        ctl_reads_free(l1, n * _L1_MAX);

        /* Level 2: build records and their providers. */
        struct ctl_read *l2 = xnew(struct ctl_read, 2 * n2 + 1);
        struct ref *refs2 = xnew(struct ref, n2 + 1);
        size_t k = 0;
        for (size_t i = 0; r >= 0 && i < n; i++)
                for (size_t j = 0; j < t.images[i].n_builds; j++) {
                        const char *path = t.images[i].builds[j].path;
                        l2[2 * k] = RD(CTL_READ_GET, xstrdup(path));
                        l2[2 * k + 1] = RD(CTL_READ_CHILDREN, xasprintf("%s/providers", path));
                        refs2[k++] = (struct ref){ .image = i, .build = j };
                }
        if (r >= 0) r = ctl_read_many(zk, l2, 2 * k);
        size_t n3 = 0;
        for (size_t x = 0; r >= 0 && x < k; x++) {
                struct ctl_build *b = &t.images[refs2[x].image].builds[refs2[x].build];
                struct ctl_read *g = &l2[2 * x], *p = &l2[2 * x + 1];
                if (g->r == 0) {
                        b->data = TAKE_PTR(g->data);
                        b->len = g->len;
                        struct model_error err = {};
                        if (image_build_from_json(b->data, b->len, b->id, &b->build, &err) < 0)
                                log_warning("malformed build record %s: %s", b->path, err.msg);
                }
                if (p->r == 0) n3 += p->n_children;
        }

        /* Level 3: upload lists per (build, provider). */
        struct ctl_read *l3 = xnew(struct ctl_read, n3 + 1);
        struct ref *refs3 = xnew(struct ref, n3 + 1);
        size_t k3 = 0;
        for (size_t x = 0; r >= 0 && x < k; x++) {
                struct ctl_read *p = &l2[2 * x + 1];
                if (p->r != 0) continue;
                const char *path = t.images[refs2[x].image].builds[refs2[x].build].path;
                for (size_t y = 0; y < p->n_children; y++) {
                        l3[k3] = RD(CTL_READ_CHILDREN, xasprintf("%s/providers/%s/images", path, p->children[y]));
                        refs3[k3++] = (struct ref){ .image = refs2[x].image, .build = refs2[x].build,
                                                    .provider = p->children[y] };
                }
        }
        if (r >= 0) r = ctl_read_many(zk, l3, k3);
        size_t n4 = 0;
        for (size_t x = 0; r >= 0 && x < k3; x++) n4 += l3[x].r == 0 ? l3[x].n_children : 0;

        /* Level 4: upload records. */
        struct ctl_read *l4 = xnew(struct ctl_read, n4 + 1);
        struct ref *refs4 = xnew(struct ref, n4 + 1);
        size_t k4 = 0;
        for (size_t x = 0; r >= 0 && x < k3; x++) {
                if (l3[x].r != 0) continue;
                struct ctl_build *b = &t.images[refs3[x].image].builds[refs3[x].build];
                b->uploads = xrealloc(b->uploads, (b->n_uploads + l3[x].n_children + 1) * sizeof *b->uploads);
                for (size_t y = 0; y < l3[x].n_children; y++) {
                        const char *u = l3[x].children[y];
                        if (strcmp(u, "lock") == 0) continue;
                        struct ctl_upload *cu = &b->uploads[b->n_uploads];
                        *cu = (struct ctl_upload){ .provider = xstrdup(refs3[x].provider), .id = xstrdup(u),
                                                   .path = xasprintf("%s/%s", l3[x].path, u) };
                        l4[k4] = RD(CTL_READ_GET, xstrdup(cu->path));
                        refs4[k4++] = (struct ref){ .image = refs3[x].image, .build = refs3[x].build,
                                                    .upload = b->n_uploads };
                        b->n_uploads++;
                }
        }
        if (r >= 0) r = ctl_read_many(zk, l4, k4);
        for (size_t x = 0; r >= 0 && x < k4; x++) {
                struct ctl_image *im = &t.images[refs4[x].image];
                struct ctl_build *b = &im->builds[refs4[x].build];
                struct ctl_upload *u = &b->uploads[refs4[x].upload];
                if (l4[x].r != 0) continue; /* vanished: data stays NULL, listings skip it */
                u->data = TAKE_PTR(l4[x].data);
                u->len = l4[x].len;
                struct model_error err = {};
                if (image_upload_from_json(u->data, u->len, u->id, &u->upload, &err) < 0) {
                        log_warning("malformed upload record %s: %s", u->path, err.msg);
                        continue;
                }
                u->upload->build_id = xstrdup(b->id);
                u->upload->provider_name = xstrdup(u->provider);
                u->upload->image_name = xstrdup(im->name);
        }
        ctl_reads_free(l2, 2 * k);
        ctl_reads_free(l3, k3);
        ctl_reads_free(l4, k4);
        free(refs2);
        free(refs3);
        free(refs4);
        if (r < 0) {
                ctl_images_done(&t);
                return r;
        }
        *ret = t;
        return 0;
}

static int load_or_fail(struct ctl *ctl, struct config **cfg, struct zk **zk, struct ctl_images *t) {
        if (ctl_open(ctl, cfg, zk) < 0) return -EIO;
        int r = ctl_images_load(*zk, t);
        if (r < 0) fprintf(stderr, "poolctl: cannot read /nodepool/images: %s\n", strerror(-r));
        return r;
}

static bool no_args(int argc, char **argv, const char *name) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1 || optind < argc) {
                ctl_usage(name, "", "takes no arguments");
                return false;
        }
        return true;
}

/* ---------------------------------------------------------------- listings */

int ctl_dib_image_list(struct ctl *ctl, int argc, char **argv) {
        if (!no_args(argc, argv, "dib-image-list")) return 2;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct ctl_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_dib_image_table();
        double now = model_now();
        for (size_t i = 0; i < t.n_images; i++) {
                struct ctl_image *im = &t.images[i];
                for (size_t j = 0; j < im->n_builds; j++) {
                        struct image_build *b = im->builds[j].build;
                        if (!b) continue;
                        listing_dib_image_row(tb, im->name, b, im->paused, now);
                }
        }
        ctl_images_done(&t);
        return ctl_print_table(ctl, tb);
}

int ctl_image_list(struct ctl *ctl, int argc, char **argv) {
        if (!no_args(argc, argv, "image-list")) return 2;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct ctl_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_image_table();
        double now = model_now();
        for (size_t i = 0; i < t.n_images; i++)
                for (size_t j = 0; j < t.images[i].n_builds; j++) {
                        struct ctl_build *b = &t.images[i].builds[j];
                        for (size_t k = 0; k < b->n_uploads; k++) {
                                struct image_upload *u = b->uploads[k].upload;
                                if (!u) continue;
                                listing_image_row(tb, u, now);
                        }
                }
        ctl_images_done(&t);
        return ctl_print_table(ctl, tb);
}

int ctl_image_status(struct ctl *ctl, int argc, char **argv) {
        if (!no_args(argc, argv, "image-status")) return 2;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct ctl_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_image_status_table();
        double now = model_now();
        for (size_t i = 0; i < t.n_images; i++) {
                struct ctl_image *im = &t.images[i];
                listing_image_status_row(tb, im->name, im->paused, im->build_requested, im->building,
                                         (double)im->request_ctime_ms / 1000.0, now);
        }
        ctl_images_done(&t);
        return ctl_print_table(ctl, tb);
}

/* ---------------------------------------------------------------- changes */

static int one_arg(int argc, char **argv, const char *name, const char *synopsis, const char **ret) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1) return ctl_usage(name, synopsis, NULL);
        if (argc - optind != 1) return ctl_usage(name, synopsis, "expected one argument");
        *ret = argv[optind];
        return 0;
}

/* IMAGE must be usable as one path component. */
static bool image_name_ok(const char *image) {
        _cleanup_free_ char *p = NULL;
        if (image_path_build(image, "x", &p) < 0) {
                fprintf(stderr, "poolctl: invalid image name '%s'\n", image);
                return false;
        }
        return true;
}

int ctl_image_build(struct ctl *ctl, int argc, char **argv) {
        const char *image = NULL;
        int u = one_arg(argc, argv, "image-build", "IMAGE", &image);
        if (u) return u;
        _cleanup_(config_freep) struct config *cfg = NULL;
        if (ctl_load_config(ctl, &cfg) < 0) return 1;
        const struct config_diskimage *d = config_find_diskimage(cfg, image);
        if (!d || d->abstract) {
                fprintf(stderr, "poolctl: trying to build a non disk-image-builder image: %s\n", image);
                return 1;
        }
        if (d->pause) {
                fprintf(stderr, "poolctl: skipping build request for image %s; paused\n", image);
                return 1;
        }
        if (!image_name_ok(image)) return 1;
        config_free(TAKE_PTR(cfg));

        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        _cleanup_free_ char *path = xasprintf("/nodepool/images/%s/request-build", image);
        int r = zk_ensure_path(zk, path);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot create %s: %s\n", path, strerror(-r));
                return 1;
        }
        return 0;
}

static int pause_flag(struct ctl *ctl, int argc, char **argv, bool pause) {
        const char *name = pause ? "image-pause" : "image-unpause";
        const char *image = NULL;
        int u = one_arg(argc, argv, name, "IMAGE", &image);
        if (u) return u;
        if (!image_name_ok(image)) return 1;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        _cleanup_free_ char *path = xasprintf("/nodepool/images/%s/pause", image);
        int r = pause ? zk_ensure_path(zk, path) : zk_delete(zk, path, -1);
        if (r == -ENOENT) r = 0; /* not paused: nothing to undo */
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot %s %s: %s\n", pause ? "create" : "remove", path, strerror(-r));
                return 1;
        }
        return 0;
}

int ctl_image_pause(struct ctl *ctl, int argc, char **argv) { return pause_flag(ctl, argc, argv, true); }
int ctl_image_unpause(struct ctl *ctl, int argc, char **argv) { return pause_flag(ctl, argc, argv, false); }

int ctl_image_delete(struct ctl *ctl, int argc, char **argv) {
        static const char *synopsis = "--provider PROVIDER --image IMAGE --build-id BUILD_ID --upload-id UPLOAD_ID";
        static const struct option opts[] = {
                { "provider", required_argument, NULL, 'p' },  { "image", required_argument, NULL, 'i' },
                { "build-id", required_argument, NULL, 'b' },  { "upload-id", required_argument, NULL, 'u' },
                {},
        };
        const char *provider = NULL, *image = NULL, *build = NULL, *upload = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'p': provider = optarg; break;
                case 'i': image = optarg; break;
                case 'b': build = optarg; break;
                case 'u': upload = optarg; break;
                default: return ctl_usage("image-delete", synopsis, NULL);
                }
        }
        if (optind < argc) return ctl_usage("image-delete", synopsis, "unexpected argument");
        if (!provider || !image || !build || !upload)
                return ctl_usage("image-delete", synopsis, "all four options are required");
        _cleanup_free_ char *path = NULL;
        if (image_path_upload(image, build, provider, upload, &path) < 0) {
                fprintf(stderr, "poolctl: invalid image, build, provider or upload name\n");
                return 1;
        }

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        _cleanup_free_ char *data = NULL;
        _cleanup_free_ char *what = xasprintf("image upload %s", path);
        size_t len = 0;
        if (ctl_get_record(zk, path, what, &data, &len)) return 1;
        struct model_error err = {};
        _cleanup_(image_upload_freep) struct image_upload *u = NULL;
        if (image_upload_from_json(data, len, upload, &u, &err) < 0) {
                fprintf(stderr, "poolctl: malformed upload record %s: %s\n", path, err.msg);
                return 1;
        }
        if (u->state == IMAGE_UPLOAD_STATE_UPLOADING) {
                fprintf(stderr, "poolctl: uploads in progress cannot be deleted\n");
                return 1;
        }
        image_upload_set_state(u, IMAGE_UPLOAD_STATE_DELETING);
        _cleanup_free_ char *json = NULL;
        int r = image_upload_to_json(u, &json, &len);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot encode %s: %s\n", path, strerror(-r));
                return 1;
        }
        return ctl_put_record(zk, path, json, len);
}

int ctl_dib_image_delete(struct ctl *ctl, int argc, char **argv) {
        const char *id = NULL;
        int u = one_arg(argc, argv, "dib-image-delete", "IMAGE-BUILD_ID", &id);
        if (u) return u;
        const char *dash = strrchr(id, '-');
        if (!dash || dash == id || !dash[1])
                return ctl_usage("dib-image-delete", "IMAGE-BUILD_ID", "the ID is <image>-<build id>");
        _cleanup_free_ char *image = xstrndup(id, (size_t)(dash - id));
        const char *build_id = dash + 1;
        _cleanup_free_ char *path = NULL;
        if (image_path_build(image, build_id, &path) < 0) {
                fprintf(stderr, "poolctl: invalid build id %s\n", id);
                return 1;
        }

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        _cleanup_free_ char *data = NULL;
        _cleanup_free_ char *what = xasprintf("build %s", id);
        size_t len = 0;
        if (ctl_get_record(zk, path, what, &data, &len)) return 1;
        struct model_error err = {};
        _cleanup_(image_build_freep) struct image_build *b = NULL;
        if (image_build_from_json(data, len, build_id, &b, &err) < 0) {
                fprintf(stderr, "poolctl: malformed build record %s: %s\n", path, err.msg);
                return 1;
        }
        if (b->state == IMAGE_BUILD_STATE_BUILDING) {
                fprintf(stderr, "poolctl: cannot delete a build in progress\n");
                return 1;
        }
        image_build_set_state(b, IMAGE_BUILD_STATE_DELETING);
        _cleanup_free_ char *json = NULL;
        int r = image_build_to_json(b, &json, &len);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot encode %s: %s\n", path, strerror(-r));
                return 1;
        }
        return ctl_put_record(zk, path, json, len);
}

/* ---------------------------------------------------------------- alien images */

static bool upload_in_zk(const struct ctl_images *t, const char *provider, const char *build_id,
                         const char *upload_id) {
        for (size_t i = 0; i < t->n_images; i++)
                for (size_t j = 0; j < t->images[i].n_builds; j++) {
                        const struct ctl_build *b = &t->images[i].builds[j];
                        if (strcmp(b->id, build_id) != 0) continue;
                        for (size_t k = 0; k < b->n_uploads; k++)
                                if (strcmp(b->uploads[k].provider, provider) == 0 &&
                                    strcmp(b->uploads[k].id, upload_id) == 0)
                                        return true;
                }
        return false;
}

/* Nodepool's alien-image-list: images in the clouds that carry our upload
 * tags but have no upload record in ZooKeeper (what the builder's leak pass
 * would delete). One provider that cannot be listed is reported and skipped. */
int ctl_alien_image_list(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1 || argc - optind > 1) {
                ctl_usage("alien-image-list", "[PROVIDER]", "takes at most one provider name");
                return 2;
        }
        const char *only = optind < argc ? argv[optind] : NULL;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct ctl_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;
        if (only && !config_find_provider(cfg, only)) {
                fprintf(stderr, "poolctl: provider %s is not in the configuration\n", only);
                ctl_images_done(&t);
                return 1;
        }

        static const struct table_column cols[] = {
                { "provider", "Provider" },
                { "name", "Name" },
                { "id", "Image ID" },
        };
        _cleanup_(table_freep) struct table *tb = table_new(cols, ELEMENTSOF(cols));
        int ret = 0;
        for (size_t i = 0; i < cfg->n_providers; i++) {
                const struct config_provider *cp = &cfg->providers[i];
                if (only && strcmp(cp->name, only) != 0) continue;
                if (cp->driver == CONFIG_DRIVER_STATIC || cp->driver == CONFIG_DRIVER_METASTATIC) continue; /* no images */
                struct provider_params_owned params;
                if (provider_params_from_config(cp, &params) < 0) {
                        fprintf(stderr, "poolctl: listing images of %s provider %s is not supported\n",
                                config_driver_to_string(cp->driver), cp->name);
                        ret = 1;
                        continue;
                }
                _cleanup_(provider_closep) struct provider *prov = NULL;
                _cleanup_free_ char *msg = NULL;
                int r = provider_open(&params.params, &prov, &msg);
                provider_params_done(&params);
                struct provider_image **imgs = NULL;
                size_t n = 0;
                if (r >= 0) r = prov->ops->image_list(prov, &imgs, &n, &msg);
                if (r < 0) {
                        fprintf(stderr, "poolctl: provider %s: cannot list images: %s\n", cp->name,
                                msg ? msg : strerror(-r));
                        ret = 1;
                        continue;
                }
                for (size_t k = 0; k < n; k++) {
                        const char *pn = provider_image_tag(imgs[k], "nodepool_provider_name");
                        const char *bid = provider_image_tag(imgs[k], "nodepool_build_id");
                        const char *uid = provider_image_tag(imgs[k], "nodepool_upload_id");
                        if (!bid) continue; /* not uploaded by a builder */
                        if (pn && uid && strcmp(pn, cp->name) == 0 && upload_in_zk(&t, cp->name, bid, uid)) continue;
                        table_add_row(tb);
                        table_set_str(tb, 0, cp->name);
                        table_set_str(tb, 1, imgs[k]->name);
                        table_set_str(tb, 2, imgs[k]->external_id);
                }
                provider_image_array_free(imgs, n);
        }
        ctl_images_done(&t);
        int pr = ctl_print_table(ctl, tb);
        return pr ? pr : ret;
}
