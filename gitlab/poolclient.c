/* poolclient.c — see poolclient.h. */
#include "poolclient.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "job.h"
#include "json_util.h"
#include "log.h"
#include "model_request.h"
#include "settings.h"

/* A node written concurrently (the launcher, another client) is re-read and
 * written again; more conflicts than this in a row means something is wrong. */
#define STORE_ATTEMPTS 5

static void set_if(json_t *o, const char *key, const char *v) {
        if (v) json_object_set_new(o, key, json_util_must(json_string(v)));
}

int pool_client_request_json(const struct settings *s, const struct job *j, char **ret, size_t *ret_len) {
        _cleanup_(node_request_freep) struct node_request *q = node_request_new(NULL);
        char event[33];
        int r = model_uuid4_hex(event);
        if (r < 0) return r;
        node_request_set_state(q, NODE_REQUEST_STATE_REQUESTED);
        model_strv_push(&q->node_types, j->label);
        q->reuse = true;
        q->requestor = xstrdup(s->requestor);
        /* Opaque to the launcher; says which GitLab job asked, for people reading request-list. */
        q->requestor_data = json_util_must(json_object());
        json_object_set_new(q->requestor_data, "gitlab_job_id", json_util_must(json_string(j->id)));
        set_if(q->requestor_data, "project_path", j->project);
        set_if(q->requestor_data, "job_name", j->job_name);
        set_if(q->requestor_data, "pipeline_id", j->pipeline_id);
        set_if(q->requestor_data, "job_url", j->job_url);
        q->relative_priority = 0;
        q->event_id = xstrdup(event);
        q->created_time = q->state_time;
        q->tenant_name = xstrdup(s->tenant_name);
        return node_request_to_json(q, ret, ret_len);
}

int pool_client_submit(struct zk *zk, const struct settings *s, const struct job *j, char **ret_id) {
        _cleanup_free_ char *json = NULL;
        size_t len = 0;
        int r = pool_client_request_json(s, j, &json, &len);
        if (r < 0) return r;
        _cleanup_free_ char *prefix = npzk_request_prefix((int)s->priority);
        _cleanup_free_ char *created = NULL;
        r = zk_create(zk, prefix, json, len, ZK_PERSISTENT | ZK_SEQUENCE | ZK_MAKEPATH, &created);
        if (r < 0) return r;
        const char *slash = strrchr(created, '/');
        *ret_id = xstrdup(slash ? slash + 1 : created);
        return 0;
}

int pool_client_delete_request(struct zk *zk, const char *id) {
        _cleanup_free_ char *path = npzk_request_path(id);
        int r = zk_delete(zk, path, -1);
        return r == -ENOENT ? 0 : r;
}

static int read_node(struct zk *zk, const char *node_id, struct node **ret, struct zk_stat *ret_stat) {
        _cleanup_free_ char *path = npzk_node_path(node_id);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        int r = zk_get(zk, path, &data, &len, ret_stat);
        if (r < 0) return r;
        struct model_error err;
        r = node_from_json(data, len, node_id, ret, &err);
        if (r < 0) {
                log_debug("node %s: malformed record: %s", node_id, err.msg);
                return -EBADMSG;
        }
        return 0;
}

static bool allocated_to(const struct node *n, const char *req_id) {
        return n->allocated_to && strcmp(n->allocated_to, req_id) == 0;
}

int pool_client_lock_node(struct zk *zk, const char *node_id, const char *req_id, const char *identifier,
                          int timeout_ms, struct zk_lock **ret_lock, struct node **ret_node) {
        if (!node_id_is_valid(node_id)) return -EINVAL;
        _cleanup_(node_freep) struct node *n = NULL;
        int r = read_node(zk, node_id, &n, NULL);
        if (r < 0) return r;
        if (!allocated_to(n, req_id)) return -ESTALE;

        _cleanup_free_ char *lock_path = npzk_node_lock_path(node_id);
        _cleanup_(zk_lock_freep) struct zk_lock *l = NULL;
        r = zk_lock_new(zk, lock_path, identifier, &l);
        if (r < 0) return r;
        r = zk_lock_acquire(l, timeout_ms);
        if (r < 0) return r;

        node_free(TAKE_PTR(n));
        r = read_node(zk, node_id, &n, NULL);
        if (r >= 0 && !allocated_to(n, req_id)) r = -ESTALE;
        if (r < 0) {
                (void)zk_lock_release(l);
                return r;
        }
        *ret_lock = TAKE_PTR(l);
        *ret_node = TAKE_PTR(n);
        return 0;
}

/* Read, let CHANGE edit, write back with the version read; again on a conflict.
 * CHANGE returns 1 to write, 0 to leave the node alone. */
static int store_node(struct zk *zk, const char *node_id, int (*change)(struct node *n, void *ud), void *ud) {
        _cleanup_free_ char *path = npzk_node_path(node_id);
        for (int attempt = 0; attempt < STORE_ATTEMPTS; attempt++) {
                _cleanup_(node_freep) struct node *n = NULL;
                struct zk_stat st;
                int r = read_node(zk, node_id, &n, &st);
                if (r < 0) return r;
                r = change(n, ud);
                if (r <= 0) return r;
                _cleanup_free_ char *json = NULL;
                size_t len = 0;
                r = node_to_json(n, &json, &len);
                if (r < 0) return r;
                r = zk_set(zk, path, json, len, st.version, NULL);
                if (r != -ESTALE) return r;
                log_debug("node %s changed while we wrote it; reading it again", node_id);
        }
        return -ESTALE;
}

/* Zuul writes the node's id into its JSON; keep that, on top of every key read. */
static void set_raw_id(struct node *n) {
        if (!n->raw) n->raw = json_util_must(json_object());
        json_object_set_new(n->raw, "id", json_util_must(json_string(n->id)));
}

static int change_use(struct node *n, void *ud) {
        json_t *user_data = ud;
        node_set_state(n, NODE_STATE_IN_USE);
        json_decref(n->user_data);
        n->user_data = json_incref(user_data);
        set_raw_id(n);
        return 1;
}

int pool_client_use_node(struct zk *zk, const char *node_id, json_t *user_data) {
        return store_node(zk, node_id, change_use, user_data);
}

static int change_return(struct node *n, void *ud) {
        enum node_state *before = ud;
        *before = n->state;
        if (n->state != NODE_STATE_IN_USE && n->state != NODE_STATE_READY) return 0;
        node_set_state(n, NODE_STATE_USED);
        set_raw_id(n);
        return 1;
}

int pool_client_return_node(struct zk *zk, const char *node_id, enum node_state *ret_state_before) {
        enum node_state before = _NODE_STATE_INVALID;
        int r = store_node(zk, node_id, change_return, &before);
        if (r == -ENOENT) r = 0;
        if (r >= 0 && ret_state_before) *ret_state_before = before;
        return r;
}
