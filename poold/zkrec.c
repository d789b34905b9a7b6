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
#include "zk_update.h"

int zkrec_node_read(struct launcher *l, const char *id, struct node **ret, int32_t *ret_version) {
        _cleanup_free_ char *path = npzk_node_path(id), *data = NULL;
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
        _cleanup_free_ char *path = npzk_node_path(n->id), *data = NULL;
        size_t len;
        int r = node_to_json(n, &data, &len);
        if (r < 0) return r;
        return zk_set(l->zk, path, data, len, version, NULL);
}

struct node_update {
        const char *id;
        zkrec_node_edit_fn edit;
        void *userdata;
};

static int node_update_edit(struct zk_update_record *rec, void *ud) {
        struct node_update *nu = ud;
        _cleanup_(node_freep) struct node *n = NULL;
        struct model_error err;
        if (node_from_json(rec->data, rec->len, nu->id, &n, &err) < 0) {
                log_warning("malformed node %s: %s", rec->path, err.msg);
                return -EBADMSG;
        }
        int r = nu->edit(n, nu->userdata);
        if (r != ZK_UPDATE_WRITE) return MIN(r, ZK_UPDATE_NO_WRITE);
        r = node_to_json(n, &rec->new_data, &rec->new_len);
        return r < 0 ? r : ZK_UPDATE_WRITE;
}

int zkrec_node_update(struct launcher *l, const char *id, struct zk_lock *lock, zkrec_node_edit_fn edit,
                      void *userdata) {
        _cleanup_free_ char *path = npzk_node_path(id), *lpath = lock ? NULL : npzk_node_lock_path(id);
        struct node_update nu = { .id = id, .edit = edit, .userdata = userdata };
        struct zk_update_spec spec = {
                .path = path, .lock_path = lpath, .lock = lock, .edit = node_update_edit, .userdata = &nu,
        };
        return zk_update_run(l->zk, &spec, NULL);
}

int zkrec_request_read(struct launcher *l, const char *id, struct node_request **ret, int32_t *ret_version) {
        _cleanup_free_ char *path = npzk_request_path(id), *data = NULL;
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
        _cleanup_free_ char *path = npzk_request_path(rq->id), *data = NULL;
        size_t len;
        int r = node_request_to_json(rq, &data, &len);
        if (r < 0) return r;
        return zk_set(l->zk, path, data, len, version, NULL);
}

/* The newest asynchronous write of one node, kept until ZooKeeper confirms it:
 * a write lost with the connection is sent again after the reconnect, unless a
 * newer write of the node superseded it, the session ended, or we no longer
 * hold the node's lock (`held`) — a node we let go is not ours to write. */
struct node_write {
        struct launcher *l;
        char *id;
        char *data;             /* the newest data sent */
        size_t len;
        uint64_t gen;           /* session generation it was sent in */
        unsigned in_flight;     /* answers outstanding (they come in order) */
        bool retry;             /* the newest one was lost: send again on CONNECTED */
};

static void node_write_free(void *v) {
        struct node_write *w = v;
        if (!w) return;
        if (w->in_flight) zk_cancel(w->l->zk, w);
        free(w->id);
        free(w->data);
        free(w);
}

static void node_write_send(struct node_write *w);

static void on_node_written(struct zk *zk, const struct zk_result *res, void *ud) {
        struct node_write *w = ud;
        struct launcher *l = w->l;
        w->in_flight--;
        if (w->in_flight > 0) return; /* a newer write of this node is on its way: it decides */
        bool lost = res->r == -ECONNRESET || res->r == -ETIMEDOUT || res->r == -EAGAIN;
        if (lost && w->gen == zk_session_generation(zk) && smap_get(&l->held, w->id)) {
                log_info("node %s: write lost with the connection (%s); sent again after the reconnect while ours",
                         w->id, strerror(-res->r));
                w->retry = true;
                if (zk_is_connected(zk)) node_write_send(w); /* the connection is back already */
                return;
        }
        if (res->r < 0) log_warning_errno(res->r, "cannot write %s: %m", res->path);
        node_write_free(smap_remove(&l->node_writes, w->id));
}

static void node_write_send(struct node_write *w) {
        _cleanup_free_ char *path = npzk_node_path(w->id);
        w->retry = false;
        w->gen = zk_session_generation(w->l->zk);
        w->in_flight++;
        (void)zk_aset(w->l->zk, path, w->data, w->len, -1, on_node_written, w);
}

void zkrec_node_write_async_data(struct launcher *l, const char *id, char *data, size_t len) {
        struct node_write *w = smap_get(&l->node_writes, id);
        if (!w) {
                w = xnew(struct node_write, 1);
                w->l = l;
                w->id = xstrdup(id);
                smap_put(&l->node_writes, id, w);
        }
        free(w->data);
        w->data = data;
        w->len = len;
        node_write_send(w);
}

void zkrec_node_write_async(struct launcher *l, const struct node *n) {
        char *data = NULL;
        size_t len;
        int r = node_to_json(n, &data, &len);
        if (r < 0) {
                log_warning_errno(r, "node %s: cannot encode: %m", n->id);
                return;
        }
        zkrec_node_write_async_data(l, n->id, data, len);
}

bool zkrec_node_write_pending(struct launcher *l, const char *id) { return smap_get(&l->node_writes, id) != NULL; }

struct resend {
        struct launcher *l;
        char **drop;
        size_t n_drop;
};

static void resend_fn(const char *key, void *value, void *ud) {
        struct resend *rs = ud;
        struct node_write *w = value;
        if (!w->retry) return;
        if (w->gen == zk_session_generation(rs->l->zk) && smap_get(&rs->l->held, key))
                node_write_send(w);
        else
                rs->drop[rs->n_drop++] = xstrdup(key);
}

void zkrec_reconnected(struct launcher *l) {
        struct resend rs = { .l = l, .drop = xnew(char *, l->node_writes.n + 1) };
        smap_foreach(&l->node_writes, resend_fn, &rs);
        for (size_t i = 0; i < rs.n_drop; i++) {
                node_write_free(smap_remove(&l->node_writes, rs.drop[i]));
                free(rs.drop[i]);
        }
        free(rs.drop);
}

void zkrec_free(struct launcher *l) { smap_clear(&l->node_writes, node_write_free); }
