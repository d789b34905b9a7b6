/* model_request.c — NodeRequest and Zuul HoldRequest <-> JSON, request ids
 * and the launcher's request order.
 *
 * DESIGN: as for nodes (model_node.c): typed fields for what we act on, the
 * original object kept for everything else, encode = overlay. The request
 * order mirrors Nodepool's tuple comparison (precedence string,
 * relative_priority int, sequence string). */
#include "model_request.h"

#include <string.h>

#include "alloc.h"
#include "json_util.h"

static const char *const request_state_table[_NODE_REQUEST_STATE_MAX] = {
        [NODE_REQUEST_STATE_REQUESTED] = "requested",
        [NODE_REQUEST_STATE_PENDING] = "pending",
        [NODE_REQUEST_STATE_FULFILLED] = "fulfilled",
        [NODE_REQUEST_STATE_FAILED] = "failed",
};

const char *node_request_state_to_string(enum node_request_state s) {
        if (s < 0 || s >= _NODE_REQUEST_STATE_MAX) return NULL;
        return request_state_table[s];
}

enum node_request_state node_request_state_from_string(const char *s) {
        if (!s) return _NODE_REQUEST_STATE_INVALID;
        for (int i = 0; i < _NODE_REQUEST_STATE_MAX; i++)
                if (strcmp(request_state_table[i], s) == 0) return (enum node_request_state)i;
        return _NODE_REQUEST_STATE_INVALID;
}

struct node_request *node_request_new(const char *id) {
        struct node_request *r = xnew(struct node_request, 1);
        r->id = xstrdup(id);
        r->state = NODE_REQUEST_STATE_REQUESTED;
        r->state_time = MODEL_TIME_NONE;
        r->created_time = MODEL_TIME_NONE;
        r->declined_by = model_strv_new();
        r->node_types = model_strv_new();
        r->nodes = model_strv_new();
        r->reuse = true;
        return r;
}

void node_request_free(struct node_request *r) {
        if (!r) return;
        free(r->id);
        model_strv_free(r->declined_by);
        model_strv_free(r->node_types);
        model_strv_free(r->nodes);
        free(r->requestor);
        json_decref(r->requestor_data);
        free(r->provider);
        free(r->event_id);
        free(r->tenant_name);
        json_decref(r->raw);
        free(r);
}

int node_request_from_json(const char *data, size_t len, const char *id, struct node_request **ret,
                           struct model_error *err) {
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        _cleanup_(node_request_freep) struct node_request *q = NULL;
        _cleanup_free_ char *state = NULL;
        int r;

        r = json_util_parse_object(data, len, &obj, err);
        if (r < 0) return r;

        q = xnew(struct node_request, 1);
        q->id = xstrdup(id);

        r = json_util_get_str(obj, "state", NULL, &state, err);
        if (r < 0) return r;
        if (!state) return model_error_set(err, EINVAL, "key \"state\": missing");
        q->state = node_request_state_from_string(state);
        if (q->state < 0) return model_error_set(err, EINVAL, "key \"state\": unknown request state \"%.40s\"", state);

        if ((r = json_util_get_time(obj, "state_time", &q->state_time, err)) < 0 ||
            (r = json_util_get_strv(obj, "declined_by", &q->declined_by, err)) < 0 ||
            (r = json_util_get_strv(obj, "node_types", &q->node_types, err)) < 0 ||
            (r = json_util_get_strv(obj, "nodes", &q->nodes, err)) < 0 ||
            (r = json_util_get_bool(obj, "reuse", true, &q->reuse, err)) < 0 ||
            (r = json_util_get_str(obj, "requestor", NULL, &q->requestor, err)) < 0 ||
            (r = json_util_get_str(obj, "provider", NULL, &q->provider, err)) < 0 ||
            (r = json_util_get_int(obj, "relative_priority", 0, &q->relative_priority, err)) < 0 ||
            (r = json_util_get_str(obj, "event_id", NULL, &q->event_id, err)) < 0 ||
            (r = json_util_get_time(obj, "created_time", &q->created_time, err)) < 0 ||
            (r = json_util_get_str(obj, "tenant_name", NULL, &q->tenant_name, err)) < 0)
                return r;
        q->requestor_data = json_util_get_opaque(obj, "requestor_data");
        q->raw = TAKE_PTR(obj);

        *ret = TAKE_PTR(q);
        return 0;
}

int node_request_to_json(const struct node_request *q, char **ret, size_t *ret_len) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_overlay_base(q->raw);
        const char *state = node_request_state_to_string(q->state);
        int r = 0;

        if (!state) return -EINVAL;
        /* NodeRequest.toDict() order. */
        r |= json_util_set_str(o, "state", state);
        json_util_set_time(o, "state_time", q->state_time);
        r |= json_util_set_strv(o, "declined_by", q->declined_by);
        r |= json_util_set_strv(o, "node_types", q->node_types);
        r |= json_util_set_strv(o, "nodes", q->nodes);
        json_util_set_bool(o, "reuse", q->reuse);
        r |= json_util_set_str(o, "requestor", q->requestor);
        json_util_set_opaque(o, "requestor_data", q->requestor_data);
        r |= json_util_set_str(o, "provider", q->provider);
        json_util_set_int(o, "relative_priority", q->relative_priority);
        r |= json_util_set_str(o, "event_id", q->event_id);
        json_util_set_time(o, "created_time", q->created_time);
        r |= json_util_set_str(o, "tenant_name", q->tenant_name);
        if (r != 0) return -EINVAL;

        return json_util_dump(o, ret, ret_len);
}

void node_request_set_state(struct node_request *q, enum node_request_state s) {
        q->state = s;
        q->state_time = model_now();
}

bool node_request_id_is_classic(const char *id) {
        return id && strnlen(id, 4) >= 4 && id[3] == '-';
}

static bool all_digits(const char *s) {
        if (!*s) return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9') return false;
        return true;
}

/* Points *ret_seq into id; no allocation, for the comparator. */
static bool id_split(const char *id, const char **ret_seq) {
        if (!node_request_id_is_classic(id)) return false;
        for (int i = 0; i < 3; i++)
                if (id[i] < '0' || id[i] > '9') return false;
        const char *seq = id + 4;
        if (!all_digits(seq[0] == '-' ? seq + 1 : seq)) return false;
        *ret_seq = seq;
        return true;
}

int node_request_id_parse(const char *id, char **ret_priority, char **ret_sequence) {
        const char *seq;

        if (!id_split(id, &seq)) return -EINVAL;
        *ret_priority = xstrndup(id, 3);
        *ret_sequence = xstrdup(seq);
        return 0;
}

int node_request_compare(const struct node_request *a, const struct node_request *b) {
        const char *sa, *sb;
        bool oka = id_split(a->id, &sa), okb = id_split(b->id, &sb);

        if (!oka || !okb) {
                if (oka != okb) return oka ? -1 : 1;
                return strcmp(a->id ? a->id : "", b->id ? b->id : "");
        }
        int c = strncmp(a->id, b->id, 3);
        if (c != 0) return c;
        if (a->relative_priority != b->relative_priority) return a->relative_priority < b->relative_priority ? -1 : 1;
        return strcmp(sa, sb);
}

int node_request_compare_qsort(const void *a, const void *b) {
        return node_request_compare(*(struct node_request *const *)a, *(struct node_request *const *)b);
}

/* ---------------------------------------------------------------- hold requests */

void hold_request_free(struct hold_request *h) {
        if (!h) return;
        free(h->id);
        free(h->tenant);
        free(h->project);
        free(h->job);
        free(h->ref_filter);
        free(h->reason);
        for (size_t i = 0; i < h->n_nodes; i++) {
                free(h->nodes[i].build);
                model_strv_free(h->nodes[i].nodes);
        }
        free(h->nodes);
        json_decref(h->raw);
        free(h);
}

static int get_hold_nodes(json_t *obj, struct hold_request *h, struct model_error *err) {
        json_t *v = json_object_get(obj, "nodes"), *e;
        size_t i;
        int r;

        if (!v || json_is_null(v)) return 0;
        if (!json_is_array(v)) return model_error_set(err, EINVAL, "key \"nodes\": expected list");
        h->nodes = xnew(struct hold_request_nodes, json_array_size(v) + 1);
        json_array_foreach(v, i, e) {
                struct hold_request_nodes *hn = &h->nodes[i];
                h->n_nodes = i + 1; /* so hold_request_free() cleans up a partial entry */
                if (json_is_string(e) && strlen(json_string_value(e)) == json_string_length(e)) {
                        /* Older Zuul kept a flat list of node ids. */
                        hn->nodes = model_strv_new();
                        model_strv_push(&hn->nodes, json_string_value(e));
                        continue;
                }
                if (!json_is_object(e)) return model_error_set(err, EINVAL, "key \"nodes\": element %zu is not an object", i);
                if ((r = json_util_get_str(e, "build", NULL, &hn->build, err)) < 0) return r;
                if ((r = json_util_get_strv(e, "nodes", &hn->nodes, err)) < 0) return r;
        }
        return 0;
}

int hold_request_from_json(const char *data, size_t len, const char *id, struct hold_request **ret,
                           struct model_error *err) {
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        _cleanup_(hold_request_freep) struct hold_request *h = NULL;
        int r;

        r = json_util_parse_object(data, len, &obj, err);
        if (r < 0) return r;

        h = xnew(struct hold_request, 1);
        h->id = xstrdup(id);
        if ((r = json_util_get_time(obj, "expired", &h->expired, err)) < 0 ||
            (r = json_util_get_str(obj, "tenant", NULL, &h->tenant, err)) < 0 ||
            (r = json_util_get_str(obj, "project", NULL, &h->project, err)) < 0 ||
            (r = json_util_get_str(obj, "job", NULL, &h->job, err)) < 0 ||
            (r = json_util_get_str(obj, "ref_filter", NULL, &h->ref_filter, err)) < 0 ||
            (r = json_util_get_int(obj, "max_count", 1, &h->max_count, err)) < 0 ||
            (r = json_util_get_int(obj, "current_count", 0, &h->current_count, err)) < 0 ||
            (r = json_util_get_str(obj, "reason", NULL, &h->reason, err)) < 0 ||
            (r = json_util_get_opt_int(obj, "node_expiration", &h->node_expiration_set, &h->node_expiration, err)) < 0 ||
            (r = get_hold_nodes(obj, h, err)) < 0)
                return r;
        h->raw = TAKE_PTR(obj);

        *ret = TAKE_PTR(h);
        return 0;
}

int hold_request_to_json(const struct hold_request *h, char **ret, size_t *ret_len) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_overlay_base(h->raw);
        int r = 0;

        /* Zuul HoldRequest.toDict() order. */
        if (h->id) r |= json_util_set_str(o, "id", h->id);
        json_util_set_time(o, "expired", h->expired);
        r |= json_util_set_str(o, "tenant", h->tenant);
        r |= json_util_set_str(o, "project", h->project);
        r |= json_util_set_str(o, "job", h->job);
        r |= json_util_set_str(o, "ref_filter", h->ref_filter);
        json_util_set_int(o, "max_count", h->max_count);
        json_util_set_int(o, "current_count", h->current_count);
        r |= json_util_set_str(o, "reason", h->reason);
        json_util_set_opt_int(o, "node_expiration", h->node_expiration_set, h->node_expiration);
        if (!json_object_get(o, "nodes")) json_object_set_new(o, "nodes", json_util_must(json_array()));
        if (r != 0) return -EINVAL;

        return json_util_dump(o, ret, ret_len);
}
