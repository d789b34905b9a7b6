/* ctl_images.c — the image subcommands of poolctl: dib-image-list,
 * image-list, image-status, image-build, image-delete, dib-image-delete,
 * image-pause, image-unpause (protocol.md §1.3, §1.6, §3.1).
 *
 * DESIGN. These only edit ZooKeeper records; the builder daemon acts on
 * them. The tree under /nodepool/images is read level by level, each level
 * as one pipelined batch (ctl_read_many), and decoded by nodepool_zk.h. */
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
#include "nodepool_zk.h"
#include "provider.h"
#include "provider_params.h"
#include "table.h"
#include "zk.h"

/* ---------------------------------------------------------------- tree */

#define RD(o, p) ((struct ctl_read){ .op = (o), .path = (p) })

/* Put one answer into T (nodepool_zk.h decodes); poolctl runs once, so every
 * malformed record is warned about. */
static void tree_add(struct npzk_images *t, const struct npzk_znode *zn) {
        struct model_error err = {};
        if (npzk_images_add(t, zn, &err) == -EBADMSG) log_warning("malformed record %s: %s", zn->path, err.msg);
}

/* The parts of the path a read was made for (it was built by nodepool_zk). */
static bool parts_of(const struct ctl_read *rd, struct npzk_path *ret) { return npzk_path_parse(rd->path, ret) == 0; }

int ctl_images_load(struct zk *zk, struct npzk_images *ret) {
        struct npzk_images t = {};
        char **names = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, NPZK_IMAGES, &names, &n);
        if (r < 0) return r;

        /* Level 1: flags and build lists. */
        enum { L1_PAUSE, L1_REQUEST, L1_BUILDS, L1_LOCK, _L1_MAX };
        struct ctl_read *l1 = xnew(struct ctl_read, n * _L1_MAX + 1);
        for (size_t i = 0; i < n; i++) {
                l1[i * _L1_MAX + L1_PAUSE] = RD(CTL_READ_EXISTS, npzk_image_pause_path(names[i]));
                l1[i * _L1_MAX + L1_REQUEST] = RD(CTL_READ_EXISTS, npzk_image_request_build_path(names[i]));
                l1[i * _L1_MAX + L1_BUILDS] = RD(CTL_READ_CHILDREN, npzk_builds_path(names[i]));
                l1[i * _L1_MAX + L1_LOCK] = RD(CTL_READ_EXISTS, npzk_build_lock_path(names[i]));
        }
        r = ctl_read_many(zk, l1, n * _L1_MAX);
        size_t n2 = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) n2 += l1[i * _L1_MAX + L1_BUILDS].n_children;

        /* Level 2: build records and their providers. */
        struct ctl_read *l2 = xnew(struct ctl_read, 2 * n2 + 1);
        size_t k2 = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                struct ctl_read *rd = &l1[i * _L1_MAX];
                _cleanup_free_ char *ipath = npzk_image_path(names[i]);
                tree_add(&t, &(struct npzk_znode){ .path = ipath });
                if (rd[L1_PAUSE].r == 0) tree_add(&t, &(struct npzk_znode){ .path = rd[L1_PAUSE].path });
                if (rd[L1_REQUEST].r == 0)
                        tree_add(&t, &(struct npzk_znode){ .path = rd[L1_REQUEST].path,
                                                           .ctime_ms = rd[L1_REQUEST].ctime_ms });
                if (rd[L1_BUILDS].r != 0) continue;
                unsigned contenders = rd[L1_LOCK].r == 0 ? (unsigned)rd[L1_LOCK].num_children : 0;
                tree_add(&t, &(struct npzk_znode){ .path = rd[L1_BUILDS].path, .lock_contenders = contenders });
                for (size_t j = 0; j < rd[L1_BUILDS].n_children; j++) {
                        const char *b = rd[L1_BUILDS].children[j];
                        if (strcmp(b, NPZK_LOCK) == 0) continue;
                        _cleanup_free_ char *bpath = npzk_build_path(names[i], b);
                        tree_add(&t, &(struct npzk_znode){ .path = bpath }); /* listed: kept if it vanishes */
                        l2[k2++] = RD(CTL_READ_GET, xstrdup(bpath));
                        l2[k2++] = RD(CTL_READ_CHILDREN, npzk_providers_path(names[i], b));
                }
        }
        if (r >= 0) r = ctl_read_many(zk, l2, k2);
        size_t n3 = 0;
        for (size_t x = 0; r >= 0 && x < k2; x++) n3 += l2[x].op == CTL_READ_CHILDREN ? l2[x].n_children : 0;

        /* Level 3: upload lists per (build, provider). */
        struct ctl_read *l3 = xnew(struct ctl_read, n3 + 1);
        size_t k3 = 0;
        for (size_t x = 0; r >= 0 && x < k2; x++) {
                struct npzk_path p;
                if (l2[x].r != 0 || !parts_of(&l2[x], &p)) continue;
                if (l2[x].op == CTL_READ_GET)
                        tree_add(&t, &(struct npzk_znode){ .path = l2[x].path, .data = l2[x].data, .len = l2[x].len });
                else
                        for (size_t y = 0; y < l2[x].n_children; y++) {
                                const char *prov = l2[x].children[y];
                                _cleanup_free_ char *ppath = npzk_provider_path(p.image, p.build_id, prov);
                                tree_add(&t, &(struct npzk_znode){ .path = ppath });
                                l3[k3++] = RD(CTL_READ_CHILDREN, npzk_uploads_path(p.image, p.build_id, prov));
                        }
                npzk_path_done(&p);
        }
        if (r >= 0) r = ctl_read_many(zk, l3, k3);
        size_t n4 = 0;
        for (size_t x = 0; r >= 0 && x < k3; x++) n4 += l3[x].r == 0 ? l3[x].n_children : 0;

        /* Level 4: upload records. */
        struct ctl_read *l4 = xnew(struct ctl_read, n4 + 1);
        size_t k4 = 0;
        for (size_t x = 0; r >= 0 && x < k3; x++) {
                struct npzk_path p;
                if (l3[x].r != 0 || !parts_of(&l3[x], &p)) continue;
                tree_add(&t, &(struct npzk_znode){ .path = l3[x].path });
                for (size_t y = 0; y < l3[x].n_children; y++) {
                        if (strcmp(l3[x].children[y], NPZK_LOCK) == 0) continue;
                        char *upath = npzk_upload_path(p.image, p.build_id, p.provider, l3[x].children[y]);
                        tree_add(&t, &(struct npzk_znode){ .path = upath }); /* listed: kept if it vanishes */
                        l4[k4++] = RD(CTL_READ_GET, upath);
                }
                npzk_path_done(&p);
        }
        if (r >= 0) r = ctl_read_many(zk, l4, k4);
        for (size_t x = 0; r >= 0 && x < k4; x++)
                if (l4[x].r == 0) /* else vanished: its data stays NULL, listings skip it */
                        tree_add(&t, &(struct npzk_znode){ .path = l4[x].path, .data = l4[x].data, .len = l4[x].len });
        ctl_reads_free(l1, n * _L1_MAX);
        ctl_reads_free(l2, k2);
        ctl_reads_free(l3, k3);
        ctl_reads_free(l4, k4);
        zk_strv_free(names);
        if (r < 0) {
                npzk_images_done(&t);
                return r;
        }
        npzk_images_sort(&t);
        *ret = t;
        return 0;
}

static int load_or_fail(struct ctl *ctl, struct config **cfg, struct zk **zk, struct npzk_images *t) {
        if (ctl_open(ctl, cfg, zk) < 0) return -EIO;
        int r = ctl_images_load(*zk, t);
        if (r < 0) fprintf(stderr, "poolctl: cannot read " NPZK_IMAGES ": %s\n", strerror(-r));
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
        struct npzk_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_dib_image_table();
        double now = model_now();
        for (size_t i = 0; i < t.n; i++) {
                struct npzk_image *im = &t.images[i];
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_build *br = &im->builds[j];
                        if (!br->b) continue;
                        /* Its uploads, for the boot checks' outcome in the State text. */
                        size_t n = 0;
                        for (size_t p = 0; p < br->n; p++) n += br->provs[p].n;
                        _cleanup_free_ struct image_upload **ups = xnew(struct image_upload *, n + 1);
                        size_t m = 0;
                        for (size_t p = 0; p < br->n; p++)
                                for (size_t k = 0; k < br->provs[p].n; k++)
                                        if (br->provs[p].ups[k].u) ups[m++] = br->provs[p].ups[k].u;
                        listing_dib_image_row(tb, im->name, br->b, im->paused, ups, m, now);
                }
        }
        npzk_images_done(&t);
        return ctl_print_table(ctl, tb);
}

int ctl_image_list(struct ctl *ctl, int argc, char **argv) {
        if (!no_args(argc, argv, "image-list")) return 2;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct npzk_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_image_table();
        double now = model_now();
        for (size_t i = 0; i < t.n; i++)
                for (size_t j = 0; j < t.images[i].n; j++) {
                        struct npzk_build *b = &t.images[i].builds[j];
                        for (size_t p = 0; p < b->n; p++)
                                for (size_t k = 0; k < b->provs[p].n; k++) {
                                        struct image_upload *u = b->provs[p].ups[k].u;
                                        if (!u) continue;
                                        listing_image_row(tb, u, now);
                                }
                }
        npzk_images_done(&t);
        return ctl_print_table(ctl, tb);
}

int ctl_image_status(struct ctl *ctl, int argc, char **argv) {
        if (!no_args(argc, argv, "image-status")) return 2;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        struct npzk_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;

        _cleanup_(table_freep) struct table *tb = listing_image_status_table();
        double now = model_now();
        for (size_t i = 0; i < t.n; i++) {
                struct npzk_image *im = &t.images[i];
                listing_image_status_row(tb, im->name, im->paused, im->requested, im->build_lock > 0,
                                         im->request_time, now);
        }
        npzk_images_done(&t);
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
        if (!npzk_name_ok(image)) {
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
        _cleanup_free_ char *path = npzk_image_request_build_path(image);
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
        _cleanup_free_ char *path = npzk_image_pause_path(image);
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
        if (!npzk_name_ok(image) || !npzk_name_ok(build) || !npzk_name_ok(provider) || !npzk_name_ok(upload)) {
                fprintf(stderr, "poolctl: invalid image, build, provider or upload name\n");
                return 1;
        }
        _cleanup_free_ char *path = npzk_upload_path(image, build, provider, upload);

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
        if (!npzk_name_ok(image) || !npzk_name_ok(build_id)) {
                fprintf(stderr, "poolctl: invalid build id %s\n", id);
                return 1;
        }
        _cleanup_free_ char *path = npzk_build_path(image, build_id);

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

static bool upload_in_zk(const struct npzk_images *t, const char *provider, const char *build_id,
                         const char *upload_id) {
        for (size_t i = 0; i < t->n; i++)
                for (size_t j = 0; j < t->images[i].n; j++) {
                        const struct npzk_build *b = &t->images[i].builds[j];
                        if (strcmp(b->id, build_id) != 0) continue;
                        const struct npzk_provider *p = npzk_build_provider(b, provider);
                        for (size_t k = 0; p && k < p->n; k++)
                                if (strcmp(p->ups[k].id, upload_id) == 0) return true;
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
        struct npzk_images t = {};
        if (load_or_fail(ctl, &cfg, &zk, &t) < 0) return 1;
        if (only && !config_find_provider(cfg, only)) {
                fprintf(stderr, "poolctl: provider %s is not in the configuration\n", only);
                npzk_images_done(&t);
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
        npzk_images_done(&t);
        int pr = ctl_print_table(ctl, tb);
        return pr ? pr : ret;
}
