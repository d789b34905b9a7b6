/* test_model.c — the ZooKeeper record model: JSON decode/encode fidelity
 * (including keys written by Zuul), legacy forms, total decoding of
 * malformed input, state tables, request order, ids, paths, age, uuid4. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "json_util.h"
#include "model.h"
#include "model_image.h"
#include "model_node.h"
#include "model_request.h"

/* A node as Nodepool's Node.toDict() writes it (every key present). */
static const char NODE_NODEPOOL[] =
        "{\"state\": \"ready\", \"state_time\": 1726000000.123, \"cloud\": \"vexxhost\", \"provider\": \"vexx-ca\","
        " \"pool\": \"main\", \"type\": [\"ubuntu-jammy\"], \"allocated_to\": \"200-0000012345\", \"az\": \"nova\","
        " \"region\": \"ca-ymq-1\", \"public_ipv4\": \"198.51.100.7\", \"private_ipv4\": \"10.0.0.7\","
        " \"public_ipv6\": \"2001:db8::7\", \"host_id\": \"abc123\", \"interface_ip\": \"198.51.100.7\","
        " \"connection_port\": 22, \"ssh_port\": 22,"
        " \"image_id\": \"/nodepool/images/ubuntu-jammy/builds/0123456789abcdef0123456789abcdef/providers/vexx-ca/images/0000000001\","
        " \"launcher\": \"nl01-PoolWorker.vexx-ca-main-8f3e\", \"created_time\": 1725999900.5,"
        " \"external_id\": \"6b1c0f2e-aaaa-bbbb-cccc-1234567890ab\", \"hostname\": \"np0000000042\", \"comment\": null,"
        " \"user_data\": null, \"hold_job\": null, \"host_keys\": [\"ssh-ed25519 AAAAC3Nz\", \"ssh-rsa AAAAB3Nz\"],"
        " \"username\": \"zuul\", \"connection_type\": \"ssh\", \"shell_type\": null, \"hold_expiration\": null,"
        " \"resources\": {\"cores\": 8, \"instances\": 1, \"ram\": 8192}, \"slot\": null,"
        " \"attributes\": {\"executor-zone\": \"ca\"}, \"python_path\": \"auto\", \"tenant_name\": \"openstack\","
        " \"driver_data\": null, \"requestor\": \"3c9f0d\", \"node_properties\": null}";

/* The same node after Zuul took it (in-use, user_data, hold fields, its "id",
 * and keys nobody here knows). */
static const char NODE_ZUUL[] =
        "{\"state\": \"in-use\", \"state_time\": 1726000100.25, \"cloud\": \"vexxhost\", \"provider\": \"vexx-ca\","
        " \"pool\": \"main\", \"type\": [\"ubuntu-jammy\"], \"allocated_to\": \"200-0000012345\", \"az\": \"nova\","
        " \"region\": \"ca-ymq-1\", \"public_ipv4\": \"198.51.100.7\", \"private_ipv4\": \"10.0.0.7\","
        " \"public_ipv6\": null, \"host_id\": \"abc123\", \"interface_ip\": \"198.51.100.7\","
        " \"connection_port\": 22, \"ssh_port\": 22, \"image_id\": \"ubuntu-cloud-22.04\","
        " \"launcher\": \"nl01-PoolWorker.vexx-ca-main-8f3e\", \"created_time\": 1725999900.5,"
        " \"external_id\": {\"name\": \"srv\", \"uuid\": \"6b1c\"}, \"hostname\": \"np0000000042\","
        " \"comment\": \"debugging a flaky test\", \"user_data\": {\"zuul_system\": \"3c9f0d\","
        " \"project_name\": \"opendev.org/openstack/nova\"}, \"hold_job\": \"openstack opendev.org/openstack/nova tox-py3 .*\","
        " \"host_keys\": [], \"username\": \"zuul\", \"connection_type\": \"ssh\", \"shell_type\": null,"
        " \"hold_expiration\": 86400, \"resources\": {\"cores\": 8, \"instances\": 1, \"ram\": 8192},"
        " \"attributes\": null, \"python_path\": null, \"tenant_name\": \"openstack\", \"driver_data\": null,"
        " \"requestor\": \"3c9f0d\", \"id\": \"0000000042\", \"zuul_extra\": {\"a\": [1, 2]}, \"future_flag\": true}";

/* §1.4: a Zuul-submitted request (not yet handled). */
static const char REQUEST_ZUUL[] =
        "{\"state\": \"requested\", \"state_time\": 1725999990.0, \"declined_by\": [\"other-launcher\"],"
        " \"node_types\": [\"ubuntu-jammy\", \"centos-9\", \"ubuntu-jammy\"], \"nodes\": [], \"reuse\": true,"
        " \"requestor\": \"3c9f0d\", \"requestor_data\": {\"build_set_uuid\": \"b5e1\", \"tenant_name\": \"t\","
        " \"pipeline_name\": \"check\", \"job_uuid\": \"j77\", \"job_name\": \"tox\","
        " \"span_info\": {\"trace_id\": 12345678901234, \"span_id\": 42, \"trace_flags\": 1}},"
        " \"provider\": null, \"relative_priority\": 3, \"event_id\": \"e0f1a2\", \"created_time\": 1725999990.0,"
        " \"tenant_name\": \"t\", \"zuul_future\": [\"x\"]}";

static const char BUILD_NODEPOOL[] =
        "{\"state\": \"ready\", \"state_time\": 1725000000.75, \"builder\": \"nb01.example.org\","
        " \"builder_id\": \"5d1e6d4c-9c55-4c11-8a35-6c07e9d9b0b1\", \"formats\": \"qcow2,raw\","
        " \"username\": \"zuul\", \"python_path\": \"auto\", \"shell_type\": null}";

static const char UPLOAD_NODEPOOL[] =
        "{\"state\": \"ready\", \"state_time\": 1725000500.5, \"external_id\": \"8c2d-image\","
        " \"external_name\": \"ubuntu-jammy-1725000000\", \"format\": \"qcow2\", \"username\": \"zuul\","
        " \"python_path\": \"auto\", \"shell_type\": null}";

static const char HOLD_ZUUL[] =
        "{\"id\": \"0000000003\", \"expired\": null, \"tenant\": \"openstack\","
        " \"project\": \"opendev.org/openstack/nova\", \"job\": \"tox-py3\", \"ref_filter\": \".*\","
        " \"max_count\": 2, \"current_count\": 1, \"reason\": \"flaky\", \"node_expiration\": 86400,"
        " \"nodes\": [{\"build\": \"b9\", \"nodes\": [\"0000000042\", \"0000000043\"]}]}";

static json_t *parse(const char *s) {
        json_error_t e;
        json_t *v = json_loads(s, 0, &e);
        if (!v) fail_msg("test fixture does not parse: %s", e.text);
        return v;
}

/* Assert that encoded JSON text equals the JSON value of want (object equality, types included). */
static void assert_json_equal(const char *got, const char *want) {
        json_t *g = parse(got), *w = parse(want);
        if (!json_equal(g, w)) fail_msg("JSON differs:\n got:  %s\n want: %s", got, want);
        json_decref(g);
        json_decref(w);
}

/* Every key of orig is in got, with the same value, except those in skip. */
static void assert_keeps_keys(json_t *got, json_t *orig, const char *const *skip) {
        const char *k;
        json_t *v;
        json_object_foreach(orig, k, v) {
                bool skipped = false;
                for (size_t i = 0; skip && skip[i]; i++)
                        if (strcmp(skip[i], k) == 0) skipped = true;
                json_t *g = json_object_get(got, k);
                if (!g) fail_msg("key %s was dropped", k);
                if (!skipped && !json_equal(g, v)) fail_msg("key %s changed", k);
        }
}

/* Decode NODE_NODEPOOL, re-encode: the JSON equals the input exactly, and a
 * second decode yields the same fields. */
static void test_node_roundtrip_nodepool_written(void **state) {
        struct node *n = NULL, *n2 = NULL;
        struct model_error err = { "" };
        char *out = NULL;

        assert_int_equal(node_from_json(NODE_NODEPOOL, strlen(NODE_NODEPOOL), "0000000042", &n, &err), 0);
        assert_string_equal(n->id, "0000000042");
        assert_int_equal(n->state, NODE_STATE_READY);
        assert_true(n->state_time == 1726000000.123);
        assert_int_equal(model_strv_length(n->type), 1);
        assert_string_equal(n->type[0], "ubuntu-jammy");
        assert_string_equal(n->allocated_to, "200-0000012345");
        assert_int_equal(n->connection_port, 22);
        assert_null(n->connection_port_other);
        assert_int_equal(model_strv_length(n->host_keys), 2);
        assert_false(n->hold_expiration_set);
        assert_false(n->slot_set);
        assert_null(n->comment);
        assert_string_equal(n->python_path, "auto");
        assert_true(json_is_object(n->resources));
        assert_string_equal(json_string_value(n->external_id), "6b1c0f2e-aaaa-bbbb-cccc-1234567890ab");

        assert_int_equal(node_to_json(n, &out, NULL), 0);
        assert_json_equal(out, NODE_NODEPOOL);

        assert_int_equal(node_from_json(out, strlen(out), "0000000042", &n2, &err), 0);
        assert_int_equal(n2->state, n->state);
        assert_true(n2->state_time == n->state_time);
        assert_true(n2->created_time == n->created_time);
        assert_true(model_strv_equal(n2->type, n->type));
        assert_true(model_strv_equal(n2->host_keys, n->host_keys));
        assert_string_equal(n2->interface_ip, n->interface_ip);
        assert_string_equal(n2->image_id, n->image_id);
        assert_true(json_equal(n2->attributes, n->attributes));
        free(out);
        node_free(n);
        node_free(n2);
}

/* A node Zuul wrote (its "id", user_data, hold fields, unknown keys) that we
 * move to "used" keeps every key with its value, only state/state_time change. */
static void test_node_zuul_written_update_to_used_keeps_every_key(void **state) {
        struct node *n = NULL;
        struct model_error err = { "" };
        char *out = NULL;

        assert_int_equal(node_from_json(NODE_ZUUL, strlen(NODE_ZUUL), "0000000042", &n, &err), 0);
        assert_int_equal(n->state, NODE_STATE_IN_USE);
        assert_int_equal(n->hold_expiration, 86400);
        assert_true(json_is_object(n->external_id));
        assert_string_equal(n->comment, "debugging a flaky test");
        double before = n->state_time;
        node_set_state(n, NODE_STATE_USED);
        assert_true(n->state_time > before);
        assert_int_equal(node_to_json(n, &out, NULL), 0);

        json_t *got = parse(out), *orig = parse(NODE_ZUUL);
        static const char *const changed[] = { "state", "state_time", NULL };
        assert_keeps_keys(got, orig, changed);
        assert_string_equal(json_string_value(json_object_get(got, "state")), "used");
        assert_true(json_is_real(json_object_get(got, "state_time")));
        assert_string_equal(json_string_value(json_object_get(got, "id")), "0000000042");
        assert_true(json_equal(json_object_get(got, "zuul_extra"), json_object_get(orig, "zuul_extra")));
        /* Keys Nodepool always writes but Zuul's copy lacked are added. */
        assert_true(json_is_null(json_object_get(got, "slot")));
        assert_true(json_is_null(json_object_get(got, "node_properties")));
        json_decref(got);
        json_decref(orig);
        free(out);
        node_free(n);
}

/* The §1.4 Zuul request, fulfilled by us: every key Zuul wrote survives
 * (requestor_data with span_info, unknown keys) and nodes follow node_types order. */
static void test_request_zuul_written_fulfilled_keeps_every_key(void **state) {
        struct node_request *q = NULL;
        struct model_error err = { "" };
        char *out = NULL;

        assert_int_equal(node_request_from_json(REQUEST_ZUUL, strlen(REQUEST_ZUUL), "200-0000012345", &q, &err), 0);
        assert_int_equal(q->state, NODE_REQUEST_STATE_REQUESTED);
        assert_int_equal(q->relative_priority, 3);
        assert_true(q->reuse);
        assert_int_equal(model_strv_length(q->node_types), 3);
        assert_true(model_strv_contains(q->declined_by, "other-launcher"));

        /* Launch one node per label, in node_types order. */
        static const char *const ids[] = { "0000012001", "0000012002", "0000012003" };
        for (size_t i = 0; i < 3; i++) model_strv_push(&q->nodes, ids[i]);
        node_request_set_state(q, NODE_REQUEST_STATE_FULFILLED);
        assert_int_equal(node_request_to_json(q, &out, NULL), 0);

        json_t *got = parse(out), *orig = parse(REQUEST_ZUUL);
        static const char *const changed[] = { "state", "state_time", "nodes", NULL };
        assert_keeps_keys(got, orig, changed);
        assert_string_equal(json_string_value(json_object_get(got, "state")), "fulfilled");
        json_t *nodes = json_object_get(got, "nodes");
        assert_int_equal(json_array_size(nodes), 3);
        for (size_t i = 0; i < 3; i++) assert_string_equal(json_string_value(json_array_get(nodes, i)), ids[i]);
        assert_true(json_equal(json_object_get(got, "requestor_data"), json_object_get(orig, "requestor_data")));
        json_decref(got);
        json_decref(orig);
        free(out);
        node_request_free(q);
}

/* Decode -> encode of a request with no changes gives back the same JSON object. */
static void test_request_roundtrip_unchanged(void **state) {
        struct node_request *q = NULL;
        char *out = NULL;

        assert_int_equal(node_request_from_json(REQUEST_ZUUL, strlen(REQUEST_ZUUL), "200-0000012345", &q, NULL), 0);
        assert_int_equal(node_request_to_json(q, &out, NULL), 0);
        assert_json_equal(out, REQUEST_ZUUL);
        free(out);
        node_request_free(q);
}

/* A minimal request gets Nodepool's read defaults and is written with the full toDict key set. */
static void test_request_defaults_and_full_key_set(void **state) {
        static const char in[] = "{\"state\": \"pending\"}";
        struct node_request *q = NULL;
        char *out = NULL;

        assert_int_equal(node_request_from_json(in, strlen(in), "100-0000000001", &q, NULL), 0);
        assert_true(q->reuse);
        assert_int_equal(q->relative_priority, 0);
        assert_int_equal(model_strv_length(q->declined_by), 0);
        assert_int_equal(model_strv_length(q->nodes), 0);
        assert_int_equal(model_strv_length(q->node_types), 0);
        assert_null(q->requestor_data);
        assert_true(isnan(q->state_time));
        assert_int_equal(node_request_to_json(q, &out, NULL), 0);
        assert_json_equal(out, "{\"state\": \"pending\", \"state_time\": null, \"declined_by\": [], \"node_types\": [],"
                               " \"nodes\": [], \"reuse\": true, \"requestor\": null, \"requestor_data\": null,"
                               " \"provider\": null, \"relative_priority\": 0, \"event_id\": null,"
                               " \"created_time\": null, \"tenant_name\": null}");
        free(out);
        node_request_free(q);
}

/* Legacy node forms: "type" as a plain string and only "ssh_port"; missing
 * fields take Nodepool's read defaults; we write type as a list and both ports. */
static void test_node_legacy_string_type_and_ssh_port(void **state) {
        static const char in[] = "{\"state\": \"ready\", \"type\": \"fedora-40\", \"ssh_port\": 2222}";
        struct node *n = NULL;
        char *out = NULL;

        assert_int_equal(node_from_json(in, strlen(in), "0000000001", &n, NULL), 0);
        assert_int_equal(model_strv_length(n->type), 1);
        assert_string_equal(n->type[0], "fedora-40");
        assert_int_equal(n->connection_port, 2222);
        assert_string_equal(n->username, "zuul");
        assert_null(n->python_path);
        assert_int_equal(model_strv_length(n->host_keys), 0);
        assert_int_equal(node_to_json(n, &out, NULL), 0);
        json_t *o = parse(out);
        json_t *type = json_object_get(o, "type");
        assert_true(json_is_array(type));
        assert_string_equal(json_string_value(json_array_get(type, 0)), "fedora-40");
        assert_int_equal(json_integer_value(json_object_get(o, "connection_port")), 2222);
        assert_int_equal(json_integer_value(json_object_get(o, "ssh_port")), 2222);
        assert_string_equal(json_string_value(json_object_get(o, "username")), "zuul");
        json_decref(o);
        free(out);
        node_free(n);

        /* Neither port key: 22. Empty-string type: no labels (Python as_list of a falsy value). */
        static const char in2[] = "{\"state\": \"building\", \"type\": \"\"}";
        assert_int_equal(node_from_json(in2, strlen(in2), NULL, &n, NULL), 0);
        assert_int_equal(n->connection_port, 22);
        assert_int_equal(model_strv_length(n->type), 0);
        node_free(n);
}

/* A k8s-style dict in connection_port is carried opaquely into both port keys. */
static void test_node_connection_port_dict_is_kept(void **state) {
        static const char in[] = "{\"state\": \"ready\", \"connection_port\": {\"pod\": \"p1\", \"token\": \"s\"}}";
        struct node *n = NULL;
        char *out = NULL;

        assert_int_equal(node_from_json(in, strlen(in), NULL, &n, NULL), 0);
        assert_non_null(n->connection_port_other);
        assert_int_equal(node_to_json(n, &out, NULL), 0);
        json_t *o = parse(out), *want = parse("{\"pod\": \"p1\", \"token\": \"s\"}");
        assert_true(json_equal(json_object_get(o, "connection_port"), want));
        assert_true(json_equal(json_object_get(o, "ssh_port"), want));
        json_decref(o);
        json_decref(want);
        free(out);
        node_free(n);
}

/* hold_expiration is coerced like Python int(): "3600" -> 3600, 12.9 -> 12, "soon" -> 0. */
static void test_node_hold_expiration_coercion(void **state) {
        static const struct {
                const char *json;
                int64_t want;
        } cases[] = {
                { "{\"state\": \"hold\", \"hold_expiration\": \"3600\"}", 3600 },
                { "{\"state\": \"hold\", \"hold_expiration\": 12.9}", 12 },
                { "{\"state\": \"hold\", \"hold_expiration\": \"soon\"}", 0 },
                { "{\"state\": \"hold\", \"hold_expiration\": 7}", 7 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct node *n = NULL;
                assert_int_equal(node_from_json(cases[i].json, strlen(cases[i].json), NULL, &n, NULL), 0);
                assert_true(n->hold_expiration_set);
                assert_int_equal(n->hold_expiration, cases[i].want);
                node_free(n);
        }
        struct node *n = NULL;
        static const char bad[] = "{\"state\": \"hold\", \"hold_expiration\": [1]}";
        assert_true(node_from_json(bad, strlen(bad), NULL, &n, NULL) < 0);
        assert_null(n);
}

/* A new node encodes every key of Nodepool's Node.toDict(), in its order. */
static void test_node_new_encodes_todict_keys_in_order(void **state) {
        static const char *const keys[] = {
                "state", "state_time", "cloud", "provider", "pool", "type", "allocated_to", "az", "region",
                "public_ipv4", "private_ipv4", "public_ipv6", "host_id", "interface_ip", "connection_port", "ssh_port",
                "image_id", "launcher", "created_time", "external_id", "hostname", "comment", "user_data", "hold_job",
                "host_keys", "username", "connection_type", "shell_type", "hold_expiration", "resources", "slot",
                "attributes", "python_path", "tenant_name", "driver_data", "requestor", "node_properties",
        };
        struct node *n = node_new("0000000007");
        char *out = NULL;

        model_set_str(&n->provider, "p");
        n->state_time = 1726000000.5;
        assert_int_equal(node_to_json(n, &out, NULL), 0);
        json_t *o = parse(out);
        assert_int_equal(json_object_size(o), ELEMENTSOF(keys));
        size_t i = 0;
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) assert_string_equal(k, keys[i++]);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "init");
        assert_true(json_is_real(json_object_get(o, "state_time")));
        assert_int_equal(json_integer_value(json_object_get(o, "connection_port")), 22);
        json_decref(o);
        free(out);
        node_free(n);
}

/* An integer state_time written by someone else stays an integer if unchanged. */
static void test_node_integer_time_kept_as_integer(void **state) {
        static const char in[] = "{\"state\": \"ready\", \"state_time\": 1726000000}";
        struct node *n = NULL;
        char *out = NULL;

        assert_int_equal(node_from_json(in, strlen(in), NULL, &n, NULL), 0);
        assert_int_equal(node_to_json(n, &out, NULL), 0);
        json_t *o = parse(out);
        assert_true(json_is_integer(json_object_get(o, "state_time")));
        json_decref(o);
        free(out);
        node_free(n);
}

/* Strings that are not UTF-8 cannot be encoded: -EINVAL, not garbage JSON. */
static void test_encode_rejects_invalid_utf8(void **state) {
        struct node *n = node_new(NULL);
        char *out = NULL;

        model_set_str(&n->comment, "bad \xff byte");
        assert_int_equal(node_to_json(n, &out, NULL), -EINVAL);
        assert_null(out);
        node_free(n);
}

/* Encoding refuses output ZooKeeper would refuse (> 1 MiB). */
static void test_encode_rejects_oversize(void **state) {
        struct node *n = node_new(NULL);
        char *big = xmalloc(MODEL_JSON_MAX + 2), *out = NULL;

        memset(big, 'x', MODEL_JSON_MAX + 1);
        big[MODEL_JSON_MAX + 1] = '\0';
        n->user_data = json_util_must(json_string(big));
        assert_int_equal(node_to_json(n, &out, NULL), -E2BIG);
        assert_null(out);
        free(big);
        node_free(n);
}

/* ImageBuild round-trips; read defaults are username "zuul" and python_path
 * "/usr/bin/python2"; formats are written sorted; unset builder keys are omitted. */
static void test_image_build_roundtrip_and_defaults(void **state) {
        struct image_build *b = NULL;
        char *out = NULL;

        assert_int_equal(image_build_from_json(BUILD_NODEPOOL, strlen(BUILD_NODEPOOL),
                                               "0123456789abcdef0123456789abcdef", &b, NULL), 0);
        assert_int_equal(b->state, IMAGE_BUILD_STATE_READY);
        assert_int_equal(model_strv_length(b->formats), 2);
        assert_int_equal(image_build_to_json(b, &out, NULL), 0);
        assert_json_equal(out, BUILD_NODEPOOL);
        free(out);
        image_build_free(b);

        static const char in[] = "{\"state\": \"building\", \"formats\": \"vhd,raw,qcow2\"}";
        assert_int_equal(image_build_from_json(in, strlen(in), "0000000001", &b, NULL), 0);
        assert_string_equal(b->username, "zuul");
        assert_string_equal(b->python_path, "/usr/bin/python2");
        assert_int_equal(image_build_to_json(b, &out, NULL), 0);
        assert_json_equal(out, "{\"state\": \"building\", \"state_time\": null, \"formats\": \"qcow2,raw,vhd\","
                               " \"username\": \"zuul\", \"python_path\": \"/usr/bin/python2\", \"shell_type\": null}");
        free(out);
        image_build_free(b);

        b = image_build_new("ffffffffffffffffffffffffffffffff");
        assert_int_equal(image_build_to_json(b, &out, NULL), 0);
        json_t *o = parse(out);
        assert_null(json_object_get(o, "builder"));
        assert_null(json_object_get(o, "formats"));
        json_decref(o);
        free(out);
        image_build_free(b);
}

/* poold's back-off keys on a failed build survive a round trip, are written
 * only when set, and a value of the wrong type reads as absent without
 * making the record unreadable (Nodepool's keys are still decoded). */
static void test_image_build_poold_failure_keys(void **state) {
        struct image_build *b = NULL;
        char *out = NULL;
        static const char in[] = "{\"state\": \"failed\", \"state_time\": 1700000000.5, \"poold_failures\": 3,"
                                 " \"poold_retry_time\": 1700000240.5, \"other\": 1}";
        assert_int_equal(image_build_from_json(in, strlen(in), "0000000001", &b, NULL), 0);
        assert_int_equal(b->failures, 3);
        assert_true(b->retry_time == 1700000240.5);
        assert_int_equal(image_build_to_json(b, &out, NULL), 0);
        json_t *o = parse(out);
        assert_int_equal(json_integer_value(json_object_get(o, "poold_failures")), 3);
        assert_true(json_real_value(json_object_get(o, "poold_retry_time")) == 1700000240.5);
        assert_int_equal(json_integer_value(json_object_get(o, "other")), 1);
        json_decref(o);
        free(out);
        /* cleared: the keys go */
        b->failures = -1;
        b->retry_time = MODEL_TIME_NONE;
        assert_int_equal(image_build_to_json(b, &out, NULL), 0);
        o = parse(out);
        assert_null(json_object_get(o, "poold_failures"));
        assert_null(json_object_get(o, "poold_retry_time"));
        json_decref(o);
        free(out);
        image_build_free(b);

        static const char bad[] = "{\"state\": \"failed\", \"builder\": \"b1\", \"poold_failures\": \"many\","
                                  " \"poold_retry_time\": [1]}";
        assert_int_equal(image_build_from_json(bad, strlen(bad), "0000000002", &b, NULL), 0);
        assert_int_equal(b->failures, -1);
        assert_true(isnan(b->retry_time));
        assert_string_equal(b->builder, "b1");
        image_build_free(b);
        b = image_build_new("0000000003");
        assert_int_equal(b->failures, -1);
        assert_true(isnan(b->retry_time));
        image_build_free(b);
}

/* ImageUpload round-trips and has the same read defaults as builds. */
static void test_image_upload_roundtrip_and_defaults(void **state) {
        struct image_upload *u = NULL;
        char *out = NULL;

        assert_int_equal(image_upload_from_json(UPLOAD_NODEPOOL, strlen(UPLOAD_NODEPOOL), "0000000001", &u, NULL), 0);
        assert_int_equal(u->state, IMAGE_UPLOAD_STATE_READY);
        assert_string_equal(u->external_id, "8c2d-image");
        assert_int_equal(image_upload_to_json(u, &out, NULL), 0);
        assert_json_equal(out, UPLOAD_NODEPOOL);
        free(out);
        image_upload_free(u);

        static const char in[] = "{\"state\": \"uploading\", \"extra\": 1}";
        assert_int_equal(image_upload_from_json(in, strlen(in), "0000000002", &u, NULL), 0);
        assert_string_equal(u->username, "zuul");
        assert_string_equal(u->python_path, "/usr/bin/python2");
        image_upload_set_state(u, IMAGE_UPLOAD_STATE_FAILED);
        assert_int_equal(image_upload_to_json(u, &out, NULL), 0);
        json_t *o = parse(out);
        assert_int_equal(json_integer_value(json_object_get(o, "extra")), 1);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "failed");
        json_decref(o);
        free(out);
        image_upload_free(u);
}

/* poold_verify: read when an object (a wrong-typed member reads as NULL, a
 * non-object as absent), written back with only the members set, dropped when
 * the state is cleared. */
static void test_image_upload_poold_verify(void **state) {
        struct image_upload *u = NULL;
        char *out = NULL;
        static const char in[] = "{\"state\": \"uploading\", \"poold_verify\": {\"state\": \"checking\", "
                                 "\"server\": \"p-np1\", \"reason\": 7}}";
        assert_int_equal(image_upload_from_json(in, strlen(in), "0000000001", &u, NULL), 0);
        assert_string_equal(u->verify_state, "checking");
        assert_string_equal(u->verify_server, "p-np1");
        assert_null(u->verify_reason);
        assert_null(u->verify_log);
        model_set_str(&u->verify_state, "failed");
        model_set_str(&u->verify_reason, "ssh timeout");
        assert_int_equal(image_upload_to_json(u, &out, NULL), 0);
        assert_json_equal(out, "{\"state\": \"uploading\", \"state_time\": null, \"external_id\": null, "
                               "\"external_name\": null, \"format\": null, \"username\": \"zuul\", "
                               "\"python_path\": \"/usr/bin/python2\", \"shell_type\": null, "
                               "\"poold_verify\": {\"state\": \"failed\", \"reason\": \"ssh timeout\", "
                               "\"server\": \"p-np1\"}}");
        free(out);
        model_set_str(&u->verify_state, NULL);
        assert_int_equal(image_upload_to_json(u, &out, NULL), 0);
        json_t *o = parse(out);
        assert_null(json_object_get(o, "poold_verify"));
        json_decref(o);
        free(out);
        image_upload_free(u);

        static const char odd[] = "{\"state\": \"ready\", \"poold_verify\": \"passed\"}";
        assert_int_equal(image_upload_from_json(odd, strlen(odd), "0000000002", &u, NULL), 0);
        assert_null(u->verify_state);
        image_upload_free(u);
}

/* Zuul's HoldRequest decodes (fields, defaults, nodes) and round-trips unchanged. */
static void test_hold_request_decode_and_roundtrip(void **state) {
        struct hold_request *h = NULL;
        char *out = NULL;

        assert_int_equal(hold_request_from_json(HOLD_ZUUL, strlen(HOLD_ZUUL), "0000000003", &h, NULL), 0);
        assert_string_equal(h->tenant, "openstack");
        assert_int_equal(h->max_count, 2);
        assert_int_equal(h->current_count, 1);
        assert_true(h->node_expiration_set);
        assert_int_equal(h->node_expiration, 86400);
        assert_true(isnan(h->expired));
        assert_int_equal(h->n_nodes, 1);
        assert_string_equal(h->nodes[0].build, "b9");
        assert_int_equal(model_strv_length(h->nodes[0].nodes), 2);
        assert_int_equal(hold_request_to_json(h, &out, NULL), 0);
        assert_json_equal(out, HOLD_ZUUL);
        free(out);
        hold_request_free(h);

        static const char in[] = "{\"tenant\": \"t\"}";
        assert_int_equal(hold_request_from_json(in, strlen(in), "0000000004", &h, NULL), 0);
        assert_int_equal(h->max_count, 1);
        assert_int_equal(h->current_count, 0);
        assert_int_equal(h->n_nodes, 0);
        hold_request_free(h);
}

typedef int (*decode_fn)(const char *data, size_t len, struct model_error *err);

#define DECODER(name, type, fn, freefn)                                             \
        static int name(const char *data, size_t len, struct model_error *err) {    \
                type *x = NULL;                                                     \
                int r = fn(data, len, "0000000001", &x, err);                       \
                if (r < 0) assert_null(x);                                          \
                freefn(x);                                                          \
                return r;                                                           \
        }
DECODER(dec_node, struct node, node_from_json, node_free)
DECODER(dec_request, struct node_request, node_request_from_json, node_request_free)
DECODER(dec_build, struct image_build, image_build_from_json, image_build_free)
DECODER(dec_upload, struct image_upload, image_upload_from_json, image_upload_free)
DECODER(dec_hold, struct hold_request, hold_request_from_json, hold_request_free)

static char *nested(size_t depth) {
        /* {"state":"ready","x":[[[...]]]} */
        char *s = xmalloc(depth * 2 + 64), *p = s;
        p += sprintf(p, "{\"state\": \"ready\", \"x\": ");
        for (size_t i = 0; i < depth; i++) *p++ = '[';
        for (size_t i = 0; i < depth; i++) *p++ = ']';
        strcpy(p, "}");
        return s;
}

/* Malformed input of every kind is rejected by every decoder with a negative
 * errno and a message, without crashing: not JSON, not an object, truncated,
 * too large, nested too deep, empty. */
static void test_malformed_input_rejected_by_every_decoder(void **state) {
        static const decode_fn decoders[] = { dec_node, dec_request, dec_build, dec_upload, dec_hold };
        char *deep = nested(100), *very_deep = nested(5000);
        char *huge = xmalloc(MODEL_JSON_MAX + 64);
        int n = snprintf(huge, 64, "{\"state\": \"ready\", \"comment\": \"");
        memset(huge + n, 'a', MODEL_JSON_MAX);
        strcpy(huge + n + MODEL_JSON_MAX - 10, "\"}");
        struct {
                const char *data;
                size_t len;
        } bad[] = {
                { "not json", 8 },
                { "[1, 2, 3]", 9 },
                { "\"a string\"", 10 },
                { "{\"state\": \"ready\"", 17 },
                { "", 0 },
                { "{\"state\": \"ready\"}\0trailing", 27 },
                { deep, strlen(deep) },
                { very_deep, strlen(very_deep) },
                { huge, MODEL_JSON_MAX + 1 },
        };
        for (size_t d = 0; d < ELEMENTSOF(decoders); d++)
                for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                        struct model_error err = { "" };
                        int r = decoders[d](bad[i].data, bad[i].len, &err);
                        if (r >= 0) fail_msg("decoder %zu accepted bad input %zu", d, i);
                        assert_true(err.msg[0] != '\0');
                }
        /* NULL error pointer is allowed. */
        assert_true(dec_node("nope", 4, NULL) < 0);
        free(deep);
        free(very_deep);
        free(huge);
}

/* Wrong types and unknown or missing states are decode errors with a message naming the key. */
static void test_wrong_types_and_unknown_states_rejected(void **state) {
        static const struct {
                decode_fn fn;
                const char *json;
                const char *key;
        } cases[] = {
                { dec_node, "{\"state\": 5}", "state" },
                { dec_node, "{\"state\": \"exploded\"}", "state" },
                { dec_node, "{\"state\": \"ready\\u0000x\"}", "state" },
                { dec_node, "{}", "state" },
                { dec_node, "{\"state\": \"ready\", \"type\": 5}", "type" },
                { dec_node, "{\"state\": \"ready\", \"type\": [\"a\", 1]}", "type" },
                { dec_node, "{\"state\": \"ready\", \"provider\": [\"p\"]}", "provider" },
                { dec_node, "{\"state\": \"ready\", \"state_time\": \"yesterday\"}", "state_time" },
                { dec_node, "{\"state\": \"ready\", \"host_keys\": \"k\"}", "host_keys" },
                { dec_node, "{\"state\": \"ready\", \"slot\": \"1\"}", "slot" },
                { dec_request, "{\"state\": \"ready\"}", "state" },
                { dec_request, "{\"state\": \"requested\", \"nodes\": [1]}", "nodes" },
                { dec_request, "{\"state\": \"requested\", \"reuse\": \"yes\"}", "reuse" },
                { dec_request, "{\"state\": \"requested\", \"relative_priority\": \"1\"}", "relative_priority" },
                { dec_request, "{\"state\": \"requested\", \"declined_by\": {}}", "declined_by" },
                { dec_build, "{\"state\": \"uploading\"}", "state" },
                { dec_build, "{\"state\": \"ready\", \"formats\": [\"qcow2\"]}", "formats" },
                { dec_upload, "{\"state\": \"building\"}", "state" },
                { dec_upload, "{\"state\": \"ready\", \"external_id\": 5}", "external_id" },
                { dec_hold, "{\"max_count\": \"2\"}", "max_count" },
                { dec_hold, "{\"nodes\": [5]}", "nodes" },
                { dec_hold, "{\"nodes\": [{\"build\": 1}]}", "build" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct model_error err = { "" };
                int r = cases[i].fn(cases[i].json, strlen(cases[i].json), &err);
                if (r != -EINVAL) fail_msg("case %zu (%s): got %d", i, cases[i].json, r);
                if (!strstr(err.msg, cases[i].key)) fail_msg("case %zu: message \"%s\" lacks key %s", i, err.msg, cases[i].key);
        }
}

/* Each state table names Nodepool's states, to_string/from_string are
 * inverse, and out-of-range values map to NULL / _INVALID. */
static void test_state_tables_complete_and_inverse(void **state) {
        static const char *const node_states[] = { "building", "testing", "ready", "in-use", "used", "hold",
                                                   "deleting", "failed", "init", "aborted", "deleted" };
        static const char *const req_states[] = { "requested", "pending", "fulfilled", "failed" };
        static const char *const build_states[] = { "building", "ready", "deleting", "failed" };
        static const char *const upload_states[] = { "uploading", "ready", "deleting", "failed" };

        assert_int_equal(_NODE_STATE_MAX, ELEMENTSOF(node_states));
        for (int i = 0; i < _NODE_STATE_MAX; i++) {
                assert_string_equal(node_state_to_string(i), node_states[i]);
                assert_int_equal(node_state_from_string(node_states[i]), i);
        }
        assert_int_equal(_NODE_REQUEST_STATE_MAX, ELEMENTSOF(req_states));
        for (int i = 0; i < _NODE_REQUEST_STATE_MAX; i++) {
                assert_string_equal(node_request_state_to_string(i), req_states[i]);
                assert_int_equal(node_request_state_from_string(req_states[i]), i);
        }
        assert_int_equal(_IMAGE_BUILD_STATE_MAX, ELEMENTSOF(build_states));
        for (int i = 0; i < _IMAGE_BUILD_STATE_MAX; i++) {
                assert_string_equal(image_build_state_to_string(i), build_states[i]);
                assert_int_equal(image_build_state_from_string(build_states[i]), i);
        }
        assert_int_equal(_IMAGE_UPLOAD_STATE_MAX, ELEMENTSOF(upload_states));
        for (int i = 0; i < _IMAGE_UPLOAD_STATE_MAX; i++) {
                assert_string_equal(image_upload_state_to_string(i), upload_states[i]);
                assert_int_equal(image_upload_state_from_string(upload_states[i]), i);
        }
        assert_null(node_state_to_string(_NODE_STATE_MAX));
        assert_null(node_state_to_string(_NODE_STATE_INVALID));
        assert_null(node_request_state_to_string(_NODE_REQUEST_STATE_MAX));
        assert_null(image_build_state_to_string(_IMAGE_BUILD_STATE_MAX));
        assert_null(image_upload_state_to_string(-1));
        assert_int_equal(node_state_from_string("IN-USE"), _NODE_STATE_INVALID);
        assert_int_equal(node_state_from_string(NULL), _NODE_STATE_INVALID);
        assert_int_equal(node_request_state_from_string("ready"), _NODE_REQUEST_STATE_INVALID);
        assert_int_equal(image_build_state_from_string("uploading"), _IMAGE_BUILD_STATE_INVALID);
        assert_int_equal(image_upload_state_from_string("building"), _IMAGE_UPLOAD_STATE_INVALID);
}

/* Launcher order: priority string first ("100-…" before "200-…"), then lower
 * relative_priority, then sequence; unparsable ids last. */
static void test_request_sort_order(void **state) {
        static const struct {
                const char *id;
                int64_t rp;
        } in[] = {
                { "200-0000000001", 5 }, { "bogus", 0 },         { "100-0000000009", 0 }, { "200-0000000003", 0 },
                { "200-0000000002", 0 }, { "100-0000000004", 2 }, { "300-0000000000", 0 }, { "200-0000000004", 5 },
        };
        static const char *const want[] = { "100-0000000009", "100-0000000004", "200-0000000002", "200-0000000003",
                                            "200-0000000001", "200-0000000004", "300-0000000000", "bogus" };
        struct node_request *v[ELEMENTSOF(in)];

        for (size_t i = 0; i < ELEMENTSOF(in); i++) {
                v[i] = node_request_new(in[i].id);
                v[i]->relative_priority = in[i].rp;
        }
        qsort(v, ELEMENTSOF(v), sizeof v[0], node_request_compare_qsort);
        for (size_t i = 0; i < ELEMENTSOF(v); i++) assert_string_equal(v[i]->id, want[i]);
        assert_int_equal(node_request_compare(v[0], v[0]), 0);
        for (size_t i = 0; i < ELEMENTSOF(v); i++) node_request_free(v[i]);
}

/* Request ids split into priority and sequence only in the classic "PPP-seq" form. */
static void test_request_id_parse(void **state) {
        char *p = NULL, *s = NULL;

        assert_int_equal(node_request_id_parse("200-0000012345", &p, &s), 0);
        assert_string_equal(p, "200");
        assert_string_equal(s, "0000012345");
        free(p);
        free(s);
        assert_int_equal(node_request_id_parse("100--000000001", &p, &s), 0);
        assert_string_equal(s, "-000000001");
        free(p);
        free(s);
        p = s = NULL;
        static const char *const bad[] = { "", "200", "200-", "20-00000001", "abc-0000000001", "200-12a4",
                                           "0123456789abcdef0123456789abcdef", "200_0000000001" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(node_request_id_parse(bad[i], &p, &s), -EINVAL);
                assert_null(p);
        }
        assert_true(node_request_id_is_classic("900-0000000001"));
        assert_false(node_request_id_is_classic("0123456789abcdef0123456789abcdef"));
        assert_false(node_request_id_is_classic("12"));
        assert_false(node_request_id_is_classic(NULL));
}

/* Node ids are exactly ten digits. */
static void test_node_id_validation(void **state) {
        assert_true(node_id_is_valid("0000000001"));
        assert_true(node_id_is_valid("9999999999"));
        assert_false(node_id_is_valid("000000001"));
        assert_false(node_id_is_valid("00000000011"));
        assert_false(node_id_is_valid("00000000a1"));
        assert_false(node_id_is_valid("../0000001"));
        assert_false(node_id_is_valid(""));
        assert_false(node_id_is_valid(NULL));
}

/* age is DD:HH:MM:SS with Python's divmod semantics. */
static void test_age_format(void **state) {
        static const struct {
                double dt;
                const char *want;
        } cases[] = {
                { 0, "00:00:00:00" },     { 59.9, "00:00:00:59" },       { 90061.5, "01:01:01:01" },
                { 3600, "00:01:00:00" },  { 100 * 86400.0, "100:00:00:00" }, { -5, "-1:23:59:55" },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char *s = model_age_format(1726000000.0 + cases[i].dt, 1726000000.0);
                assert_string_equal(s, cases[i].want);
                free(s);
        }
        char *s = model_age_format(1726000000.0, MODEL_TIME_NONE);
        assert_string_equal(s, "");
        free(s);
        s = model_age_format(1e300, -1e300); /* clamped, no overflow */
        assert_non_null(s);
        free(s);
}

/* uuid4 hex: 32 lowercase hex digits, version 4, RFC 4122 variant, random. */
static void test_uuid4_hex(void **state) {
        char a[33], b[33];

        assert_int_equal(model_uuid4_hex(a), 0);
        assert_int_equal(model_uuid4_hex(b), 0);
        assert_int_equal(strlen(a), 32);
        assert_int_equal(strspn(a, "0123456789abcdef"), 32);
        assert_int_equal(a[12], '4');
        assert_non_null(strchr("89ab", a[16]));
        assert_string_not_equal(a, b);
}

/* strv helpers: push/copy/equal/contains, NULL treated as empty. */
static void test_strv_helpers(void **state) {
        char **l = model_strv_new(), **c;

        assert_int_equal(model_strv_length(l), 0);
        assert_true(model_strv_equal(l, NULL));
        model_strv_push(&l, "a");
        model_strv_push(&l, "b");
        assert_int_equal(model_strv_length(l), 2);
        assert_true(model_strv_contains(l, "b"));
        assert_false(model_strv_contains(l, "c"));
        c = model_strv_copy(l);
        assert_true(model_strv_equal(l, c));
        model_strv_push(&c, "c");
        assert_false(model_strv_equal(l, c));
        model_strv_free(l);
        model_strv_free(c);
        model_strv_free(NULL);
}

/* Fixture files under tests/unit/data (found via POOLD_SRCDIR) decode and
 * round-trip: the same records the fuzz corpus seeds with. */
static void test_fixture_files_roundtrip(void **state) {
        static const struct {
                const char *file;
                int kind;
        } files[] = {
                { "node-nodepool.json", 0 }, { "node-zuul.json", 0 }, { "request-zuul.json", 1 },
                { "build.json", 2 },         { "upload.json", 3 },    { "hold-request.json", 4 },
        };
        const char *src = getenv("POOLD_SRCDIR");

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char *path = xasprintf("%s/tests/unit/data/%s", src ? src : ".", files[i].file);
                FILE *f = fopen(path, "re");
                if (!f) fail_msg("cannot open %s", path);
                char buf[16384];
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = '\0';
                char *out = NULL;
                struct model_error err = { "" };
                int r = -1;
                switch (files[i].kind) {
                case 0: {
                        struct node *x = NULL;
                        if ((r = node_from_json(buf, n, "0000000042", &x, &err)) == 0) r = node_to_json(x, &out, NULL);
                        node_free(x);
                        break;
                }
                case 1: {
                        struct node_request *x = NULL;
                        if ((r = node_request_from_json(buf, n, "200-0000012345", &x, &err)) == 0)
                                r = node_request_to_json(x, &out, NULL);
                        node_request_free(x);
                        break;
                }
                case 2: {
                        struct image_build *x = NULL;
                        if ((r = image_build_from_json(buf, n, "0123456789abcdef0123456789abcdef", &x, &err)) == 0)
                                r = image_build_to_json(x, &out, NULL);
                        image_build_free(x);
                        break;
                }
                case 3: {
                        struct image_upload *x = NULL;
                        if ((r = image_upload_from_json(buf, n, "0000000001", &x, &err)) == 0)
                                r = image_upload_to_json(x, &out, NULL);
                        image_upload_free(x);
                        break;
                }
                case 4: {
                        struct hold_request *x = NULL;
                        if ((r = hold_request_from_json(buf, n, "0000000003", &x, &err)) == 0)
                                r = hold_request_to_json(x, &out, NULL);
                        hold_request_free(x);
                        break;
                }
                }
                if (r != 0) fail_msg("%s: %d %s", path, r, err.msg);
                assert_json_equal(out, buf);
                free(out);
                free(path);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_node_roundtrip_nodepool_written),
                cmocka_unit_test(test_node_zuul_written_update_to_used_keeps_every_key),
                cmocka_unit_test(test_request_zuul_written_fulfilled_keeps_every_key),
                cmocka_unit_test(test_request_roundtrip_unchanged),
                cmocka_unit_test(test_request_defaults_and_full_key_set),
                cmocka_unit_test(test_node_legacy_string_type_and_ssh_port),
                cmocka_unit_test(test_node_connection_port_dict_is_kept),
                cmocka_unit_test(test_node_hold_expiration_coercion),
                cmocka_unit_test(test_node_new_encodes_todict_keys_in_order),
                cmocka_unit_test(test_node_integer_time_kept_as_integer),
                cmocka_unit_test(test_encode_rejects_invalid_utf8),
                cmocka_unit_test(test_encode_rejects_oversize),
                cmocka_unit_test(test_image_build_roundtrip_and_defaults),
                cmocka_unit_test(test_image_build_poold_failure_keys),
                cmocka_unit_test(test_image_upload_roundtrip_and_defaults),
                cmocka_unit_test(test_image_upload_poold_verify),
                cmocka_unit_test(test_hold_request_decode_and_roundtrip),
                cmocka_unit_test(test_malformed_input_rejected_by_every_decoder),
                cmocka_unit_test(test_wrong_types_and_unknown_states_rejected),
                cmocka_unit_test(test_state_tables_complete_and_inverse),
                cmocka_unit_test(test_request_sort_order),
                cmocka_unit_test(test_request_id_parse),
                cmocka_unit_test(test_node_id_validation),
                cmocka_unit_test(test_age_format),
                cmocka_unit_test(test_uuid4_hex),
                cmocka_unit_test(test_strv_helpers),
                cmocka_unit_test(test_fixture_files_roundtrip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
