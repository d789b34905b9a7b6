/* ctl_nodes.c — `poolctl list`, `delete`, `hold`, `info`, `erase`: the node
 * records under /nodepool/nodes (protocol.md §1.5, §3.1).
 *
 * DESIGN. Reads are pipelined (ctl_read_many); writes follow Nodepool's CLI:
 * take the node's kazoo lock for at most 5 s, re-read, rewrite the whole
 * record (keeping keys Zuul wrote), unlock. A malformed record is skipped
 * with a warning, never fatal. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "ctl.h"
#include "listing.h"
#include "log.h"
#include "model_image.h"
#include "model_node.h"
#include "nodepool_zk.h"
#include "provider.h"
#include "provider_params.h"
#include "table.h"
#include "zk.h"
#include "zk_lock.h"

#define NODE_LOCK_TIMEOUT_MS 5000

/* Fetch IDS (N of them) with their lock state, in one pipelined batch.
 * Vanished nodes are left out; malformed ones are warned about and left out.
 * *ret_nodes and *ret_locked get arrays of *ret_n entries. */
static int fetch_nodes(struct zk *zk, char *const *ids, size_t n, struct node ***ret_nodes, bool **ret_locked,
                       size_t *ret_n) {
        struct ctl_read *reads = xnew(struct ctl_read, 2 * n + 1);
        for (size_t i = 0; i < n; i++) {
                reads[2 * i] = (struct ctl_read){ .op = CTL_READ_GET, .path = npzk_node_path(ids[i]) };
                reads[2 * i + 1] = (struct ctl_read){ .op = CTL_READ_EXISTS, .path = npzk_node_lock_path(ids[i]) };
        }
        int r = ctl_read_many(zk, reads, 2 * n);
        if (r < 0) {
                ctl_reads_free(reads, 2 * n);
                return r;
        }
        struct node **nodes = xnew(struct node *, n + 1);
        bool *locked = xnew(bool, n + 1);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                struct ctl_read *g = &reads[2 * i], *l = &reads[2 * i + 1];
                if (g->r == -ENOENT) continue; /* deleted meanwhile */
                if (g->r < 0) {
                        log_warning("skipping node %s: %s", ids[i], strerror(-g->r));
                        continue;
                }
                struct model_error err = {};
                struct node *node = NULL;
                if (node_from_json(g->data, g->len, ids[i], &node, &err) < 0) {
                        log_warning("skipping node %s: malformed record: %s", ids[i], err.msg);
                        continue;
                }
                nodes[k] = node;
                /* Nodepool: any child under the lock dir means locked. */
                locked[k] = l->r == 0 && l->num_children > 0;
                k++;
        }
        ctl_reads_free(reads, 2 * n);
        *ret_nodes = nodes;
        *ret_locked = locked;
        *ret_n = k;
        return 0;
}

static void nodes_free(struct node **nodes, size_t n) {
        for (size_t i = 0; i < n; i++) node_free(nodes[i]);
        free(nodes);
}

/* The `list` table of IDS; detail columns hidden from the text unless DETAIL. */
static int print_nodes(struct ctl *ctl, struct zk *zk, char *const *ids, size_t n, bool detail) {
        struct node **nodes = NULL;
        bool *locked = NULL;
        size_t k = 0;
        int r = fetch_nodes(zk, ids, n, &nodes, &locked, &k);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot read nodes: %s\n", strerror(-r));
                return 1;
        }
        _cleanup_(table_freep) struct table *t = listing_node_table(detail);
        double now = model_now();
        for (size_t i = 0; i < k; i++) listing_node_row(t, nodes[i], locked[i], now);
        nodes_free(nodes, k);
        free(locked);
        return ctl_print_table(ctl, t);
}

int ctl_list(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { { "detail", no_argument, NULL, 'd' }, {} };
        bool detail = false;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'd')
                        detail = true;
                else
                        return ctl_usage("list", "[--detail]", NULL);
        }
        if (optind < argc) return ctl_usage("list", "[--detail]", "unexpected argument");

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        char **ids = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, NPZK_NODES, &ids, &n);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot list " NPZK_NODES ": %s\n", strerror(-r));
                return 1;
        }
        int ret = print_nodes(ctl, zk, ids, n, detail);
        zk_strv_free(ids);
        return ret;
}

/* Read node ID: 0, or prints why not and returns -errno. */
static int read_node(struct zk *zk, const char *id, struct node **ret) {
        _cleanup_free_ char *path = npzk_node_path(id);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = zk_get(zk, path, &data, &len, NULL);
        if (r == -ENOENT) {
                fprintf(stderr, "poolctl: node id %s not found\n", id);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot read node %s: %s\n", id, strerror(-r));
                return r;
        }
        struct model_error err = {};
        r = node_from_json(data, len, id, ret, &err);
        if (r < 0) fprintf(stderr, "poolctl: node %s has a malformed record: %s\n", id, err.msg);
        return r;
}

static int write_node(struct zk *zk, const struct node *n) {
        _cleanup_free_ char *path = npzk_node_path(n->id);
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        int r = node_to_json(n, &json, &len);
        if (r >= 0) r = zk_set(zk, path, json, len, -1, NULL);
        if (r < 0) fprintf(stderr, "poolctl: cannot store node %s: %s\n", n->id, strerror(-r));
        return r;
}

/* Lock node ID for at most 5 s like Nodepool's CLI; prints why on failure. */
static int lock_node(struct zk *zk, const char *id, struct zk_lock **ret) {
        _cleanup_free_ char *lpath = npzk_node_lock_path(id);
        _cleanup_(zk_lock_freep) struct zk_lock *l = NULL;
        int r = zk_lock_new(zk, lpath, NULL, &l);
        if (r >= 0) r = zk_lock_acquire(l, NODE_LOCK_TIMEOUT_MS);
        if (r == -ETIMEDOUT) {
                fprintf(stderr, "poolctl: node %s is locked by someone else (gave up after %d s)\n", id,
                        NODE_LOCK_TIMEOUT_MS / 1000);
                return r;
        }
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot lock node %s: %s\n", id, strerror(-r));
                return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* Delete the node's server through its provider's driver, as `delete --now`. */
static int delete_server(const struct config *cfg, const struct node *n) {
        const struct config_provider *p = n->provider ? config_find_provider(cfg, n->provider) : NULL;
        if (!p) {
                fprintf(stderr, "poolctl: provider %s of node %s is not in the configuration\n",
                        n->provider ? n->provider : "(none)", n->id);
                return -ENOENT;
        }
        /* A static host is not ours to delete; a metastatic node has no server of its own. */
        if (p->driver == CONFIG_DRIVER_STATIC || p->driver == CONFIG_DRIVER_METASTATIC) return 0;
        if (!n->external_id || json_is_null(n->external_id)) return 0; /* never got a server */
        struct provider_params_owned params;
        if (provider_params_from_config(p, &params) < 0) {
                fprintf(stderr, "poolctl: deleting servers of %s provider %s is not supported\n",
                        config_driver_to_string(p->driver), p->name);
                return -EOPNOTSUPP;
        }
        _cleanup_(provider_closep) struct provider *prov = NULL;
        _cleanup_free_ char *msg = NULL;
        int r = provider_open(&params.params, &prov, &msg);
        provider_params_done(&params);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot open provider %s: %s\n", p->name, msg ? msg : strerror(-r));
                return r;
        }
        _cleanup_free_ char *ext = listing_json_text(n->external_id);
        r = prov->ops->delete(prov, ext, &msg);
        if (r == -ENOENT) return 0; /* already gone: the goal is reached */
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot delete server %s of node %s: %s\n", ext, n->id,
                        msg ? msg : strerror(-r));
                return r;
        }
        return 0;
}

/* Shared by delete and hold: lock, set STATE (and with NOW remove the
 * server and the record), unlock, print the node's row. */
static int change_node(struct ctl *ctl, const char *id, enum node_state state, bool now) {
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        _cleanup_(node_freep) struct node *n = NULL;
        if (read_node(zk, id, &n) < 0) return 1;
        node_free(TAKE_PTR(n));

        _cleanup_(zk_lock_freep) struct zk_lock *l = NULL;
        if (lock_node(zk, id, &l) < 0) return 1;
        /* Re-read under the lock: the holder before us may have changed it. */
        if (read_node(zk, id, &n) < 0) return 1;

        if (now) {
                if (delete_server(cfg, n) < 0) return 1;
                /* As Nodepool's deleteNode: mark deleted first, so anyone grabbing the
                 * lock in the window finishes the job, then remove children first. */
                node_set_state(n, NODE_STATE_DELETED);
                if (write_node(zk, n) < 0) return 1;
                _cleanup_free_ char *path = npzk_node_path(id);
                int r = zk_delete_recursive(zk, path);
                if (r < 0) {
                        fprintf(stderr, "poolctl: cannot remove node %s: %s\n", id, strerror(-r));
                        return 1;
                }
                zk_lock_free(TAKE_PTR(l)); /* its contender went with the node */
        } else {
                node_set_state(n, state);
                if (write_node(zk, n) < 0) return 1;
                int r = zk_lock_release(l);
                if (r < 0) log_warning_errno(r, "could not release the lock of node %s: %m", id);
        }
        char *ids[] = { (char *)id, NULL };
        return print_nodes(ctl, zk, ids, 1, false);
}

int ctl_delete(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { { "now", no_argument, NULL, 'n' }, {} };
        bool now = false;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'n')
                        now = true;
                else
                        return ctl_usage("delete", "ID [--now]", NULL);
        }
        if (argc - optind != 1) return ctl_usage("delete", "ID [--now]", "expected one node ID");
        return change_node(ctl, argv[optind], NODE_STATE_DELETING, now);
}

int ctl_hold(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1) return ctl_usage("hold", "ID", NULL);
        if (argc - optind != 1) return ctl_usage("hold", "ID", "expected one node ID");
        return change_node(ctl, argv[optind], NODE_STATE_HOLD, false);
}

/* ---------------------------------------------------------------- info / erase */

/* Every node whose provider is PROVIDER, sorted by id. */
static int provider_nodes(struct zk *zk, const char *provider, struct node ***ret, size_t *ret_n) {
        char **ids = NULL;
        size_t n = 0;
        int r = ctl_children_sorted(zk, NPZK_NODES, &ids, &n);
        if (r < 0) return r;
        struct node **nodes = NULL;
        bool *locked = NULL;
        size_t k = 0;
        r = fetch_nodes(zk, ids, n, &nodes, &locked, &k);
        zk_strv_free(ids);
        if (r < 0) return r;
        free(locked);
        size_t m = 0;
        for (size_t i = 0; i < k; i++) {
                if (nodes[i]->provider && strcmp(nodes[i]->provider, provider) == 0)
                        nodes[m++] = nodes[i];
                else
                        node_free(nodes[i]);
        }
        *ret = nodes;
        *ret_n = m;
        return 0;
}

/* A build of some image with data for PROVIDER, and its upload ids. */
struct provider_build {
        char *image;
        char *build_id;
        char **upload_ids;
};

static void provider_builds_free(struct provider_build *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(b[i].image);
                free(b[i].build_id);
                zk_strv_free(b[i].upload_ids);
        }
        free(b);
}

/* Read the image tree as the image commands do and keep the builds with a
 * providers/<PROVIDER> znode, as Nodepool's info and erase do. */
static int provider_builds(struct zk *zk, const char *provider, struct provider_build **ret, size_t *ret_n) {
        struct npzk_images t = {};
        int r = ctl_images_load(zk, &t);
        if (r < 0) return r;
        size_t n = 0;
        for (size_t i = 0; i < t.n; i++) n += t.images[i].n;
        struct provider_build *out = xnew(struct provider_build, n + 1);
        size_t m = 0;
        for (size_t i = 0; i < t.n; i++)
                for (size_t j = 0; j < t.images[i].n; j++) {
                        const struct npzk_build *b = &t.images[i].builds[j];
                        const struct npzk_provider *p = npzk_build_provider(b, provider);
                        if (!p) continue;
                        out[m].image = xstrdup(t.images[i].name);
                        out[m].build_id = xstrdup(b->id);
                        out[m].upload_ids = xnew(char *, p->n + 1);
                        for (size_t k = 0; k < p->n; k++) out[m].upload_ids[k] = xstrdup(p->ups[k].id);
                        m++;
                }
        npzk_images_done(&t);
        *ret = out;
        *ret_n = m;
        return 0;
}

/* The provider's uploads (by build) and nodes, for info and erase; 0, or 1
 * (the exit code) after printing the error. */
static int provider_data(struct zk *zk, const char *provider, struct provider_build **ret_builds,
                         size_t *ret_n_builds, struct node ***ret_nodes, size_t *ret_n_nodes) {
        struct provider_build *builds = NULL;
        size_t n_builds = 0;
        int r = provider_builds(zk, provider, &builds, &n_builds);
        if (r >= 0) r = provider_nodes(zk, provider, ret_nodes, ret_n_nodes);
        if (r < 0) {
                provider_builds_free(builds, n_builds);
                fprintf(stderr, "poolctl: cannot read provider data: %s\n", strerror(-r));
                return 1;
        }
        *ret_builds = builds;
        *ret_n_builds = n_builds;
        return 0;
}

int ctl_info(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1) return ctl_usage("info", "PROVIDER", NULL);
        if (argc - optind != 1) return ctl_usage("info", "PROVIDER", "expected one provider name");
        const char *provider = argv[optind];

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        /* Like Nodepool, the provider need not be in the config: it may be a removed one. */
        struct provider_build *builds = NULL;
        size_t n_builds = 0;
        struct node **nodes = NULL;
        size_t n_nodes = 0;
        if (provider_data(zk, provider, &builds, &n_builds, &nodes, &n_nodes)) return 1;

        static const struct table_column icols[] = {
                { "image", "Image Name" }, { "build_id", "Build ID" }, { "upload_ids", "Upload IDs" }
        };
        static const struct table_column ncols[] = { { "id", "ID" }, { "server_id", "Server ID" } };
        _cleanup_(table_freep) struct table *it = table_new(icols, ELEMENTSOF(icols));
        _cleanup_(table_freep) struct table *nt = table_new(ncols, ELEMENTSOF(ncols));
        for (size_t i = 0; i < n_builds; i++) {
                table_add_row(it);
                table_set_str(it, 0, builds[i].image);
                table_set_str(it, 1, builds[i].build_id);
                table_set_strv(it, 2, builds[i].upload_ids);
        }
        for (size_t i = 0; i < n_nodes; i++) {
                table_add_row(nt);
                table_set_str(nt, 0, nodes[i]->id);
                listing_set_opaque(nt, 1, nodes[i]->external_id);
        }
        provider_builds_free(builds, n_builds);
        nodes_free(nodes, n_nodes);

        if (ctl->json) {
                _cleanup_free_ char *ij = table_format_json(it);
                _cleanup_free_ char *nj = table_format_json(nt);
                json_t *o = json_pack("{s:s?, s:o?, s:o?}", "provider", provider, "image_data",
                                      json_loads(ij, 0, NULL), "nodes", json_loads(nj, 0, NULL));
                char *s = o ? json_dumps(o, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) : NULL;
                if (s) printf("%s\n", s);
                free(s);
                if (o) json_decref(o);
        } else {
                _cleanup_free_ char *itext = table_format_text(it);
                _cleanup_free_ char *ntext = table_format_text(nt);
                printf("ZooKeeper data for provider %s\n\nImage data:\n%s\nNodes:\n%s", provider, itext, ntext);
        }
        return fflush(stdout) == 0 ? 0 : 1;
}

int ctl_erase(struct ctl *ctl, int argc, char **argv) {
        static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, {} };
        bool force = false;
        int c;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'f')
                        force = true;
                else
                        return ctl_usage("erase", "PROVIDER [--force]", NULL);
        }
        if (argc - optind != 1) return ctl_usage("erase", "PROVIDER [--force]", "expected one provider name");
        const char *provider = argv[optind];

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        struct provider_build *builds = NULL;
        size_t n_builds = 0;
        struct node **nodes = NULL;
        size_t n_nodes = 0;
        if (provider_data(zk, provider, &builds, &n_builds, &nodes, &n_nodes)) return 1;

        int ret = 0;
        if (!force) {
                printf("\nWARNING! This action is not reversible!\n"
                       "Erase ZooKeeper data for provider %s? [N/y] ", provider);
                fflush(stdout);
                char line[64];
                if (!fgets(line, sizeof line, stdin) || !((line[0] == 'y' || line[0] == 'Y') &&
                                                          (line[1] == '\n' || line[1] == '\0'))) {
                        printf("Aborting. No data erased.\n");
                        goto out;
                }
        }
        printf("Erasing build data for %s...\n", provider);
        for (size_t i = 0; i < n_builds; i++) {
                _cleanup_free_ char *path = npzk_provider_path(builds[i].image, builds[i].build_id, provider);
                int r = zk_delete_recursive(zk, path);
                if (r < 0) {
                        fprintf(stderr, "poolctl: cannot remove %s: %s\n", path, strerror(-r));
                        ret = 1;
                }
        }
        printf("Erasing node data for %s...\n", provider);
        for (size_t i = 0; i < n_nodes; i++) {
                _cleanup_free_ char *path = npzk_node_path(nodes[i]->id);
                int r = zk_delete_recursive(zk, path);
                if (r < 0) {
                        fprintf(stderr, "poolctl: cannot remove %s: %s\n", path, strerror(-r));
                        ret = 1;
                }
        }
out:
        provider_builds_free(builds, n_builds);
        nodes_free(nodes, n_nodes);
        return ret;
}
