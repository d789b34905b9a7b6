/* config_load.c — nodepool.yaml top level, labels, diskimages, the secure file.
 *
 * DESIGN: parse each file into a cnode tree, then walk it with the schema
 * helpers, collecting every problem (never stopping at the first). Top-level
 * labels and diskimages are parsed before providers, whatever their order in the
 * file, so cross references can be checked in one pass; diagnostics are sorted
 * into file order at the end. A config is returned only when there is no error. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "config_internal.h"
#include "zk.h"

#define CONFIG_MAX_FILE_SIZE (16u * 1024 * 1024)

static const char *const driver_names[_CONFIG_DRIVER_MAX] = {
        [CONFIG_DRIVER_OPENSTACK] = "openstack",
        [CONFIG_DRIVER_STATIC] = "static",
        [CONFIG_DRIVER_LIBVIRT] = "libvirt",
        [CONFIG_DRIVER_METASTATIC] = "metastatic",
};

const char *config_driver_to_string(enum config_driver d) {
        return d >= 0 && d < _CONFIG_DRIVER_MAX ? driver_names[d] : NULL;
}

enum config_driver config_driver_from_string(const char *s) {
        for (int i = 0; s && i < _CONFIG_DRIVER_MAX; i++)
                if (strcmp(driver_names[i], s) == 0) return (enum config_driver)i;
        return _CONFIG_DRIVER_INVALID;
}

/* ------------------------------------------------------------------ labels */

static void parse_labels(struct cctx *c, struct config *cfg, const struct cnode *list) {
        static const char *const keys[] = { "name", "min-ready", "max-ready-age", NULL };
        cfg->labels = xnew(struct config_label, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("label #%zu", i + 1);
                if (!cfg_expect_map(c, m, where)) continue;
                free(where);
                where = cfg_object_name(m, "label", i);
                cfg_check_keys(c, m, keys, where);
                struct config_label l = { .min_ready = 0, .max_ready_age = 0 };
                cfg_require(c, m, "name", where);
                if (cfg_str(c, m, "name", where, &l.name) <= 0) continue;
                cfg_int(c, m, "min-ready", where, &l.min_ready);
                cfg_int(c, m, "max-ready-age", where, &l.max_ready_age);
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++) {
                        const struct cnode *o = cnode_get(list->children[j], "name");
                        if (o && o->type == CNODE_SCALAR && strcmp(o->value, l.name) == 0) {
                                cfg_error(c, cnode_get(m, "name"), "duplicate label '%s' (first defined at line %u)",
                                          l.name, o->line);
                                dup = true;
                        }
                }
                if (dup) {
                        free(l.name);
                        continue;
                }
                cfg->labels[cfg->n_labels++] = l;
        }
}

/* -------------------------------------------------------------- diskimages */

static const char *const diskimage_keys[] = {
        "name", "abstract", "parent", "elements", "env-vars", "formats", "keep-formats", "delete-after-upload",
        "release", "rebuild-age", "build-timeout", "pause", "dib-cmd", "username", "python-path", "shell-type",
        "metadata", "poold", NULL,
};

/* diskimages[].poold: poold's own keys (Nodepool would reject them bare). */
#define DV(m) CFG_AT(struct config_diskimage_verify, m)
static const struct cfg_key verify_keys[] = {
        { .name = "timeout", .type = CFG_T_INT, CFG_MIN(1), DV(timeout) },
        { .name = "username", .type = CFG_T_STR, DV(username) },
        { .name = "private-key", .type = CFG_T_STR, DV(private_key) },
        { .name = "commands", .type = CFG_T_STRV, DV(commands) },
        {},
};
#undef DV
static const struct cfg_schema verify_schema = { .keys = verify_keys };
static const struct cfg_key diskimage_poold_keys[] = {
        { .name = "verify", .type = CFG_T_OBJ, .nullable = true, .sub = &verify_schema },
        {},
};
static const struct cfg_schema diskimage_poold_schema = { .keys = diskimage_poold_keys };

static void verify_clear(struct config_diskimage_verify *v) {
        free(v->username);
        free(v->private_key);
        strv_clear(&v->commands);
        *v = (struct config_diskimage_verify){ .timeout = 900 };
}

/* `poold:` of a diskimage mapping M: a `verify:` mapping (even empty) turns the
 * check on and replaces what a parent set. */
static void diskimage_apply_poold(struct cctx *c, struct config_diskimage *d, const struct cnode *m,
                                  const char *where) {
        const struct cnode *p = cnode_get(m, "poold");
        if (!p || cnode_is_null(p)) return;
        _cleanup_free_ char *pw = xasprintf("'poold' of %s", where);
        if (!cfg_expect_map(c, p, pw) || cfg_read(c, p, &diskimage_poold_schema, pw, NULL) > 0) return;
        const struct cnode *v = cnode_get(p, "verify");
        if (!v) return;
        verify_clear(&d->verify);
        if (v->type == CNODE_MAP) { /* else null: every default */
                _cleanup_free_ char *vw = xasprintf("'verify' of %s", pw);
                if (cfg_read(c, v, &verify_schema, vw, &d->verify) > 0) return;
        }
        d->verify.enabled = true;
}

static void diskimage_clear(struct config_diskimage *d) {
        free(d->name);
        free(d->parent);
        strv_clear(&d->elements);
        strmap_clear(&d->env_vars);
        strv_clear(&d->formats);
        strv_clear(&d->keep_formats);
        free(d->release);
        free(d->dib_cmd);
        free(d->username);
        free(d->python_path);
        free(d->shell_type);
        strmap_clear(&d->metadata);
        strv_clear(&d->needed_formats);
        verify_clear(&d->verify);
}

static void diskimage_defaults(struct config_diskimage *d) {
        *d = (struct config_diskimage){
                .rebuild_age = 86400,
                .build_timeout = 28800,
                .dib_cmd = xstrdup("disk-image-create"),
                .username = xstrdup("zuul"),
                .python_path = xstrdup("auto"),
                .verify = { .timeout = 900 },
        };
}

/* Apply one diskimage mapping on top of D: elements append, env-vars merge,
 * everything else overrides. Used for the image itself and its ancestors. */
static void diskimage_apply(struct cctx *c, struct config_diskimage *d, const struct cnode *m, const char *where) {
        cfg_str(c, m, "name", where, &d->name);
        cfg_bool(c, m, "abstract", where, &d->abstract);
        cfg_str(c, m, "parent", where, &d->parent);
        struct config_strv el = {};
        if (cfg_strv(c, m, "elements", where, &el, false) > 0)
                for (size_t i = 0; i < el.n; i++) strv_add(&d->elements, el.items[i]);
        strv_clear(&el);
        cfg_strmap(c, m, "env-vars", where, &d->env_vars);
        cfg_strv(c, m, "formats", where, &d->formats, false);
        cfg_strv(c, m, "keep-formats", where, &d->keep_formats, false);
        cfg_bool(c, m, "delete-after-upload", where, &d->delete_after_upload);
        cfg_str(c, m, "release", where, &d->release);
        cfg_int(c, m, "rebuild-age", where, &d->rebuild_age);
        cfg_int(c, m, "build-timeout", where, &d->build_timeout);
        cfg_bool(c, m, "pause", where, &d->pause);
        cfg_str(c, m, "dib-cmd", where, &d->dib_cmd);
        cfg_str(c, m, "username", where, &d->username);
        cfg_str(c, m, "python-path", where, &d->python_path);
        cfg_str(c, m, "shell-type", where, &d->shell_type);
        struct config_strmap md = {};
        if (cfg_strmap(c, m, "metadata", where, &md) > 0) {
                strmap_clear(&d->metadata);
                d->metadata = md;
        } else
                strmap_clear(&md);
        diskimage_apply_poold(c, d, m, where);
}

static const char *node_name(const struct cnode *m) {
        const struct cnode *n = cnode_get(m, "name");
        return n && n->type == CNODE_SCALAR && !n->bad && !cnode_is_null(n) ? n->value : NULL;
}

static void parse_diskimages(struct cctx *c, struct config *cfg, const struct cnode *list) {
        size_t n = list->n;
        /* Index of each valid, uniquely named image mapping in LIST (or -1). */
        _cleanup_free_ ssize_t *idx = xnew(ssize_t, n);
        for (size_t i = 0; i < n; i++) {
                const struct cnode *m = list->children[i];
                idx[i] = -1;
                _cleanup_free_ char *where = xasprintf("diskimage #%zu", i + 1);
                if (!cfg_expect_map(c, m, where)) continue;
                free(where);
                where = cfg_object_name(m, "diskimage", i);
                cfg_check_keys(c, m, diskimage_keys, where);
                cfg_warn_unacted(c, m, "diskimage");
                cfg_require(c, m, "name", where);
                /* Type-check every key once, on a scratch image. */
                struct config_diskimage scratch;
                diskimage_defaults(&scratch);
                diskimage_apply(c, &scratch, m, where);
                bool named = scratch.name != NULL;
                diskimage_clear(&scratch);
                if (!named) continue;
                const char *name = node_name(m);
                bool dup = false;
                for (size_t j = 0; j < i && !dup; j++) {
                        const struct cnode *o = idx[j] >= 0 ? cnode_get(list->children[j], "name") : NULL;
                        if (o && strcmp(o->value, name) == 0) {
                                cfg_error(c, cnode_get(m, "name"),
                                          "duplicate diskimage '%s' (first defined at line %u)", name, o->line);
                                dup = true;
                        }
                }
                if (!dup) idx[i] = (ssize_t)i;
        }

        struct cctx quiet = { .file = c->file, .file_index = c->file_index, .diags = NULL };
        cfg->diskimages = xnew(struct config_diskimage, n);
        _cleanup_free_ size_t *chain = xnew(size_t, n + 1);
        for (size_t i = 0; i < n; i++) {
                if (idx[i] < 0) continue;
                const struct cnode *m = list->children[i];
                /* Walk the parents up to the root; at most n steps or it is a cycle. */
                size_t len = 0, cur = i;
                bool ok = true;
                for (;;) {
                        chain[len++] = cur;
                        const struct cnode *pv = cnode_get(list->children[cur], "parent");
                        if (!pv || pv->type != CNODE_SCALAR || pv->bad || cnode_is_null(pv)) break;
                        ssize_t found = -1;
                        for (size_t j = 0; j < n && found < 0; j++)
                                if (idx[j] >= 0 && strcmp(node_name(list->children[j]), pv->value) == 0)
                                        found = (ssize_t)j;
                        if (found < 0) {
                                if (cur == i)
                                        cfg_error(c, pv, "parent '%s' of diskimage '%s' is not defined", pv->value,
                                                  node_name(m));
                                ok = false;
                                break;
                        }
                        if ((size_t)found == i || len > n) {
                                if ((size_t)found == i) {
                                        /* Report the cycle once per member, at its `parent`. */
                                        _cleanup_free_ char *txt = NULL;
                                        size_t tl = 0;
                                        FILE *f = open_memstream(&txt, &tl);
                                        if (f) {
                                                for (size_t k = 0; k < len; k++)
                                                        fprintf(f, "%s -> ", node_name(list->children[chain[k]]));
                                                fputs(node_name(m), f);
                                                fclose(f);
                                        }
                                        cfg_error(c, cnode_get(m, "parent"), "diskimage parent cycle: %s",
                                                  txt ? txt : "?");
                                }
                                ok = false;
                                break;
                        }
                        cur = (size_t)found;
                }
                if (!ok) continue;
                struct config_diskimage *d = &cfg->diskimages[cfg->n_diskimages++];
                diskimage_defaults(d);
                for (size_t k = len; k-- > 0;) diskimage_apply(&quiet, d, list->children[chain[k]], "");
                /* `abstract` and `parent` describe this image only, they are not inherited. */
                d->abstract = false;
                cfg_bool(&quiet, m, "abstract", "", &d->abstract);
                free(d->parent);
                d->parent = NULL;
                cfg_str(&quiet, m, "parent", "", &d->parent);
        }
}

/* ---------------------------------------------------------------- zookeeper */

static void parse_zk_servers(struct cctx *c, struct config *cfg, const struct cnode *list) {
        static const char *const keys[] = { "host", "port", "chroot", NULL };
        for (size_t i = 0; i < cfg->n_zk_servers; i++) {
                free(cfg->zk_servers[i].host);
                free(cfg->zk_servers[i].chroot);
        }
        free(cfg->zk_servers);
        cfg->zk_servers = xnew(struct config_zk_server, list->n);
        cfg->n_zk_servers = 0;
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("zookeeper-servers entry #%zu", i + 1);
                if (!cfg_expect_map(c, m, where)) continue;
                cfg_check_keys(c, m, keys, where);
                struct config_zk_server s = { .port = 2281 };
                cfg_require(c, m, "host", where);
                cfg_str(c, m, "host", where, &s.host);
                if (cfg_int(c, m, "port", where, &s.port) > 0 && (s.port < 1 || s.port > 65535))
                        cfg_error(c, cnode_get(m, "port"), "'port' in %s: %" PRId64 " is not a TCP port", where,
                                  s.port);
                if (cfg_str(c, m, "chroot", where, &s.chroot) > 0 && s.chroot[0] != '/')
                        cfg_error(c, cnode_get(m, "chroot"), "'chroot' in %s: '%s' must start with '/'", where,
                                  s.chroot);
                if (!s.host) {
                        free(s.chroot);
                        continue;
                }
                cfg->zk_servers[cfg->n_zk_servers++] = s;
        }
        /* libzookeeper takes one chroot for the whole ensemble. */
        const struct config_zk_server *first = NULL;
        for (size_t i = 0; i < cfg->n_zk_servers; i++) {
                const struct config_zk_server *s = &cfg->zk_servers[i];
                if (!s->chroot) continue;
                if (!first)
                        first = s;
                else if (strcmp(first->chroot, s->chroot) != 0)
                        cfg_error(c, list, "zookeeper-servers: all servers must use the same chroot ('%s' and '%s')",
                                  first->chroot, s->chroot);
        }
}

/* The ZooKeeper client reads these files on every connect, where a bad one
 * only shows as failing connects: check that each can be read now. A relative
 * path is made absolute against the working directory, the one it was checked
 * in (a detached daemon runs in /). */
static void parse_zk_tls_file(struct cctx *c, const struct cnode *m, const char *key, char **dst) {
        if (cfg_str(c, m, key, "zookeeper-tls", dst) <= 0) return;
        const struct cnode *v = cnode_get(m, key);
        if (!**dst) {
                cfg_error(c, v, "'%s' in zookeeper-tls: the path is empty", key);
                return;
        }
        /* The client takes "ca,cert,key" as one comma-separated string. */
        if (strchr(*dst, ',')) {
                cfg_error(c, v, "'%s' in zookeeper-tls: '%s' has a comma, which the ZooKeeper C client cannot take",
                          key, *dst);
                return;
        }
        if ((*dst)[0] != '/') {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (cwd) {
                        char *abs = xasprintf("%s/%s", cwd, *dst);
                        free(*dst);
                        *dst = abs;
                }
        }
        /* stat first: opening a device can have effects. */
        struct stat st;
        int fd = -1;
        if (stat(*dst, &st) < 0 || (S_ISREG(st.st_mode) && (fd = open(*dst, O_RDONLY | O_CLOEXEC)) < 0))
                cfg_error(c, v, "'%s' in zookeeper-tls: cannot read '%s': %s", key, v->value, strerror(errno));
        else if (!S_ISREG(st.st_mode))
                cfg_error(c, v, "'%s' in zookeeper-tls: '%s' is not a regular file", key, v->value);
        if (fd >= 0) close(fd);
}

void cfg_parse_zk_tls(struct cctx *c, const struct cnode *root, char **ca, char **cert, char **key) {
        static const char *const keys[] = { "cert", "key", "ca", NULL };
        const struct cnode *m = cnode_get(root, "zookeeper-tls");
        if (!m) return;
        if (!cfg_expect_map(c, m, "zookeeper-tls")) return;
        cfg_check_keys(c, m, keys, "zookeeper-tls");
        for (size_t i = 0; keys[i]; i++) cfg_require(c, m, keys[i], "zookeeper-tls");
        parse_zk_tls_file(c, m, "cert", cert);
        parse_zk_tls_file(c, m, "key", key);
        parse_zk_tls_file(c, m, "ca", ca);
}

static void parse_zk_tls(struct cctx *c, struct config *cfg, const struct cnode *root) {
        cfg_parse_zk_tls(c, root, &cfg->zk_tls_ca, &cfg->zk_tls_cert, &cfg->zk_tls_key);
}

/* ---------------------------------------------------------- tenant limits */

static void parse_tenant_limits(struct cctx *c, struct config *cfg, const struct cnode *list) {
        cfg->tenant_limits = xnew(struct config_tenant_limit, list->n);
        for (size_t i = 0; i < list->n; i++) {
                const struct cnode *m = list->children[i];
                _cleanup_free_ char *where = xasprintf("tenant-resource-limits entry #%zu", i + 1);
                if (!cfg_expect_map(c, m, where)) continue;
                const struct cnode *tn = cnode_get(m, "tenant-name");
                if (tn && tn->type == CNODE_SCALAR && !cnode_is_null(tn)) {
                        free(where);
                        where = xasprintf("tenant-resource-limits of tenant '%s'", tn->value);
                }
                struct config_tenant_limit t = {
                        .max_servers = CONFIG_UNLIMITED, .max_cores = CONFIG_UNLIMITED,
                        .max_ram = CONFIG_UNLIMITED, .max_volumes = CONFIG_UNLIMITED,
                        .max_volume_gb = CONFIG_UNLIMITED,
                };
                cfg_require(c, m, "tenant-name", where);
                cfg_str(c, m, "tenant-name", where, &t.tenant_name);
                static const struct {
                        const char *key;
                        size_t off;
                } known[] = {
                        { "max-servers", offsetof(struct config_tenant_limit, max_servers) },
                        { "max-cores", offsetof(struct config_tenant_limit, max_cores) },
                        { "max-ram", offsetof(struct config_tenant_limit, max_ram) },
                        { "max-volumes", offsetof(struct config_tenant_limit, max_volumes) },
                        { "max-volume-gb", offsetof(struct config_tenant_limit, max_volume_gb) },
                };
                for (size_t k = 0; k < cnode_map_size(m); k++) {
                        const struct cnode *key = cnode_map_key(m, k);
                        if (key->bad || strcmp(key->value, "tenant-name") == 0) continue;
                        int64_t v;
                        if (cfg_int(c, m, key->value, where, &v) <= 0) continue;
                        bool matched = false;
                        for (size_t q = 0; q < ELEMENTSOF(known) && !matched; q++)
                                if (strcmp(known[q].key, key->value) == 0) {
                                        *(int64_t *)((char *)&t + known[q].off) = v;
                                        matched = true;
                                }
                        if (!matched) {
                                _cleanup_free_ char *txt = xasprintf("%" PRId64, v);
                                strmap_set(&t.other, key->value, txt);
                        }
                }
                if (!t.tenant_name) {
                        strmap_clear(&t.other);
                        continue;
                }
                for (size_t j = 0; j < cfg->n_tenant_limits; j++)
                        if (strcmp(cfg->tenant_limits[j].tenant_name, t.tenant_name) == 0) {
                                cfg_error(c, tn, "duplicate tenant-resource-limits for tenant '%s'", t.tenant_name);
                                break;
                        }
                cfg->tenant_limits[cfg->n_tenant_limits++] = t;
        }
}

/* ---------------------------------------------------------------- formats */

static void compute_formats(struct config *cfg) {
        for (size_t i = 0; i < cfg->n_diskimages; i++) {
                struct config_diskimage *d = &cfg->diskimages[i];
                if (d->formats.n > 0) {
                        strv_copy(&d->needed_formats, &d->formats);
                        continue;
                }
                for (size_t p = 0; p < cfg->n_providers; p++) {
                        const struct config_provider *pr = &cfg->providers[p];
                        for (size_t k = 0; k < pr->n_diskimages; k++) {
                                if (!pr->diskimages[k].name || strcmp(pr->diskimages[k].name, d->name) != 0) continue;
                                /* openstack: clouds.yaml image_format, default qcow2 (we do not read
                                 * clouds.yaml here); libvirt overlays need qcow2. */
                                if (!config_strv_contains(&d->needed_formats, "qcow2"))
                                        strv_add(&d->needed_formats, "qcow2");
                        }
                }
        }
}

/* ------------------------------------------------------------- top level */

static void config_defaults(struct config *cfg) {
        cfg->webapp_port = 8005;
        cfg->webapp_listen_address = xstrdup("0.0.0.0");
        cfg->build_log_dir = xstrdup("/var/log/nodepool/builds");
        cfg->build_log_retention = 7;
        cfg->zk_timeout = 10.0;
}

static void parse_top(struct cctx *c, struct config *cfg, const struct cnode *root) {
        static const char *const keys[] = {
                "webapp", "elements-dir", "images-dir", "build-log-dir", "build-log-retention", "zookeeper-servers",
                "zookeeper-tls", "zookeeper-timeout", "labels", "diskimages", "providers", "max-hold-age",
                "tenant-resource-limits", NULL,
        };
        const char *where = "the top level";
        cfg_check_keys(c, root, keys, where);

        const struct cnode *w = cnode_get(root, "webapp");
        if (w && !cnode_is_null(w) && cfg_expect_map(c, w, "webapp")) {
                static const char *const wkeys[] = { "port", "listen_address", NULL };
                cfg_check_keys(c, w, wkeys, "webapp");
                if (cfg_int(c, w, "port", "webapp", &cfg->webapp_port) > 0 &&
                    (cfg->webapp_port < 0 || cfg->webapp_port > 65535))
                        cfg_error(c, cnode_get(w, "port"), "'port' in webapp: %" PRId64 " is not a TCP port",
                                  cfg->webapp_port);
                cfg_str(c, w, "listen_address", "webapp", &cfg->webapp_listen_address);
        }
        cfg_str(c, root, "elements-dir", where, &cfg->elements_dir);
        cfg_str(c, root, "images-dir", where, &cfg->images_dir);
        cfg_str(c, root, "build-log-dir", where, &cfg->build_log_dir);
        cfg_int(c, root, "build-log-retention", where, &cfg->build_log_retention);
        if (cfg_double(c, root, "zookeeper-timeout", where, &cfg->zk_timeout) > 0 && cfg->zk_timeout <= 0)
                cfg_error(c, cnode_get(root, "zookeeper-timeout"), "'zookeeper-timeout' must be positive");
        if (cfg_int(c, root, "max-hold-age", where, &cfg->max_hold_age) > 0 && cfg->max_hold_age < 0)
                cfg->max_hold_age = 0;  /* ≤0 means infinite, as in Nodepool */

        const struct cnode *l;
        if ((l = cfg_list(c, root, "zookeeper-servers", where))) parse_zk_servers(c, cfg, l);
        parse_zk_tls(c, cfg, root);
        if ((l = cfg_list(c, root, "labels", where))) parse_labels(c, cfg, l);
        if ((l = cfg_list(c, root, "diskimages", where))) parse_diskimages(c, cfg, l);
        if ((l = cfg_list(c, root, "providers", where))) config_parse_providers(c, cfg, l);
        if ((l = cfg_list(c, root, "tenant-resource-limits", where))) parse_tenant_limits(c, cfg, l);
        compute_formats(cfg);
}

/* Secure file: zookeeper-servers (replace), zookeeper-tls, diskimages[].env-vars (merge). */
static void parse_secure(struct cctx *c, struct config *cfg, const struct cnode *root, const char *main_name) {
        static const char *const keys[] = { "zookeeper-servers", "zookeeper-tls", "diskimages", NULL };
        static const char *const dkeys[] = { "name", "env-vars", NULL };
        const char *where = "the top level of the secure file";
        cfg_check_keys(c, root, keys, where);
        const struct cnode *l;
        if ((l = cfg_list(c, root, "zookeeper-servers", where))) parse_zk_servers(c, cfg, l);
        if (cnode_get(root, "zookeeper-tls")) {
                free(cfg->zk_tls_cert);
                free(cfg->zk_tls_key);
                free(cfg->zk_tls_ca);
                cfg->zk_tls_cert = cfg->zk_tls_key = cfg->zk_tls_ca = NULL;
                parse_zk_tls(c, cfg, root);
        }
        if (!(l = cfg_list(c, root, "diskimages", where))) return;
        for (size_t i = 0; i < l->n; i++) {
                const struct cnode *m = l->children[i];
                _cleanup_free_ char *w = xasprintf("secure diskimage #%zu", i + 1);
                if (!cfg_expect_map(c, m, w)) continue;
                free(w);
                w = cfg_object_name(m, "secure diskimage", i);
                cfg_check_keys(c, m, dkeys, w);
                cfg_require(c, m, "name", w);
                _cleanup_free_ char *name = NULL;
                if (cfg_str(c, m, "name", w, &name) <= 0) continue;
                struct config_diskimage *d = (struct config_diskimage *)config_find_diskimage(cfg, name);
                if (!d) {
                        cfg_error(c, cnode_get(m, "name"), "diskimage '%s' is not defined in %s", name, main_name);
                        continue;
                }
                cfg_strmap(c, m, "env-vars", w, &d->env_vars);
        }
}

static int load_common(const char *name, const char *data, size_t len, const char *secure_name, const char *secure,
                       size_t secure_len, struct config **ret, struct config_diags *diags) {
        struct config_diags local = {};
        struct config_diags *dg = diags ? diags : &local;
        size_t errors_before = config_diags_count(dg, CONFIG_SEVERITY_ERROR);
        _cleanup_(cnode_freep) struct cnode *root = NULL, *sroot = NULL;
        _cleanup_(config_freep) struct config *cfg = xnew(struct config, 1);
        cfg->refs = 1;
        size_t first = dg->n;

        cfg->path = xstrdup(name);
        config_defaults(cfg);
        struct cctx c = { .file = name, .file_index = 0, .diags = dg };
        if (cnode_parse(name, 0, data, len, &root, dg) >= 0) {
                if (!root || cnode_is_null(root))
                        config_diags_add(dg, name, 0, 0, 0, CONFIG_SEVERITY_ERROR,
                                         "the configuration is empty (expected a mapping)");
                else if (cfg_expect_map(&c, root, "the configuration"))
                        parse_top(&c, cfg, root);
        }
        if (secure) {
                struct cctx sc = { .file = secure_name, .file_index = 1, .diags = dg };
                if (cnode_parse(secure_name, 1, secure, secure_len, &sroot, dg) >= 0 && sroot &&
                    !cnode_is_null(sroot) && cfg_expect_map(&sc, sroot, "the secure configuration"))
                        parse_secure(&sc, cfg, sroot, name);
        }
        /* Sort only what this call added. */
        if (dg->n > first) {
                struct config_diags tail = { .items = dg->items + first, .n = dg->n - first };
                config_diags_sort(&tail);
        }
        bool failed = config_diags_count(dg, CONFIG_SEVERITY_ERROR) > errors_before;
        config_diags_clear(&local);
        if (failed) return -EINVAL;
        *ret = TAKE_PTR(cfg);
        return 0;
}

int config_load_buffer(const char *name, const char *data, size_t len, const char *secure_name, const char *secure,
                       size_t secure_len, struct config **ret, struct config_diags *diags) {
        return load_common(name, data, len, secure_name ? secure_name : "<secure>", secure, secure_len, ret, diags);
}

int cfg_read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct config_diags *diags) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        int r;
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = negative_errno();
                config_diags_add(diags, path, 0, 0, 0, CONFIG_SEVERITY_ERROR, "cannot read the file: %s",
                                 strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
                if (S_ISREG(st.st_mode))
                        config_diags_add(diags, path, 0, 0, 0, CONFIG_SEVERITY_ERROR, "the file is larger than %zu MiB",
                                         max >> 20);
                else
                        config_diags_add(diags, path, 0, 0, 0, CONFIG_SEVERITY_ERROR, "not a regular file");
                return S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
        }
        _cleanup_free_ char *buf = xmalloc((size_t)st.st_size + 1);
        size_t len = 0;
        while (len < (size_t)st.st_size) {
                ssize_t k = read(fd, buf + len, (size_t)st.st_size - len);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0) {
                        r = negative_errno();
                        config_diags_add(diags, path, 0, 0, 0, CONFIG_SEVERITY_ERROR, "cannot read the file: %s",
                                         strerror(-r));
                        return r;
                }
                if (k == 0) break;
                len += (size_t)k;
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int config_load(const char *path, const char *secure_path, struct config **ret, struct config_diags *diags) {
        _cleanup_free_ char *data = NULL, *sdata = NULL;
        size_t len = 0, slen = 0;
        int r = cfg_read_file(path, CONFIG_MAX_FILE_SIZE, &data, &len, diags);
        if (r < 0) return r;
        if (secure_path) {
                r = cfg_read_file(secure_path, CONFIG_MAX_FILE_SIZE, &sdata, &slen, diags);
                if (r < 0) return r;
        }
        return load_common(path, data, len, secure_path, sdata, slen, ret, diags);
}

/* ------------------------------------------------------------ accessors */

const struct config_label *config_find_label(const struct config *c, const char *name) {
        for (size_t i = 0; c && name && i < c->n_labels; i++)
                if (strcmp(c->labels[i].name, name) == 0) return &c->labels[i];
        return NULL;
}

const struct config_diskimage *config_find_diskimage(const struct config *c, const char *name) {
        for (size_t i = 0; c && name && i < c->n_diskimages; i++)
                if (strcmp(c->diskimages[i].name, name) == 0) return &c->diskimages[i];
        return NULL;
}

const struct config_provider *config_find_provider(const struct config *c, const char *name) {
        for (size_t i = 0; c && name && i < c->n_providers; i++)
                if (strcmp(c->providers[i].name, name) == 0) return &c->providers[i];
        return NULL;
}

const struct config_pool *config_find_pool(const struct config_provider *p, const char *name) {
        for (size_t i = 0; p && name && i < p->n_pools; i++)
                if (strcmp(p->pools[i].name, name) == 0) return &p->pools[i];
        return NULL;
}

bool config_label_served_by_poold(const struct config *c, const char *label) {
        for (size_t i = 0; c && label && i < c->n_providers; i++) {
                const struct config_provider *p = &c->providers[i];
                for (size_t k = 0; k < p->n_pools; k++) {
                        const struct config_pool *pool = &p->pools[k];
                        for (size_t j = 0; j < pool->n_labels; j++)
                                if (pool->labels[j].name && strcmp(pool->labels[j].name, label) == 0) return true;
                        for (size_t j = 0; j < pool->n_nodes; j++)
                                if (config_strv_contains(&pool->nodes[j].labels, label)) return true;
                }
        }
        return false;
}

bool config_label_foreign_only(const struct config *c, const char *label) {
        if (!c || !label) return false;
        /* The foreign pools first: usually there are none, and the launcher asks
         * this for every waiting request and pool on every pass. */
        for (size_t i = 0; i < c->n_foreign_providers; i++)
                for (size_t k = 0; k < c->foreign_providers[i].n_pools; k++)
                        if (config_strv_contains(&c->foreign_providers[i].pools[k].labels, label))
                                return !config_label_served_by_poold(c, label);
        return false;
}

char *config_zookeeper_hosts(const struct config *c) {
        if (!c || c->n_zk_servers == 0) return NULL;
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (!f) return NULL;
        const char *chroot = NULL;
        for (size_t i = 0; i < c->n_zk_servers; i++) {
                const struct config_zk_server *s = &c->zk_servers[i];
                bool v6 = strchr(s->host, ':') && s->host[0] != '[';
                fprintf(f, "%s%s%s%s:%" PRId64, i ? "," : "", v6 ? "[" : "", s->host, v6 ? "]" : "", s->port);
                if (s->chroot && !chroot) chroot = s->chroot;
        }
        if (chroot) fputs(chroot, f);
        fclose(f);
        return out;
}

const struct zk_tls *config_zookeeper_tls(const struct config *c, struct zk_tls *buf) {
        if (!c || !c->zk_tls_ca || !c->zk_tls_cert || !c->zk_tls_key) return NULL;
        *buf = (struct zk_tls){ .ca = c->zk_tls_ca, .cert = c->zk_tls_cert, .key = c->zk_tls_key };
        return buf;
}

static bool str_eq(const char *a, const char *b) { return a && b ? strcmp(a, b) == 0 : a == b; }

bool config_zookeeper_tls_equal(const struct config *a, const struct config *b) {
        return str_eq(a->zk_tls_ca, b->zk_tls_ca) && str_eq(a->zk_tls_cert, b->zk_tls_cert) &&
               str_eq(a->zk_tls_key, b->zk_tls_key);
}

bool config_provider_equal(const struct config_provider *a, const struct config_provider *b) {
        if (!a || !b) return a == b;
        return strcmp(a->name, b->name) == 0 && a->driver == b->driver && a->canonical && b->canonical &&
               strcmp(a->canonical, b->canonical) == 0;
}

struct config *config_ref(struct config *cfg) {
        if (cfg) __atomic_add_fetch(&cfg->refs, 1, __ATOMIC_RELAXED);
        return cfg;
}

void config_free(struct config *cfg) {
        if (!cfg) return;
        /* Shared by workers that outlive a reload (the builder's providers). */
        if (__atomic_sub_fetch(&cfg->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
        free(cfg->path);
        free(cfg->webapp_listen_address);
        free(cfg->elements_dir);
        free(cfg->images_dir);
        free(cfg->build_log_dir);
        for (size_t i = 0; i < cfg->n_zk_servers; i++) {
                free(cfg->zk_servers[i].host);
                free(cfg->zk_servers[i].chroot);
        }
        free(cfg->zk_servers);
        free(cfg->zk_tls_cert);
        free(cfg->zk_tls_key);
        free(cfg->zk_tls_ca);
        for (size_t i = 0; i < cfg->n_labels; i++) free(cfg->labels[i].name);
        free(cfg->labels);
        for (size_t i = 0; i < cfg->n_diskimages; i++) diskimage_clear(&cfg->diskimages[i]);
        free(cfg->diskimages);
        for (size_t i = 0; i < cfg->n_providers; i++) config_provider_clear(&cfg->providers[i]);
        free(cfg->providers);
        for (size_t i = 0; i < cfg->n_foreign_providers; i++) config_foreign_provider_clear(&cfg->foreign_providers[i]);
        free(cfg->foreign_providers);
        for (size_t i = 0; i < cfg->n_tenant_limits; i++) {
                free(cfg->tenant_limits[i].tenant_name);
                strmap_clear(&cfg->tenant_limits[i].other);
        }
        free(cfg->tenant_limits);
        free(cfg);
}
