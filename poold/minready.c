/* minready.c — keep `min-ready` ready nodes per label (protocol.md §4.2).
 *
 * DESIGN. For each label with min-ready > 0 that one of our pools offers with an
 * image available, and no outstanding (requested/pending) min-ready request,
 * count READY unallocated nodes in the cache and create the missing number of
 * one-node ephemeral requests (priority 900, requestor NodePool:min-ready,
 * reuse false). Fulfilled and failed min-ready requests are deleted; the
 * delete pass then clears allocated_to on their nodes (request gone). Runs at
 * most every 500 ms and only on a synced cache. Never deletes nodes. */
#include <string.h>

#include "alloc.h"
#include "launcher.h"
#include "log.h"

struct mr_scan {
        struct launcher *l;
        const char *label;
        bool outstanding;
        int64_t ready;
        char **finished;
        size_t n_finished;
};

static bool is_minready(const struct node_request *rq) {
        return rq->requestor && strcmp(rq->requestor, LAUNCHER_MINREADY_REQUESTOR) == 0;
}

static void req_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node_request *rq = ((const struct creq *)value)->req;
        if (!is_minready(rq) || !model_strv_contains(rq->node_types, s->label)) return;
        if (rq->state == NODE_REQUEST_STATE_REQUESTED || rq->state == NODE_REQUEST_STATE_PENDING)
                s->outstanding = true;
}

static void node_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node *n = ((const struct cnode *)value)->node;
        if (n->state != NODE_STATE_READY || !model_strv_contains(n->type, s->label)) return;
        /* Nodes of finished min-ready requests are about to be unallocated: count them. */
        const struct creq *cr = n->allocated_to ? smap_get(&s->l->requests, n->allocated_to) : NULL;
        if (!n->allocated_to || (!cr && !smap_get(&s->l->handlers, n->allocated_to)) || (cr && is_minready(cr->req)))
                s->ready++;
}

static void finished_fn(const char *key, void *value, void *ud) {
        struct mr_scan *s = ud;
        const struct node_request *rq = ((const struct creq *)value)->req;
        if (is_minready(rq) && (rq->state == NODE_REQUEST_STATE_FULFILLED || rq->state == NODE_REQUEST_STATE_FAILED))
                s->finished[s->n_finished++] = xstrdup(key);
}

static bool label_offered(struct launcher *l, const char *label) {
        for (size_t i = 0; i < l->n_pools; i++) {
                struct pool *p = l->pools[i];
                if (p->retired || !p->cpool || p->cpool->max_servers == 0) continue;
                /* Static pools offer their nodes' labels (ready static nodes count below). */
                if (p->prov->is_static) {
                        if (pool_has_label(p, label)) return true;
                        continue;
                }
                const struct config_pool_label *pl = pool_find_label(p, label);
                if (pl && (!pl->diskimage || caches_find_upload(l, pl->diskimage, p->provider_name, NULL)))
                        return true;
        }
        return false;
}

static void create_request(struct launcher *l, const char *label) {
        _cleanup_(node_request_freep) struct node_request *rq = node_request_new(NULL);
        rq->reuse = false;
        model_set_str(&rq->requestor, LAUNCHER_MINREADY_REQUESTOR);
        model_strv_push(&rq->node_types, label);
        rq->created_time = rq->state_time = model_now();
        char hex[33] = "";
        if (model_uuid4_hex(hex) >= 0) model_set_str(&rq->event_id, hex);
        _cleanup_free_ char *data = NULL, *path = NULL;
        size_t len;
        if (node_request_to_json(rq, &data, &len) < 0) return;
        int r = zk_create(l->zk, LAUNCHER_REQUEST_ROOT "/900-", data, len, ZK_EPHEMERAL | ZK_SEQUENCE | ZK_MAKEPATH,
                          &path);
        if (r < 0) log_warning_errno(r, "min-ready: cannot create a request for %s: %m", label);
        else log_info("min-ready: requested a %s node (%s)", label, path);
}

void minready_pass(struct launcher *l) {
        if (!caches_synced(l)) return;
        uint64_t now = loop_now_ms();
        if (now - l->last_minready_ms < 500) return;
        l->last_minready_ms = now;
        struct mr_scan fs = { .l = l, .finished = xnew(char *, l->requests.n + 1) };
        smap_foreach(&l->requests, finished_fn, &fs);
        for (size_t i = 0; i < fs.n_finished; i++) {
                _cleanup_free_ char *path = zkrec_request_path(fs.finished[i]);
                int r = zk_delete(l->zk, path, -1);
                if (r < 0 && r != -ENOENT) log_warning_errno(r, "min-ready: cannot delete %s: %m", path);
                free(fs.finished[i]);
        }
        free(fs.finished);
        if (fs.n_finished > 0) return; /* count again once the cache saw the deletes */
        for (size_t i = 0; i < l->cfg->n_labels; i++) {
                const struct config_label *lab = &l->cfg->labels[i];
                if (lab->min_ready <= 0 || !label_offered(l, lab->name)) continue;
                struct mr_scan s = { .l = l, .label = lab->name };
                smap_foreach(&l->requests, req_fn, &s);
                if (s.outstanding) continue;
                smap_foreach(&l->nodes, node_fn, &s);
                for (int64_t k = s.ready; k < lab->min_ready; k++) create_request(l, lab->name);
        }
}
