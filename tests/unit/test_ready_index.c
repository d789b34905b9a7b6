/* Unit tests for the launcher's ready-node index (poold/caches.c): the nodes
 * try_reuse() may pick are exactly those the old full scan picked — READY,
 * unallocated, unlocked, of the handler's provider and pool, carrying the
 * label, neither held nor being reused — and the index follows every cache
 * store and removal, a busy lock seen by a reuse attempt, and l->reusing. The
 * launcher struct is a bare one: only the cache maps are used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "launcher.h"
#include "model.h"

static struct node *ready_node(const char *id, const char *provider, const char *pool, const char *label) {
        struct node *n = node_new(id);
        n->state = NODE_STATE_READY;
        model_set_str(&n->provider, provider);
        model_set_str(&n->pool, pool);
        model_strv_push(&n->type, label);
        return n;
}

static void store(struct launcher *l, struct node *n, unsigned locks) { caches_node_store(l, n->id, n, locks); }

static void teardown(struct launcher *l) {
        caches_free(l);
        smap_clear(&l->held, NULL);
        smap_clear(&l->reusing, NULL);
}

/* Proves: only a READY, unallocated, unlocked node of the same provider, pool
 * and label is found; each disqualifying fact alone hides it. */
static void test_find_applies_the_reuse_rules(void **state) {
        struct launcher l = {};
        store(&l, ready_node("0000000001", "prov", "pool", "small"), 0);
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), "0000000001");
        assert_null(caches_ready_find(&l, "prov", "pool", "large", NULL));
        assert_null(caches_ready_find(&l, "prov", "other", "small", NULL));
        assert_null(caches_ready_find(&l, "other", "pool", "small", NULL));

        struct node *n = ready_node("0000000001", "prov", "pool", "small");
        model_set_str(&n->allocated_to, "100-0000000001");
        store(&l, n, 0); /* the cache sees it allocated */
        assert_null(caches_ready_find(&l, "prov", "pool", "small", NULL));

        store(&l, ready_node("0000000001", "prov", "pool", "small"), 1); /* locked */
        assert_null(caches_ready_find(&l, "prov", "pool", "small", NULL));

        n = ready_node("0000000001", "prov", "pool", "small");
        n->state = NODE_STATE_IN_USE;
        store(&l, n, 0);
        assert_null(caches_ready_find(&l, "prov", "pool", "small", NULL));

        store(&l, ready_node("0000000001", "prov", "pool", "small"), 0); /* ready again */
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), "0000000001");
        caches_node_remove(&l, "0000000001");
        assert_null(caches_ready_find(&l, "prov", "pool", "small", NULL));
        teardown(&l);
}

/* Proves: held nodes are skipped for the next candidate; a node being reused
 * (l->reusing) leaves the index and comes back when the reuse ends; a busy
 * lock seen by a reuse attempt hides it until the cache reports it again. */
static void test_held_reusing_and_busy_nodes_are_not_candidates(void **state) {
        struct launcher l = {};
        store(&l, ready_node("0000000001", "prov", "pool", "small"), 0);
        store(&l, ready_node("0000000002", "prov", "pool", "small"), 0);
        const char *first = caches_ready_find(&l, "prov", "pool", "small", NULL);
        assert_non_null(first);
        char *a = xstrdup(first);
        const char *other = strcmp(a, "0000000001") == 0 ? "0000000002" : "0000000001";

        smap_put(&l.held, a, (void *)1);
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), other);
        smap_remove(&l.held, a);

        smap_put(&l.reusing, a, (void *)1);
        caches_ready_update(&l, a);
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), other);
        caches_node_mark_locked(&l, other);
        assert_null(caches_ready_find(&l, "prov", "pool", "small", NULL));
        smap_remove(&l.reusing, a);
        caches_ready_update(&l, a);
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), a);

        store(&l, ready_node(other, "prov", "pool", "small"), 0); /* the cache: unlocked again */
        smap_put(&l.held, a, (void *)1);
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), other);
        free(a);
        teardown(&l);
}

/* Proves: a node with several labels (a static node) is found under each, and
 * leaves every one of them at once. */
static void test_node_with_several_labels(void **state) {
        struct launcher l = {};
        struct node *n = ready_node("0000000007", "static", "main", "small");
        model_strv_push(&n->type, "ubuntu");
        store(&l, n, 0);
        assert_string_equal(caches_ready_find(&l, "static", "main", "small", NULL), "0000000007");
        assert_string_equal(caches_ready_find(&l, "static", "main", "ubuntu", NULL), "0000000007");
        caches_node_mark_locked(&l, "0000000007");
        assert_null(caches_ready_find(&l, "static", "main", "small", NULL));
        assert_null(caches_ready_find(&l, "static", "main", "ubuntu", NULL));
        teardown(&l);
}

/* Proves: with an availability zone asked for, only a node in that zone is a
 * candidate (a node with no zone is not); without one, any node is, a node
 * with no zone included. */
static void test_find_in_an_availability_zone(void **state) {
        struct launcher l = {};
        struct node *n = ready_node("0000000001", "prov", "pool", "small");
        model_set_str(&n->az, "az1");
        store(&l, n, 0);
        store(&l, ready_node("0000000002", "prov", "pool", "small"), 0); /* no zone (static, libvirt) */
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", "az1"), "0000000001");
        assert_null(caches_ready_find(&l, "prov", "pool", "small", "az2"));
        assert_non_null(caches_ready_find(&l, "prov", "pool", "small", NULL));
        caches_node_remove(&l, "0000000001");
        assert_null(caches_ready_find(&l, "prov", "pool", "small", "az1"));
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "small", NULL), "0000000002");
        teardown(&l);
}

/* Proves: with many ready nodes of other labels and pools cached, a lookup
 * still finds the one candidate (the index is keyed, not scanned), and every
 * node removed leaves no candidate behind. */
static void test_many_nodes(void **state) {
        struct launcher l = {};
        char id[16];
        for (int i = 0; i < 2000; i++) {
                snprintf(id, sizeof id, "%010d", i);
                store(&l, ready_node(id, "prov", i % 2 ? "pool" : "other", i == 1999 ? "rare" : "common"), 0);
        }
        assert_string_equal(caches_ready_find(&l, "prov", "pool", "rare", NULL), "0000001999");
        assert_null(caches_ready_find(&l, "prov", "other", "rare", NULL));
        for (int i = 0; i < 2000; i++) {
                snprintf(id, sizeof id, "%010d", i);
                caches_node_remove(&l, id);
        }
        assert_null(caches_ready_find(&l, "prov", "pool", "common", NULL));
        assert_null(caches_ready_find(&l, "prov", "pool", "rare", NULL));
        teardown(&l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find_applies_the_reuse_rules),
                cmocka_unit_test(test_held_reusing_and_busy_nodes_are_not_candidates),
                cmocka_unit_test(test_node_with_several_labels),
                cmocka_unit_test(test_find_in_an_availability_zone),
                cmocka_unit_test(test_many_nodes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
