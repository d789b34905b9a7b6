/* clouds_yaml.c — clouds.yaml lookup and cloud selection (see clouds_yaml.h).
 *
 * DESIGN: both files are parsed with the config loader's bounded YAML tree
 * (config_yaml.h: no alias expansion, node and depth caps). Rather than
 * building a merged tree, every key is looked up in secure.yaml first and
 * clouds.yaml second, which is exactly a deep merge for the keys we read. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "clouds_yaml.h"
#include "config_yaml.h"
#include "dbuf.h"

#define CLOUDS_FILE_MAX (1024 * 1024)

static const char *const auth_names[_CLOUDS_AUTH_MAX] = {
        [CLOUDS_AUTH_PASSWORD] = "password",
        [CLOUDS_AUTH_APPLICATION_CREDENTIAL] = "v3applicationcredential",
};

const char *clouds_auth_type_to_string(enum clouds_auth_type t) {
        return t >= 0 && t < _CLOUDS_AUTH_MAX ? auth_names[t] : NULL;
}

enum clouds_auth_type clouds_auth_type_from_string(const char *s) {
        if (!s || strcmp(s, "password") == 0 || strcmp(s, "v3password") == 0)
                return CLOUDS_AUTH_PASSWORD;
        if (strcmp(s, "v3applicationcredential") == 0)
                return CLOUDS_AUTH_APPLICATION_CREDENTIAL;
        return _CLOUDS_AUTH_INVALID;
}

void clouds_cloud_free(struct clouds_cloud *c) {
        if (!c)
                return;
        free(c->name);
        free(c->path);
        free(c->auth_url);
        free(c->username);
        free(c->user_id);
        free(c->password);
        free(c->project_name);
        free(c->project_id);
        free(c->user_domain_name);
        free(c->user_domain_id);
        free(c->project_domain_name);
        free(c->project_domain_id);
        free(c->app_cred_id);
        free(c->app_cred_name);
        free(c->app_cred_secret);
        free(c->region_name);
        free(c->interface);
        free(c->image_format);
        free(c->cacert);
        free(c->warning);
        free(c);
}

/* The two views of one cloud: secure (may be NULL) over main (may be NULL). */
struct view {
        const struct cnode *sec, *main;
};

static const struct cnode *map_get(const struct cnode *m, const char *key) {
        return m && m->type == CNODE_MAP ? cnode_get(m, key) : NULL;
}

static const struct cnode *view_node(const struct view *v, const char *key) {
        const struct cnode *n = map_get(v->sec, key);
        return n ? n : map_get(v->main, key);
}

static struct view view_sub(const struct view *v, const char *key) {
        return (struct view){ map_get(v->sec, key), map_get(v->main, key) };
}

/* Scalar value of KEY as a copy; NULL when absent/null. -EINVAL if not a scalar. */
static int view_str(const struct view *v, const char *key, char **ret, char **reterr_msg) {
        const struct cnode *n = view_node(v, key);
        if (!n || (n->type == CNODE_SCALAR && cnode_is_null(n))) {
                *ret = NULL;
                return 0;
        }
        if (n->type != CNODE_SCALAR) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("%s must be a string (line %u)", key, n->line);
                return -EINVAL;
        }
        *ret = xstrdup(n->value);
        return 0;
}

static int parse_bool(const struct cnode *n, bool def, bool *ret) {
        if (!n || n->type != CNODE_SCALAR || cnode_is_null(n)) {
                *ret = def;
                return n && n->type != CNODE_SCALAR ? -EINVAL : 0;
        }
        const char *s = n->value;
        if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") || !strcmp(s, "1"))
                *ret = true;
        else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") || !strcmp(s, "0"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_tree(const char *name, unsigned idx, const char *data, size_t len, struct cnode **ret,
                      char **reterr_msg) {
        struct config_diags diags = { 0 };
        struct cnode *root = NULL;
        int r = cnode_parse(name, idx, data, len, &root, &diags);
        if (r >= 0 && config_diags_count(&diags, CONFIG_SEVERITY_ERROR) > 0)
                r = -EINVAL;
        if (r < 0) {
                if (reterr_msg) {
                        const struct config_diag *d = diags.n ? &diags.items[0] : NULL;
                        *reterr_msg = d ? xasprintf("%s:%u:%u: %s", name, d->line, d->column, d->message)
                                        : xasprintf("%s: cannot parse", name);
                }
                cnode_free(root);
                config_diags_clear(&diags);
                return r;
        }
        config_diags_clear(&diags);
        *ret = root;
        return 0;
}

/* clouds.<cloud> of a parsed file, or NULL. */
static const struct cnode *cloud_node(const struct cnode *root, const char *cloud) {
        return map_get(map_get(root, "clouds"), cloud);
}

/* Is REGION among the cloud's `regions` (strings or {name: ...})? Sets *ret_first
 * to the first listed region. Returns 1 yes, 0 no, -1 no regions list. */
static int region_listed(const struct cnode *regions, const char *region, const char **ret_first) {
        if (!regions || regions->type != CNODE_SEQ || regions->n == 0)
                return -1;
        int found = 0;
        for (size_t i = 0; i < regions->n; i++) {
                const struct cnode *it = regions->children[i];
                const struct cnode *nm = it->type == CNODE_MAP ? cnode_get(it, "name") : it;
                if (!nm || nm->type != CNODE_SCALAR)
                        continue;
                if (!*ret_first)
                        *ret_first = nm->value;
                if (region && strcmp(nm->value, region) == 0)
                        found = 1;
        }
        return found;
}

int clouds_yaml_parse(const char *name, const char *data, size_t len, const char *secure, size_t secure_len,
                      const char *cloud, const char *region, struct clouds_cloud **ret, char **reterr_msg) {
        _cleanup_(cnode_freep) struct cnode *main_root = NULL, *sec_root = NULL;
        _cleanup_(clouds_cloud_freep) struct clouds_cloud *c = NULL;
        _cleanup_free_ char *auth_type = NULL, *idv = NULL, *domain_name = NULL, *domain_id = NULL;
        _cleanup_free_ char *tenant_name = NULL, *tenant_id = NULL;
        int r;

        if (!cloud || !*cloud) {
                if (reterr_msg)
                        *reterr_msg = xstrdup("no cloud name given");
                return -EINVAL;
        }
        r = parse_tree(name, 0, data, len, &main_root, reterr_msg);
        if (r < 0)
                return r;
        if (secure) {
                r = parse_tree("secure.yaml", 1, secure, secure_len, &sec_root, reterr_msg);
                if (r < 0)
                        return r;
        }
        struct view v = { cloud_node(sec_root, cloud), cloud_node(main_root, cloud) };
        if (!v.main && !v.sec) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("cloud '%s' is not defined in %s", cloud, name);
                return -ENOENT;
        }
        struct view auth = view_sub(&v, "auth");

        c = xnew(struct clouds_cloud, 1);
        c->name = xstrdup(cloud);
        c->path = xstrdup(name);
        struct {
                const struct view *v;
                const char *key;
                char **dst;
        } keys[] = {
                { &v, "auth_type", &auth_type },
                { &v, "identity_api_version", &idv },
                { &v, "interface", &c->interface },
                { &v, "image_format", &c->image_format },
                { &v, "cacert", &c->cacert },
                { &v, "region_name", &c->region_name },
                { &auth, "auth_url", &c->auth_url },
                { &auth, "username", &c->username },
                { &auth, "user_id", &c->user_id },
                { &auth, "password", &c->password },
                { &auth, "project_name", &c->project_name },
                { &auth, "project_id", &c->project_id },
                { &auth, "tenant_name", &tenant_name },
                { &auth, "tenant_id", &tenant_id },
                { &auth, "user_domain_name", &c->user_domain_name },
                { &auth, "user_domain_id", &c->user_domain_id },
                { &auth, "project_domain_name", &c->project_domain_name },
                { &auth, "project_domain_id", &c->project_domain_id },
                { &auth, "domain_name", &domain_name },
                { &auth, "domain_id", &domain_id },
                { &auth, "application_credential_id", &c->app_cred_id },
                { &auth, "application_credential_name", &c->app_cred_name },
                { &auth, "application_credential_secret", &c->app_cred_secret },
        };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                r = view_str(keys[i].v, keys[i].key, keys[i].dst, reterr_msg);
                if (r < 0)
                        return r;
        }
        if (!c->project_name && tenant_name)
                c->project_name = TAKE_PTR(tenant_name);
        if (!c->project_id && tenant_id)
                c->project_id = TAKE_PTR(tenant_id);

        c->auth_type = clouds_auth_type_from_string(auth_type);
        if (c->auth_type < 0) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("cloud '%s': auth_type '%s' is not supported "
                                                "(password, v3applicationcredential)", cloud, auth_type);
                return -EINVAL;
        }
        if (idv && strcmp(idv, "3") != 0 && strcmp(idv, "3.0") != 0 && strcmp(idv, "v3") != 0) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("cloud '%s': identity_api_version %s is not supported (3 only)",
                                                cloud, idv);
                return -EINVAL;
        }
        if (!c->auth_url) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("cloud '%s': auth.auth_url is missing", cloud);
                return -EINVAL;
        }
        if (c->auth_type == CLOUDS_AUTH_PASSWORD) {
                if ((!c->username && !c->user_id) || !c->password) {
                        if (reterr_msg)
                                *reterr_msg = xasprintf("cloud '%s': password auth needs auth.username (or "
                                                        "user_id) and auth.password", cloud);
                        return -EINVAL;
                }
                /* Domains default like keystoneauth: domain_* for both, else "Default". */
                if (!c->user_domain_name && !c->user_domain_id) {
                        if (domain_id)
                                c->user_domain_id = xstrdup(domain_id);
                        else
                                c->user_domain_name = xstrdup(domain_name ? domain_name : "Default");
                }
                if ((c->project_name) && !c->project_domain_name && !c->project_domain_id) {
                        if (domain_id)
                                c->project_domain_id = xstrdup(domain_id);
                        else
                                c->project_domain_name = xstrdup(domain_name ? domain_name : "Default");
                }
        } else {
                if (!c->app_cred_secret || (!c->app_cred_id && !c->app_cred_name)) {
                        if (reterr_msg)
                                *reterr_msg = xasprintf("cloud '%s': v3applicationcredential auth needs "
                                                        "auth.application_credential_secret and _id (or _name)",
                                                        cloud);
                        return -EINVAL;
                }
                if (!c->app_cred_id && !c->username && !c->user_id) {
                        if (reterr_msg)
                                *reterr_msg = xasprintf("cloud '%s': an application credential given by name "
                                                        "needs auth.username or auth.user_id", cloud);
                        return -EINVAL;
                }
                if (c->username && !c->user_domain_name && !c->user_domain_id)
                        c->user_domain_name = xstrdup(domain_name ? domain_name : "Default");
        }

        const struct cnode *verify = view_node(&v, "verify");
        r = parse_bool(verify, true, &c->verify);
        if (r < 0) {
                if (reterr_msg)
                        *reterr_msg = xasprintf("cloud '%s': verify must be a boolean", cloud);
                return r;
        }

        const char *first = NULL;
        int listed = region_listed(view_node(&v, "regions"), region, &first);
        if (region) {
                if (listed == 0) {
                        if (reterr_msg)
                                *reterr_msg = xasprintf("cloud '%s' has no region '%s'", cloud, region);
                        return -ENOENT;
                }
                free(c->region_name);
                c->region_name = xstrdup(region);
        } else if (!c->region_name && first) {
                c->region_name = xstrdup(first);
        }
        if (!c->interface)
                c->interface = xstrdup("public");
        if (!c->image_format)
                c->image_format = xstrdup("qcow2");
        /* keystoneauth accepts "publicURL" and friends too. */
        char *u = strstr(c->interface, "URL");
        if (u && u[3] == '\0')
                *u = '\0';
        *ret = TAKE_PTR(c);
        return 0;
}

static bool file_exists(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int clouds_yaml_find(const char *kind, char **ret_path) {
        const char *envname = strcmp(kind, "secure") == 0 ? "OS_CLIENT_SECURE_FILE" : "OS_CLIENT_CONFIG_FILE";
        const char *env = getenv(envname);
        if (env && *env) {
                if (!file_exists(env))
                        return -ENOENT;
                *ret_path = xstrdup(env);
                return 0;
        }
        const char *home = getenv("HOME");
        _cleanup_free_ char *userdir = home && *home ? xasprintf("%s/.config/openstack", home) : NULL;
        const char *dirs[] = { ".", userdir, "/etc/openstack" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                if (!dirs[i])
                        continue;
                for (int ext = 0; ext < 2; ext++) {
                        _cleanup_free_ char *p = xasprintf("%s/%s.%s", dirs[i], kind, ext ? "yml" : "yaml");
                        if (file_exists(p)) {
                                *ret_path = TAKE_PTR(p);
                                return 0;
                        }
                }
        }
        return -ENOENT;
}

static int read_capped(const char *path, struct dbuf *b, char **reterr_msg, char **warning) {
        int r = dbuf_read_file(b, path);
        if (r < 0) {
                if (reterr_msg)
                        *reterr_msg = r == -E2BIG ? xasprintf("%s is larger than %d bytes", path, CLOUDS_FILE_MAX)
                                                  : xasprintf("cannot read %s: %s", path, strerror(-r));
                return r;
        }
        struct stat st;
        if (stat(path, &st) == 0 && (st.st_mode & 077) && !*warning)
                *warning = xasprintf("%s holds credentials but is accessible to group or others (mode %04o)",
                                     path, (unsigned)(st.st_mode & 07777));
        return 0;
}

int clouds_yaml_load(const char *cloud, const char *region, struct clouds_cloud **ret, char **reterr_msg) {
        _cleanup_free_ char *path = NULL, *spath = NULL, *warning = NULL;
        struct dbuf main_b = DBUF_INIT(CLOUDS_FILE_MAX), sec_b = DBUF_INIT(CLOUDS_FILE_MAX);
        int r = clouds_yaml_find("clouds", &path);
        if (r < 0) {
                if (reterr_msg)
                        *reterr_msg = xstrdup("no clouds.yaml found (OS_CLIENT_CONFIG_FILE, ./clouds.yaml, "
                                              "~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)");
                return r;
        }
        r = read_capped(path, &main_b, reterr_msg, &warning);
        if (r < 0)
                goto out;
        if (clouds_yaml_find("secure", &spath) >= 0) {
                r = read_capped(spath, &sec_b, reterr_msg, &warning);
                if (r < 0)
                        goto out;
        }
        struct clouds_cloud *c = NULL;
        r = clouds_yaml_parse(path, dbuf_str(&main_b), main_b.len, spath ? dbuf_str(&sec_b) : NULL, sec_b.len,
                              cloud, region, &c, reterr_msg);
        if (r < 0)
                goto out;
        c->warning = TAKE_PTR(warning);
        *ret = c;
out:
        dbuf_free(&main_b);
        dbuf_free(&sec_b);
        return r;
}
