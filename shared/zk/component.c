/* component.c — see component.h.
 *
 * DESIGN. Mirrors nodepool's ComponentRegistry: create with makepath,
 * ephemeral and sequence; updates are whole-object sets guarded by the znode
 * version. A state listener re-creates the znode after a session expiry
 * (the ephemeral died with the old session). */
#include "component.h"

#include <string.h>

#include "alloc.h"
#include "log.h"

struct component {
        struct zk *zk;
        char *kind;
        json_t *content;
        char *path;     /* registered znode, or NULL */
        int32_t version; /* its znode version */
        bool wanted;    /* registered by the owner (re-register after expiry) */
        bool lost;      /* the session holding our ephemeral expired */
};

static const char *const states[] = { "initializing", "running", "paused", "stopped" };

static bool valid_name(const char *s) { return s && *s && !strchr(s, '/'); }

static void on_state(struct zk *zk, enum zk_state s, void *userdata) {
        struct component *c = userdata;
        if (!c->wanted) return;
        if (s == ZK_STATE_EXPIRED)
                c->lost = true;
        else if (s == ZK_STATE_CONNECTED && c->lost) {
                free(c->path);
                c->path = NULL;
                int r = component_register(c);
                if (r < 0)
                        log_debug_errno(r, "component: re-registering %s failed, next reconnect retries: %m", c->kind);
                else
                        c->lost = false;
        }
}

int component_new(struct zk *zk, const char *kind, const char *hostname, const char *version,
                  struct component **ret) {
        if (!zk || !valid_name(kind) || !valid_name(hostname) || !version) return -EINVAL;
        struct component *c = xnew(struct component, 1);
        c->zk = zk;
        c->kind = xstrdup(kind);
        c->content = json_pack("{s:s, s:s, s:i, s:s, s:s}", "hostname", hostname, "kind", kind, "model_api", 0,
                               "state", "initializing", "version", version);
        if (!c->content) abort(); /* jansson only fails on OOM here */
        zk_add_state_listener(zk, on_state, c);
        *ret = c;
        return 0;
}

void component_free(struct component *c) {
        if (!c) return;
        zk_remove_state_listener(c->zk, on_state, c);
        json_decref(c->content);
        free(c->kind);
        free(c->path);
        free(c);
}

int component_set_state(struct component *c, const char *state) {
        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                if (state && strcmp(state, states[i]) == 0)
                        return json_object_set_new(c->content, "state", json_string(state)) == 0 ? 0 : -EINVAL;
        return -EINVAL;
}

int component_set(struct component *c, const char *key, json_t *value) {
        if (!key || !value) return -EINVAL;
        return json_object_set(c->content, key, value) == 0 ? 0 : -EINVAL;
}

const json_t *component_content(struct component *c) { return c->content; }

json_t *component_get(struct component *c, const char *key) { return json_object_get(c->content, key); }

const char *component_path(struct component *c) { return c->path; }

char *component_dumps(const json_t *obj) {
        /* Without JSON_COMPACT jansson separates with ", " and ": ", as Python. */
        char *s = json_dumps(obj, JSON_SORT_KEYS | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        if (!s) abort();
        return s;
}

int component_register(struct component *c) {
        if (c->path) return -EALREADY;
        _cleanup_free_ char *base =
                npzk_component_prefix(c->kind, json_string_value(json_object_get(c->content, "hostname")));
        _cleanup_free_ char *data = component_dumps(c->content);
        char *path = NULL;
        int r = zk_create(c->zk, base, data, strlen(data), ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH, &path);
        if (r < 0) return r;
        c->path = path;
        c->version = 0;
        c->wanted = true;
        c->lost = false;
        log_debug("component: registered %s", path);
        return 0;
}

int component_update(struct component *c) {
        if (!c->path) return c->lost ? -ENOTCONN : -ENOENT;
        _cleanup_free_ char *data = component_dumps(c->content);
        for (int round = 0; round < 5; round++) {
                struct zk_stat st;
                int r = zk_set(c->zk, c->path, data, strlen(data), c->version, &st);
                if (r == 0) {
                        c->version = st.version;
                        return 0;
                }
                if (r == -ESTALE) { /* someone else wrote it: take their version, keep our content */
                        r = zk_exists(c->zk, c->path, &st);
                        if (r < 0) return r;
                        if (r == 0) goto gone;
                        c->version = st.version;
                        continue;
                }
                if (r != -ENOENT) return r;
        gone:
                free(c->path);
                c->path = NULL;
                return component_register(c);
        }
        return -ESTALE;
}

int component_unregister(struct component *c) {
        c->wanted = false;
        c->lost = false;
        if (!c->path) return 0;
        int r = zk_delete(c->zk, c->path, -1);
        if (r < 0 && r != -ENOENT) return r;
        free(c->path);
        c->path = NULL;
        return 0;
}

int component_list(struct zk *zk, const char *kind, json_t **ret_list) {
        if (!valid_name(kind)) return -EINVAL;
        _cleanup_free_ char *dir = npzk_component_dir(kind);
        char **children = NULL;
        int r = zk_get_children(zk, dir, &children, NULL);
        if (r == -ENOENT) {
                *ret_list = json_array();
                return 0;
        }
        if (r < 0) return r;
        json_t *list = json_array();
        for (char **p = children; *p; p++) {
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, *p), *data = NULL;
                size_t len;
                r = zk_get(zk, path, &data, &len, NULL);
                if (r == -ENOENT) continue;
                if (r < 0) {
                        zk_strv_free(children);
                        json_decref(list);
                        return r;
                }
                json_error_t je;
                json_t *v = json_loadb(data, len, 0, &je);
                if (!json_is_object(v)) {
                        log_debug("component: skipping malformed %s: %s", path, v ? "not an object" : je.text);
                        json_decref(v);
                        continue;
                }
                json_array_append_new(list, v);
        }
        zk_strv_free(children);
        *ret_list = list;
        return 0;
}
