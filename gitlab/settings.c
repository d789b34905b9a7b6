/* settings.c — see settings.h.
 *
 * DESIGN: the same cnode tree and schema helpers nodepool.yaml uses
 * (config_internal.h), so diagnostics look the same; every problem is
 * collected before giving up. */
#include "settings.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config_internal.h"

#define SETTINGS_MAX_FILE_SIZE (1024 * 1024)

static const char *const keys[] = {
        "zookeeper-hosts", "zookeeper-timeout", "zookeeper-tls", "label", "label-variable", "allowed-labels",
        "priority", "tenant-name", "requestor", "node-timeout", "lock-timeout", "job-timeout", "cleanup-grace",
        "watch-runner", "state-dir", "log-file", "ssh-key", "ssh-connect-timeout", "builds-dir", "cache-dir",
        NULL,
};

void settings_free(struct settings *s) {
        if (!s) return;
        free(s->path);
        free(s->zk_hosts);
        free(s->zk_tls_cert);
        free(s->zk_tls_key);
        free(s->zk_tls_ca);
        free(s->label);
        free(s->label_variable);
        strv_clear(&s->allowed_labels);
        free(s->tenant_name);
        free(s->requestor);
        free(s->state_dir);
        free(s->log_file);
        free(s->ssh_key);
        free(s->builds_dir);
        free(s->cache_dir);
        free(s);
}

static struct settings *settings_defaults(void) {
        struct settings *s = xnew(struct settings, 1);
        char host[256] = "localhost";
        (void)gethostname(host, sizeof host - 1);
        s->zk_timeout = 10.0;
        s->label_variable = xstrdup("POOLD_LABEL");
        s->priority = 200;
        s->tenant_name = xstrdup("gitlab");
        s->requestor = xasprintf("gitlab-runner:%s", host);
        s->node_timeout = 1800;
        s->lock_timeout = 30;
        s->job_timeout = 3600;
        s->cleanup_grace = 300;
        s->watch_runner = true;
        s->state_dir = xstrdup("/var/lib/poold-gitlab-executor");
        s->ssh_connect_timeout = 30;
        s->builds_dir = xstrdup("/tmp/gitlab/builds");
        s->cache_dir = xstrdup("/tmp/gitlab/cache");
        return s;
}

static void positive(struct cctx *c, const struct cnode *root, const char *key, int64_t *dst) {
        if (cfg_int(c, root, key, "the settings", dst) > 0 && *dst <= 0)
                cfg_error(c, cnode_get(root, key), "'%s': %" PRId64 " must be a positive number of seconds", key,
                          *dst);
}

static void absolute(struct cctx *c, const struct cnode *root, const char *key, char **dst) {
        if (cfg_str(c, root, key, "the settings", dst) > 0 && (*dst)[0] != '/')
                cfg_error(c, cnode_get(root, key), "'%s': '%s' must be an absolute path", key, *dst);
}

static bool env_name_ok(const char *s) {
        if (!*s || (*s >= '0' && *s <= '9')) return false;
        for (; *s; s++)
                if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
                        return false;
        return true;
}

static void parse(struct cctx *c, struct settings *s, const struct cnode *root) {
        const char *where = "the settings";
        cfg_check_keys(c, root, keys, where);

        cfg_require(c, root, "zookeeper-hosts", where);
        if (cfg_str(c, root, "zookeeper-hosts", where, &s->zk_hosts) > 0 && !s->zk_hosts[0])
                cfg_error(c, cnode_get(root, "zookeeper-hosts"), "'zookeeper-hosts' is empty");
        if (cfg_double(c, root, "zookeeper-timeout", where, &s->zk_timeout) > 0 && s->zk_timeout <= 0)
                cfg_error(c, cnode_get(root, "zookeeper-timeout"), "'zookeeper-timeout' must be positive");
        cfg_parse_zk_tls(c, root, &s->zk_tls_ca, &s->zk_tls_cert, &s->zk_tls_key);

        cfg_str(c, root, "label", where, &s->label);
        if (cfg_str(c, root, "label-variable", where, &s->label_variable) > 0 && !env_name_ok(s->label_variable))
                cfg_error(c, cnode_get(root, "label-variable"), "'label-variable': '%s' is not a variable name",
                          s->label_variable);
        cfg_strv(c, root, "allowed-labels", where, &s->allowed_labels, false);
        if (s->label && s->allowed_labels.n && !config_strv_contains(&s->allowed_labels, s->label))
                cfg_error(c, cnode_get(root, "label"), "'label': '%s' is not in allowed-labels", s->label);
        if (cfg_int(c, root, "priority", where, &s->priority) > 0 && (s->priority < 0 || s->priority > 999))
                cfg_error(c, cnode_get(root, "priority"), "'priority': %" PRId64 " is not in 0..999 (3 digits)",
                          s->priority);
        cfg_str(c, root, "tenant-name", where, &s->tenant_name);
        cfg_str(c, root, "requestor", where, &s->requestor);

        positive(c, root, "node-timeout", &s->node_timeout);
        positive(c, root, "lock-timeout", &s->lock_timeout);
        positive(c, root, "job-timeout", &s->job_timeout);
        positive(c, root, "ssh-connect-timeout", &s->ssh_connect_timeout);
        if (cfg_int(c, root, "cleanup-grace", where, &s->cleanup_grace) > 0 && s->cleanup_grace < 0)
                cfg_error(c, cnode_get(root, "cleanup-grace"), "'cleanup-grace' must not be negative");
        cfg_bool(c, root, "watch-runner", where, &s->watch_runner);

        absolute(c, root, "state-dir", &s->state_dir);
        absolute(c, root, "log-file", &s->log_file);
        cfg_require(c, root, "ssh-key", where);
        absolute(c, root, "ssh-key", &s->ssh_key);
        absolute(c, root, "builds-dir", &s->builds_dir);
        absolute(c, root, "cache-dir", &s->cache_dir);
        if (!s->log_file) s->log_file = xasprintf("%s/executor.log", s->state_dir);
}

int settings_load_buffer(const char *name, const char *data, size_t len, struct settings **ret,
                         struct config_diags *diags) {
        struct config_diags local = {};
        struct config_diags *d = diags ? diags : &local;
        size_t errors_before = config_diags_count(d, CONFIG_SEVERITY_ERROR);
        struct cctx c = { .file = name, .file_index = 0, .diags = d };
        _cleanup_(cnode_freep) struct cnode *root = NULL;
        _cleanup_(settings_freep) struct settings *s = settings_defaults();
        s->path = xstrdup(name);

        int r = cnode_parse(name, 0, data, len, &root, d);
        if (r >= 0) {
                if (!root)
                        config_diags_add(d, name, 0, 0, 0, CONFIG_SEVERITY_ERROR, "the file is empty");
                else if (cfg_expect_map(&c, root, "the settings"))
                        parse(&c, s, root);
        }
        config_diags_sort(d);
        bool failed = r < 0 || config_diags_count(d, CONFIG_SEVERITY_ERROR) > errors_before;
        config_diags_clear(&local);
        if (failed) return -EINVAL;
        *ret = TAKE_PTR(s);
        return 0;
}

int settings_load(const char *path, struct settings **ret, struct config_diags *diags) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int r = cfg_read_file(path, SETTINGS_MAX_FILE_SIZE, &buf, &len, diags);
        if (r < 0) return r;
        return settings_load_buffer(path, buf, len, ret, diags);
}

bool settings_label_allowed(const struct settings *s, const char *label) {
        return s->allowed_labels.n == 0 || config_strv_contains(&s->allowed_labels, label);
}

const struct zk_tls *settings_zk_tls(const struct settings *s, struct zk_tls *buf) {
        if (!s->zk_tls_ca || !s->zk_tls_cert || !s->zk_tls_key) return NULL;
        *buf = (struct zk_tls){ .ca = s->zk_tls_ca, .cert = s->zk_tls_cert, .key = s->zk_tls_key };
        return buf;
}
