/* test_static_nodes.c — the static driver's registration rules (protocol.md §2.5)
 * as pure planning: register/deregister/update actions, slots, host keys, label quota. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "config.h"
#include "model.h"
#include "model_node.h"
#include "static_nodes.h"

#define KEY_ED "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGNBWjkxIGvDqwlYO5PiHR3n5PlTZ0oI"
#define KEY_RSA "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDJ8wEn3hsfAP45uU"

static struct config *load(const char *yaml) {
        struct config *c = NULL;
        struct config_diags diags = { 0 };
        int r = config_load_buffer("test.yaml", yaml, strlen(yaml), NULL, NULL, 0, &c, &diags);
        if (r < 0) config_diags_print(&diags, stderr);
        config_diags_clear(&diags);
        assert_int_equal(r, 0);
        return c;
}

#define HEAD                                 \
        "labels:\n"                          \
        "  - name: small\n"                  \
        "  - name: large\n"                  \
        "  - name: gpu\n"                    \
        "providers:\n"                       \
        "  - name: rack\n"                   \
        "    driver: static\n"               \
        "    pools:\n"                       \
        "      - name: main\n"               \
        "        node-attributes:\n"         \
        "          executor-zone: lab\n"     \
        "        nodes:\n"

static const char *two_hosts = HEAD
        "          - name: 10.0.0.1\n"
        "            labels: [small, large]\n"
        "            max-parallel-jobs: 2\n"
        "            host-key-checking: false\n"
        "            shell-type: sh\n"
        "          - name: builder.example.com\n"
        "            labels: small\n"
        "            username: ci\n"
        "            connection-port: 2222\n"
        "            max-parallel-jobs: 2\n"
        "            host-key-checking: false\n";

/* A fake ZooKeeper: the nodes a plan's register actions created, plus test edits. */
struct zk {
        struct node *nodes[32];
        bool locked[32];
        size_t n;
        unsigned next_id;
};

static void zk_clear(struct zk *z) {
        for (size_t i = 0; i < z->n; i++) node_free(z->nodes[i]);
        z->n = 0;
}

static struct static_nodes_plan *plan_scans(const struct config *c, struct zk *z, const struct static_nodes_scan *scans,
                                            size_t n_scans) {
        struct static_nodes_plan *p = NULL;
        char *err = NULL;
        int r = static_nodes_plan(&c->providers[0], (const struct node *const *)z->nodes, z->locked, z->n, scans,
                                  n_scans, &p, &err);
        if (err) fprintf(stderr, "%s\n", err);
        free(err);
        assert_int_equal(r, 0);
        return p;
}

static struct static_nodes_plan *plan(const struct config *c, struct zk *z) { return plan_scans(c, z, NULL, 0); }

/* Store the plan's registrations as new znodes, as the launcher would. */
static void apply_registers(struct zk *z, const struct static_nodes_plan *p) {
        for (size_t i = 0; i < p->n_actions; i++) {
                if (p->actions[i].kind != STATIC_NODES_REGISTER) continue;
                char *json, id[11];
                assert_int_equal(node_to_json(p->actions[i].node, &json, NULL), 0);
                snprintf(id, sizeof id, "%010u", z->next_id++);
                struct node *n = NULL;
                assert_int_equal(node_from_json(json, strlen(json), id, &n, NULL), 0);
                free(json);
                z->nodes[z->n++] = n;
        }
}

static size_t count(const struct static_nodes_plan *p, enum static_nodes_action_kind k) {
        size_t n = 0;
        for (size_t i = 0; i < p->n_actions; i++) n += p->actions[i].kind == k;
        return n;
}

/* The input index of every action of kind k, as a bitmask. */
static unsigned indexes(const struct static_nodes_plan *p, enum static_nodes_action_kind k) {
        unsigned m = 0;
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == k) m |= 1u << p->actions[i].index;
        return m;
}

static void test_initial_registration_two_hosts_two_slots_each(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 4);
        assert_int_equal(count(p, STATIC_NODES_REGISTER), 4);
        const char *hosts[] = { "10.0.0.1", "10.0.0.1", "builder.example.com", "builder.example.com" };
        for (size_t i = 0; i < 4; i++) {
                const struct static_nodes_action *a = &p->actions[i];
                const struct node *n = a->node;
                assert_int_equal(a->slot, (int64_t)(i % 2));
                assert_true(n->slot_set);
                assert_int_equal(n->slot, (int64_t)(i % 2));
                assert_false(a->needs_scan); /* host-key-checking: false */
                assert_int_equal(n->state, NODE_STATE_READY);
                assert_string_equal(n->provider, "rack");
                assert_string_equal(n->pool, "main");
                assert_string_equal(n->launcher, "static driver");
                assert_string_equal(n->hostname, hosts[i]);
                assert_string_equal(n->interface_ip, hosts[i]);
                assert_string_equal(json_string_value(n->external_id), hosts[i]);
                assert_string_equal(n->connection_type, "ssh");
                assert_string_equal(n->python_path, "auto");
                assert_null(n->allocated_to);
                assert_null(n->host_keys[0]);
                assert_string_equal(json_string_value(json_object_get(n->attributes, "executor-zone")), "lab");
        }
        const struct node *ip = p->actions[0].node, *named = p->actions[2].node;
        assert_string_equal(ip->type[0], "small");
        assert_string_equal(ip->type[1], "large"); /* all labels of the host */
        assert_null(ip->type[2]);
        assert_string_equal(ip->username, "zuul");
        assert_int_equal(ip->connection_port, 22);
        assert_string_equal(ip->shell_type, "sh");
        assert_string_equal(ip->public_ipv4, "10.0.0.1");
        assert_string_equal(named->username, "ci");
        assert_int_equal(named->connection_port, 2222);
        assert_null(named->shell_type);
        assert_null(named->public_ipv4); /* a DNS name: the launcher resolves */
        /* What reaches ZooKeeper carries the slot and Nodepool's launcher name. */
        char *json;
        assert_int_equal(node_to_json(ip, &json, NULL), 0);
        json_t *o = json_loads(json, 0, NULL);
        free(json);
        assert_non_null(o);
        assert_int_equal(json_integer_value(json_object_get(o, "slot")), 0);
        assert_true(json_is_integer(json_object_get(o, "slot")));
        assert_string_equal(json_string_value(json_object_get(o, "launcher")), "static driver");
        assert_string_equal(json_string_value(json_object_get(o, "state")), "ready");
        json_decref(o);
}

static void test_plan_after_applying_is_empty(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        struct static_nodes_plan *p = plan(c, &z);
        apply_registers(&z, p);
        static_nodes_plan_free(p);
        p = plan(c, &z);
        assert_int_equal(p->n_actions, 0);
        assert_null(p->warnings[0]);
        static_nodes_plan_free(p);
        zk_clear(&z);
}

static void test_removed_host_deregisters_only_ready_unlocked_unallocated_nodes(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        /* builder.example.com's nodes are 2 and 3; add two more slots' worth by hand. */
        config_free(c);
        c = load(HEAD "          - name: 10.0.0.1\n"
                      "            labels: [small, large]\n"
                      "            max-parallel-jobs: 2\n"
                      "            host-key-checking: false\n"
                      "            shell-type: sh\n");
        node_set_state(z.nodes[3], NODE_STATE_IN_USE); /* in use: left until used */
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 1);
        assert_int_equal(indexes(p, STATIC_NODES_DEREGISTER), 1u << 2);
        /* Locked or allocated ready nodes are left alone too. */
        z.locked[2] = true;
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p2 = plan(c, &z);
        assert_int_equal(p2->n_actions, 0);
        z.locked[2] = false;
        model_set_str(&z.nodes[2]->allocated_to, "200-0000000001");
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p3 = plan(c, &z);
        assert_int_equal(p3->n_actions, 0);
        zk_clear(&z);
}

static void test_lowered_max_parallel_jobs_deregisters_over_slot_nodes(void **state) {
        _cleanup_(config_freep) struct config *c = load(HEAD "          - name: h1\n"
                                                              "            labels: small\n"
                                                              "            max-parallel-jobs: 4\n"
                                                              "            host-key-checking: false\n");
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        assert_int_equal(count(p0, STATIC_NODES_REGISTER), 4);
        apply_registers(&z, p0);
        config_free(c);
        c = load(HEAD "          - name: h1\n"
                      "            labels: small\n"
                      "            max-parallel-jobs: 1\n"
                      "            host-key-checking: false\n");
        node_set_state(z.nodes[2], NODE_STATE_IN_USE);
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        /* Slots 1 and 3 go; slot 2 is in use and stays until used; slot 0 is kept. */
        assert_int_equal(p->n_actions, 2);
        assert_int_equal(indexes(p, STATIC_NODES_DEREGISTER), (1u << 1) | (1u << 3));
        assert_non_null(p->warnings[0]); /* the excess nodes are reported */
        zk_clear(&z);
}

static void test_changed_labels_update_ready_nodes_only(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        config_free(c);
        c = load(HEAD "          - name: 10.0.0.1\n"
                      "            labels: [small, gpu]\n"
                      "            max-parallel-jobs: 2\n"
                      "            host-key-checking: false\n"
                      "            shell-type: sh\n"
                      "          - name: builder.example.com\n"
                      "            labels: small\n"
                      "            username: ci\n"
                      "            connection-port: 2222\n"
                      "            max-parallel-jobs: 2\n"
                      "            host-key-checking: false\n");
        node_set_state(z.nodes[1], NODE_STATE_IN_USE);
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 1);
        const struct static_nodes_action *a = &p->actions[0];
        assert_int_equal(a->kind, STATIC_NODES_UPDATE);
        assert_int_equal(a->index, 0);
        assert_string_equal(a->node->type[1], "gpu");
        /* Applying rewrites the managed attributes and keeps everything else. */
        model_set_str(&z.nodes[0]->comment, "keep me");
        static_nodes_apply_update(a, z.nodes[0]);
        assert_string_equal(z.nodes[0]->type[0], "small");
        assert_string_equal(z.nodes[0]->type[1], "gpu");
        assert_null(z.nodes[0]->type[2]);
        assert_string_equal(z.nodes[0]->comment, "keep me");
        assert_string_equal(z.nodes[0]->id, "0000000000");
        assert_int_equal(z.nodes[0]->slot, 0);
        zk_clear(&z);
}

static void test_used_and_deleted_slot_is_registered_again_in_the_same_slot(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        /* Used: still occupies its slot, nothing to do yet. */
        node_set_state(z.nodes[1], NODE_STATE_USED);
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p1 = plan(c, &z);
        assert_int_equal(p1->n_actions, 0);
        /* Being deleted: the slot is free again. */
        node_set_state(z.nodes[1], NODE_STATE_DELETING);
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p2 = plan(c, &z);
        assert_int_equal(p2->n_actions, 1);
        assert_int_equal(p2->actions[0].kind, STATIC_NODES_REGISTER);
        assert_int_equal(p2->actions[0].slot, 1);
        assert_string_equal(p2->actions[0].node->hostname, "10.0.0.1");
        /* Gone from ZooKeeper: same answer. */
        node_free(z.nodes[1]);
        z.nodes[1] = z.nodes[--z.n];
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p3 = plan(c, &z);
        assert_int_equal(p3->n_actions, 1);
        assert_int_equal(p3->actions[0].slot, 1);
        assert_string_equal(p3->actions[0].node->hostname, "10.0.0.1");
        zk_clear(&z);
}

static void test_legacy_slotless_node_fills_the_first_free_slot(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        z.nodes[0]->slot_set = false; /* written by an old Nodepool */
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 0);
        zk_clear(&z);
}

static void test_duplicate_identity_is_an_error(void **state) {
        _cleanup_(config_freep) struct config *c = load(HEAD "          - name: h1\n"
                                                              "            labels: small\n"
                                                              "          - name: h1\n"
                                                              "            labels: large\n"
                                                              "            username: other\n");
        char *err = NULL;
        assert_int_equal(static_nodes_check_identities(&c->providers[0], &err), 0);
        assert_null(err);
        /* Same name, same username, same port: the identity tuple collides. */
        model_set_str(&c->providers[0].pools[0].nodes[1].username, "zuul");
        assert_int_equal(static_nodes_check_identities(&c->providers[0], &err), -EEXIST);
        assert_non_null(strstr(err, "h1"));
        free(err);
        err = NULL;
        struct static_nodes_plan *p = NULL;
        assert_int_equal(static_nodes_plan(&c->providers[0], NULL, NULL, 0, NULL, 0, &p, &err), -EEXIST);
        assert_null(p);
        assert_non_null(err);
        free(err);
        /* A different port makes it a different host. */
        c->providers[0].pools[0].nodes[1].connection_port = 2222;
        assert_int_equal(static_nodes_check_identities(&c->providers[0], NULL), 0);
}

static const char *checked_host = HEAD "          - name: h1\n"
                                       "            labels: small\n"
                                       "            host-key: \"" KEY_ED "\"\n";

static void test_host_keys_from_config_until_scanned_then_from_the_scan(void **state) {
        _cleanup_(config_freep) struct config *c = load(checked_host);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 1);
        assert_true(p->actions[0].needs_scan);
        assert_string_equal(p->actions[0].node->host_keys[0], KEY_ED);
        apply_registers(&z, p);

        /* Scanned: configured ⊆ scanned, so the node gets every scanned key. */
        char *keys[] = { KEY_ED, KEY_RSA, NULL };
        struct static_nodes_scan sc = { .name = "h1", .username = "zuul", .port = 22, .keys = keys };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p2 = plan_scans(c, &z, &sc, 1);
        assert_int_equal(p2->n_actions, 1);
        assert_int_equal(p2->actions[0].kind, STATIC_NODES_UPDATE);
        assert_false(p2->actions[0].needs_scan);
        static_nodes_apply_update(&p2->actions[0], z.nodes[0]);
        assert_true(model_strv_equal(z.nodes[0]->host_keys, keys));

        /* A later plan without a scan does not flip the keys back to the config's. */
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p3 = plan(c, &z);
        assert_int_equal(p3->n_actions, 0);
        zk_clear(&z);
}

static void test_failed_scan_or_key_mismatch_registers_nothing_and_deregisters(void **state) {
        _cleanup_(config_freep) struct config *c = load(HEAD "          - name: h1\n"
                                                              "            labels: small\n"
                                                              "            max-parallel-jobs: 2\n"
                                                              "            host-key: \"" KEY_ED "\"\n");
        struct zk z = { 0 };
        struct static_nodes_scan sc = { .name = "h1", .username = "zuul", .port = 22, .error = -ETIMEDOUT };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan_scans(c, &z, &sc, 1);
        assert_int_equal(p->n_actions, 0);
        assert_non_null(strstr(p->warnings[0], "h1"));

        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        assert_int_equal(z.n, 2);
        char *other[] = { KEY_RSA, NULL };
        struct static_nodes_scan mismatch = { .name = "h1", .username = "zuul", .port = 22, .keys = other };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p2 = plan_scans(c, &z, &mismatch, 1);
        assert_int_equal(count(p2, STATIC_NODES_DEREGISTER), 2);
        assert_int_equal(p2->n_actions, 2);
        assert_non_null(strstr(p2->warnings[0], "mismatch"));
        zk_clear(&z);
}

static void test_non_ssh_host_has_no_keys_and_waits_for_a_port_check(void **state) {
        _cleanup_(config_freep) struct config *c = load(HEAD "          - name: win1\n"
                                                              "            labels: small\n"
                                                              "            connection-type: winrm\n"
                                                              "            host-key: \"" KEY_ED "\"\n");
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(p->n_actions, 1);
        assert_true(p->actions[0].needs_scan);
        assert_null(p->actions[0].node->host_keys[0]);
        assert_string_equal(p->actions[0].node->connection_type, "winrm");
        assert_int_equal(p->actions[0].node->connection_port, 22); /* static: 22 whatever the type */
        struct static_nodes_scan sc = { .name = "win1", .username = "zuul", .port = 22, .keys = NULL };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p2 = plan_scans(c, &z, &sc, 1);
        assert_int_equal(p2->n_actions, 1);
        assert_false(p2->actions[0].needs_scan);
        assert_null(p2->actions[0].node->host_keys[0]);
}

static void test_other_providers_nodes_are_ignored(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        for (size_t i = 0; i < z.n; i++) model_set_str(&z.nodes[i]->provider, "elsewhere");
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p = plan(c, &z);
        assert_int_equal(count(p, STATIC_NODES_REGISTER), 4);
        assert_int_equal(count(p, STATIC_NODES_DEREGISTER), 0);
        zk_clear(&z);
}

static void test_label_quota_counts_ready_unallocated_nodes_per_label(void **state) {
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        struct zk z = { 0 };
        _cleanup_(static_nodes_plan_freep) struct static_nodes_plan *p0 = plan(c, &z);
        apply_registers(&z, p0);
        /* 10.0.0.1 ×2 carries small+large, builder ×2 small. */
        model_set_str(&z.nodes[0]->allocated_to, "200-0000000001"); /* allocated: not available */
        node_set_state(z.nodes[2], NODE_STATE_IN_USE);
        struct node *foreign = node_new("0000000099");
        model_set_str(&foreign->provider, "elsewhere");
        node_set_state(foreign, NODE_STATE_READY);
        model_strv_push(&foreign->type, "small");
        z.nodes[z.n++] = foreign;

        struct static_nodes_label_count *q = NULL;
        size_t n = static_nodes_label_quota(&c->providers[0], (const struct node *const *)z.nodes, z.n, &q);
        assert_int_equal(n, 2);
        assert_string_equal(q[0].label, "small");
        assert_int_equal(static_nodes_label_quota_get(q, n, "small"), 2); /* nodes 1 and 3 */
        assert_int_equal(static_nodes_label_quota_get(q, n, "large"), 1); /* node 1 */
        assert_int_equal(static_nodes_label_quota_get(q, n, "gpu"), 0);   /* no host has it */
        free(q);

        /* Nothing ready: every configured label is there with 0, so requests wait. */
        for (size_t i = 0; i < z.n; i++) node_set_state(z.nodes[i], NODE_STATE_IN_USE);
        n = static_nodes_label_quota(&c->providers[0], (const struct node *const *)z.nodes, z.n, &q);
        assert_int_equal(n, 2);
        assert_int_equal(q[0].ready + q[1].ready, 0);
        free(q);
        zk_clear(&z);
}

static void test_action_names_and_non_static_provider(void **state) {
        assert_string_equal(static_nodes_action_to_string(STATIC_NODES_REGISTER), "register");
        assert_string_equal(static_nodes_action_to_string(STATIC_NODES_DEREGISTER), "deregister");
        assert_string_equal(static_nodes_action_to_string(STATIC_NODES_UPDATE), "update");
        assert_null(static_nodes_action_to_string(_STATIC_NODES_ACTION_MAX));
        _cleanup_(config_freep) struct config *c = load(two_hosts);
        c->providers[0].driver = CONFIG_DRIVER_OPENSTACK;
        struct static_nodes_plan *p = NULL;
        assert_int_equal(static_nodes_plan(&c->providers[0], NULL, NULL, 0, NULL, 0, &p, NULL), -EINVAL);
        assert_null(p);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_initial_registration_two_hosts_two_slots_each),
                cmocka_unit_test(test_plan_after_applying_is_empty),
                cmocka_unit_test(test_removed_host_deregisters_only_ready_unlocked_unallocated_nodes),
                cmocka_unit_test(test_lowered_max_parallel_jobs_deregisters_over_slot_nodes),
                cmocka_unit_test(test_changed_labels_update_ready_nodes_only),
                cmocka_unit_test(test_used_and_deleted_slot_is_registered_again_in_the_same_slot),
                cmocka_unit_test(test_legacy_slotless_node_fills_the_first_free_slot),
                cmocka_unit_test(test_duplicate_identity_is_an_error),
                cmocka_unit_test(test_host_keys_from_config_until_scanned_then_from_the_scan),
                cmocka_unit_test(test_failed_scan_or_key_mismatch_registers_nothing_and_deregisters),
                cmocka_unit_test(test_non_ssh_host_has_no_keys_and_waits_for_a_port_check),
                cmocka_unit_test(test_other_providers_nodes_are_ignored),
                cmocka_unit_test(test_label_quota_counts_ready_unallocated_nodes_per_label),
                cmocka_unit_test(test_action_names_and_non_static_provider),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
