/* model_node.c — Node record <-> JSON.
 *
 * DESIGN: decode into typed fields plus the original object; encode by
 * overlaying the typed fields on a shallow copy of that object, in Nodepool's
 * toDict() key order for keys it did not have. Opaque Python-typed values
 * (external_id, user_data, …) are carried as json_t so they round-trip with
 * their type. */
#include "model_node.h"

#include <string.h>

#include "alloc.h"
#include "json_util.h"

static const char *const node_state_table[_NODE_STATE_MAX] = {
        [NODE_STATE_BUILDING] = "building", [NODE_STATE_TESTING] = "testing", [NODE_STATE_READY] = "ready",
        [NODE_STATE_IN_USE] = "in-use",     [NODE_STATE_USED] = "used",       [NODE_STATE_HOLD] = "hold",
        [NODE_STATE_DELETING] = "deleting", [NODE_STATE_FAILED] = "failed",   [NODE_STATE_INIT] = "init",
        [NODE_STATE_ABORTED] = "aborted",   [NODE_STATE_DELETED] = "deleted",
};

const char *node_state_to_string(enum node_state s) {
        if (s < 0 || s >= _NODE_STATE_MAX) return NULL;
        return node_state_table[s];
}

enum node_state node_state_from_string(const char *s) {
        if (!s) return _NODE_STATE_INVALID;
        for (int i = 0; i < _NODE_STATE_MAX; i++)
                if (strcmp(node_state_table[i], s) == 0) return (enum node_state)i;
        return _NODE_STATE_INVALID;
}

struct node *node_new(const char *id) {
        struct node *n = xnew(struct node, 1);
        n->id = xstrdup(id);
        n->state = NODE_STATE_INIT;
        n->state_time = MODEL_TIME_NONE;
        n->created_time = MODEL_TIME_NONE;
        n->type = model_strv_new();
        n->host_keys = model_strv_new();
        n->connection_port = 22;
        return n;
}

void node_free(struct node *n) {
        if (!n) return;
        char **strs[] = { &n->id,           &n->cloud,        &n->provider,    &n->pool,        &n->allocated_to,
                          &n->az,           &n->region,       &n->public_ipv4, &n->private_ipv4, &n->public_ipv6,
                          &n->host_id,      &n->interface_ip, &n->image_id,    &n->launcher,     &n->hostname,
                          &n->comment,      &n->hold_job,     &n->username,    &n->connection_type, &n->shell_type,
                          &n->python_path,  &n->tenant_name,  &n->requestor };
        for (size_t i = 0; i < ELEMENTSOF(strs); i++) free(*strs[i]);
        json_t *js[] = { n->connection_port_other, n->external_id, n->user_data, n->resources, n->attributes,
                         n->driver_data, n->node_properties, n->raw };
        for (size_t i = 0; i < ELEMENTSOF(js); i++) json_decref(js[i]);
        model_strv_free(n->type);
        model_strv_free(n->host_keys);
        free(n);
}

/* Python: hold_expiration = int(x) if x is not None, 0 if int() raises ValueError. */
static int get_hold_expiration(json_t *obj, struct node *n, struct model_error *err) {
        json_t *v = json_object_get(obj, "hold_expiration");

        n->hold_expiration_set = false;
        n->hold_expiration = 0;
        if (!v || json_is_null(v)) return 0;
        n->hold_expiration_set = true;
        if (json_is_integer(v)) {
                n->hold_expiration = json_integer_value(v);
        } else if (json_is_real(v)) {
                double d = json_real_value(v);
                /* int(float) truncates; out-of-range floats cannot be a useful expiry. */
                if (!(d > -9.2e18 && d < 9.2e18)) return model_error_set(err, EINVAL, "key \"hold_expiration\": out of range");
                n->hold_expiration = (int64_t)d;
        } else if (json_is_string(v)) {
                const char *s = json_string_value(v);
                char *end;
                errno = 0;
                long long x = strtoll(s, &end, 10);
                /* int("abc") raises ValueError -> 0; int() also allows surrounding blanks. */
                while (*end == ' ' || *end == '\t' || *end == '\n') end++;
                bool ok = errno == 0 && end != s && *end == '\0' && (size_t)(end - s) == json_string_length(v);
                n->hold_expiration = ok ? (int64_t)x : 0;
        } else {
                return model_error_set(err, EINVAL, "key \"hold_expiration\": expected integer");
        }
        return 0;
}

/* Python: type = as_list(d.get('type')): falsy -> [], list -> list, else [value]. */
static int get_type(json_t *obj, struct node *n, struct model_error *err) {
        json_t *v = json_object_get(obj, "type");

        if (v && json_is_string(v)) {
                if (strlen(json_string_value(v)) != json_string_length(v))
                        return model_error_set(err, EINVAL, "key \"type\": string contains NUL");
                n->type = model_strv_new();
                if (json_string_length(v) > 0) model_strv_push(&n->type, json_string_value(v));
                return 0;
        }
        return json_util_get_strv(obj, "type", &n->type, err);
}

/* Python: connection_port = d.get('connection_port', d.get('ssh_port', 22)). */
static void get_port(json_t *obj, struct node *n) {
        json_t *v = json_object_get(obj, "connection_port");

        if (!v) v = json_object_get(obj, "ssh_port");
        if (!v) {
                n->connection_port = 22;
                return;
        }
        if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 65535) {
                n->connection_port = (int)json_integer_value(v);
                return;
        }
        n->connection_port = 0;
        n->connection_port_other = json_incref(v);
}

int node_from_json(const char *data, size_t len, const char *id, struct node **ret, struct model_error *err) {
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        _cleanup_(node_freep) struct node *n = NULL;
        _cleanup_free_ char *state = NULL;
        int r;

        r = json_util_parse_object(data, len, &obj, err);
        if (r < 0) return r;

        n = xnew(struct node, 1);
        n->id = xstrdup(id);

        r = json_util_get_str(obj, "state", NULL, &state, err);
        if (r < 0) return r;
        if (!state) return model_error_set(err, EINVAL, "key \"state\": missing");
        n->state = node_state_from_string(state);
        if (n->state < 0) return model_error_set(err, EINVAL, "key \"state\": unknown node state \"%.40s\"", state);

        struct {
                const char *key;
                char **field;
                const char *def;
        } strs[] = {
                { "cloud", &n->cloud, NULL },
                { "provider", &n->provider, NULL },
                { "pool", &n->pool, NULL },
                { "allocated_to", &n->allocated_to, NULL },
                { "az", &n->az, NULL },
                { "region", &n->region, NULL },
                { "public_ipv4", &n->public_ipv4, NULL },
                { "private_ipv4", &n->private_ipv4, NULL },
                { "public_ipv6", &n->public_ipv6, NULL },
                { "host_id", &n->host_id, NULL },
                { "interface_ip", &n->interface_ip, NULL },
                { "image_id", &n->image_id, NULL },
                { "launcher", &n->launcher, NULL },
                { "hostname", &n->hostname, NULL },
                { "comment", &n->comment, NULL },
                { "hold_job", &n->hold_job, NULL },
                { "username", &n->username, "zuul" },
                { "connection_type", &n->connection_type, NULL },
                { "shell_type", &n->shell_type, NULL },
                { "python_path", &n->python_path, NULL },
                { "tenant_name", &n->tenant_name, NULL },
                { "requestor", &n->requestor, NULL },
        };
        for (size_t i = 0; i < ELEMENTSOF(strs); i++) {
                r = json_util_get_str(obj, strs[i].key, strs[i].def, strs[i].field, err);
                if (r < 0) return r;
        }

        if ((r = json_util_get_time(obj, "state_time", &n->state_time, err)) < 0 ||
            (r = json_util_get_time(obj, "created_time", &n->created_time, err)) < 0 ||
            (r = get_type(obj, n, err)) < 0 ||
            (r = json_util_get_strv(obj, "host_keys", &n->host_keys, err)) < 0 ||
            (r = get_hold_expiration(obj, n, err)) < 0 ||
            (r = json_util_get_opt_int(obj, "slot", &n->slot_set, &n->slot, err)) < 0)
                return r;

        get_port(obj, n);
        n->external_id = json_util_get_opaque(obj, "external_id");
        n->user_data = json_util_get_opaque(obj, "user_data");
        n->resources = json_util_get_opaque(obj, "resources");
        n->attributes = json_util_get_opaque(obj, "attributes");
        n->driver_data = json_util_get_opaque(obj, "driver_data");
        n->node_properties = json_util_get_opaque(obj, "node_properties");
        n->raw = TAKE_PTR(obj);

        *ret = TAKE_PTR(n);
        return 0;
}

int node_to_json(const struct node *n, char **ret, size_t *ret_len) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_overlay_base(n->raw);
        const char *state = node_state_to_string(n->state);
        int r = 0;

        if (!state) return -EINVAL;
        /* Same order as Nodepool's Node.toDict(), for keys new to o. */
        r |= json_util_set_str(o, "state", state);
        json_util_set_time(o, "state_time", n->state_time);
        r |= json_util_set_str(o, "cloud", n->cloud);
        r |= json_util_set_str(o, "provider", n->provider);
        r |= json_util_set_str(o, "pool", n->pool);
        r |= json_util_set_strv(o, "type", n->type);
        r |= json_util_set_str(o, "allocated_to", n->allocated_to);
        r |= json_util_set_str(o, "az", n->az);
        r |= json_util_set_str(o, "region", n->region);
        r |= json_util_set_str(o, "public_ipv4", n->public_ipv4);
        r |= json_util_set_str(o, "private_ipv4", n->private_ipv4);
        r |= json_util_set_str(o, "public_ipv6", n->public_ipv6);
        r |= json_util_set_str(o, "host_id", n->host_id);
        r |= json_util_set_str(o, "interface_ip", n->interface_ip);
        /* ssh_port duplicates connection_port for old Zuul readers. */
        if (n->connection_port_other) {
                json_util_set_opaque(o, "connection_port", n->connection_port_other);
                json_util_set_opaque(o, "ssh_port", n->connection_port_other);
        } else {
                json_util_set_int(o, "connection_port", n->connection_port);
                json_util_set_int(o, "ssh_port", n->connection_port);
        }
        r |= json_util_set_str(o, "image_id", n->image_id);
        r |= json_util_set_str(o, "launcher", n->launcher);
        json_util_set_time(o, "created_time", n->created_time);
        json_util_set_opaque(o, "external_id", n->external_id);
        r |= json_util_set_str(o, "hostname", n->hostname);
        r |= json_util_set_str(o, "comment", n->comment);
        json_util_set_opaque(o, "user_data", n->user_data);
        r |= json_util_set_str(o, "hold_job", n->hold_job);
        r |= json_util_set_strv(o, "host_keys", n->host_keys);
        r |= json_util_set_str(o, "username", n->username);
        r |= json_util_set_str(o, "connection_type", n->connection_type);
        r |= json_util_set_str(o, "shell_type", n->shell_type);
        json_util_set_opt_int(o, "hold_expiration", n->hold_expiration_set, n->hold_expiration);
        json_util_set_opaque(o, "resources", n->resources);
        json_util_set_opt_int(o, "slot", n->slot_set, n->slot);
        json_util_set_opaque(o, "attributes", n->attributes);
        r |= json_util_set_str(o, "python_path", n->python_path);
        r |= json_util_set_str(o, "tenant_name", n->tenant_name);
        json_util_set_opaque(o, "driver_data", n->driver_data);
        r |= json_util_set_str(o, "requestor", n->requestor);
        json_util_set_opaque(o, "node_properties", n->node_properties);
        if (r != 0) return -EINVAL;

        return json_util_dump(o, ret, ret_len);
}

void node_set_state(struct node *n, enum node_state s) {
        n->state = s;
        n->state_time = model_now();
}

bool node_id_is_valid(const char *id) {
        if (!id || strlen(id) != 10) return false;
        for (size_t i = 0; i < 10; i++)
                if (id[i] < '0' || id[i] > '9') return false;
        return true;
}
