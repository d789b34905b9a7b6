/* zkrec.c — fresh reads and whole-object writes of node and request records.
 *
 * DESIGN. Decisions that need certainty (after taking a lock) re-read the
 * record from ZooKeeper instead of trusting the cache; writes are whole-object
 * sets on top of the keys read, so Zuul's keys survive. Reads are blocking
 * round trips (taken only where the answer decides); writes on the hot path
 * have an asynchronous form whose order ZooKeeper keeps per session. */
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"

char *zkrec_node_path(const char *id) { return xasprintf(LAUNCHER_NODE_ROOT "/%s", id); }
char *zkrec_node_lock_path(const char *id) { return xasprintf(LAUNCHER_NODE_ROOT "/%s/lock", id); }
char *zkrec_request_path(const char *id) { return xasprintf(LAUNCHER_REQUEST_ROOT "/%s", id); }
char *zkrec_request_lock_path(const char *id) { return xasprintf(LAUNCHER_REQUEST_LOCK_ROOT "/%s", id); }

int zkrec_node_read(struct launcher *l, const char *id, struct node **ret, int32_t *ret_version) {
        _cleanup_free_ char *path = zkrec_node_path(id), *data = NULL;
        size_t len;
        struct zk_stat st;
        int r = zk_get(l->zk, path, &data, &len, &st);
        if (r < 0) return r;
        struct model_error err;
        r = node_from_json(data, len, id, ret, &err);
        if (r < 0) {
                log_warning("malformed node %s: %s", path, err.msg);
                return -EBADMSG;
        }
        if (ret_version) *ret_version = st.version;
        return 0;
}

int zkrec_node_write(struct launcher *l, const struct node *n, int32_t version) {
        _cleanup_free_ char *path = zkrec_node_path(n->id), *data = NULL;
        size_t len;
        int r = node_to_json(n, &data, &len);
        if (r < 0) return r;
        return zk_set(l->zk, path, data, len, version, NULL);
}

int zkrec_request_read(struct launcher *l, const char *id, struct node_request **ret, int32_t *ret_version) {
        _cleanup_free_ char *path = zkrec_request_path(id), *data = NULL;
        size_t len;
        struct zk_stat st;
        int r = zk_get(l->zk, path, &data, &len, &st);
        if (r < 0) return r;
        struct model_error err;
        r = node_request_from_json(data, len, id, ret, &err);
        if (r < 0) {
                log_warning("malformed request %s: %s", path, err.msg);
                return -EBADMSG;
        }
        if (ret_version) *ret_version = st.version;
        return 0;
}

int zkrec_request_write(struct launcher *l, const struct node_request *rq, int32_t version) {
        _cleanup_free_ char *path = zkrec_request_path(rq->id), *data = NULL;
        size_t len;
        int r = node_request_to_json(rq, &data, &len);
        if (r < 0) return r;
        return zk_set(l->zk, path, data, len, version, NULL);
}

static void on_node_written(struct zk *zk, const struct zk_result *res, void *ud) {
        if (res->r < 0) log_warning_errno(res->r, "cannot write %s: %m", res->path);
}

void zkrec_node_write_async(struct launcher *l, const struct node *n) {
        _cleanup_free_ char *path = zkrec_node_path(n->id), *data = NULL;
        size_t len;
        int r = node_to_json(n, &data, &len);
        if (r < 0) {
                log_warning_errno(r, "node %s: cannot encode: %m", n->id);
                return;
        }
        (void)zk_aset(l->zk, path, data, len, -1, on_node_written, NULL);
}
