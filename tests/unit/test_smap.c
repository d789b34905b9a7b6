/* test_smap.c — shared/base/smap.c, the one string map: insert, replace,
 * remove, NULL values told from absence, growth through many keys with every
 * key still found, removal of the visited entry during iteration, the key
 * list, and clear (values freed under ASan, the map reusable after). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "smap.h"

#define MANY 100000

static void test_put_get_replace_remove(void **state) {
        struct smap m = {};
        int a, b;
        assert_null(smap_get(&m, "x")); /* an empty map has no buckets yet */
        assert_false(smap_contains(&m, "x"));
        assert_null(smap_remove(&m, "x"));
        assert_null(smap_put(&m, "x", &a));
        assert_ptr_equal(smap_get(&m, "x"), &a);
        assert_ptr_equal(smap_put(&m, "x", &b), &a); /* replace returns the old value */
        assert_ptr_equal(smap_get(&m, "x"), &b);
        assert_int_equal(m.n, 1);
        assert_null(smap_put(&m, "", &a)); /* the empty string is a key like any other */
        assert_ptr_equal(smap_get(&m, ""), &a);
        assert_null(smap_get(&m, "xx"));
        assert_null(smap_get(&m, "X"));

        /* NULL is a value: present, though smap_get cannot tell */
        assert_null(smap_put(&m, "set-member", NULL));
        assert_true(smap_contains(&m, "set-member"));
        assert_null(smap_get(&m, "set-member"));
        assert_int_equal(m.n, 3);

        /* the key is copied */
        char key[] = "copied";
        smap_put(&m, key, &a);
        key[0] = 'C';
        assert_ptr_equal(smap_get(&m, "copied"), &a);
        assert_null(smap_get(&m, key));

        assert_ptr_equal(smap_remove(&m, "x"), &b);
        assert_false(smap_contains(&m, "x"));
        assert_null(smap_remove(&m, "x"));
        assert_int_equal(m.n, 3);
        smap_clear(&m, NULL);
        assert_int_equal(m.n, 0);
        assert_null(m.buckets);
}

/* 100,000 keys (the table doubles many times): every key maps to its own
 * value; after removing every other key the rest are all still there. */
static void test_many_keys_and_growth(void **state) {
        struct smap m = {};
        char k[32];
        for (uintptr_t i = 0; i < MANY; i++) {
                snprintf(k, sizeof k, "node-%07zu", (size_t)i);
                assert_null(smap_put(&m, k, (void *)(i + 1)));
        }
        assert_int_equal(m.n, MANY);
        assert_true(m.n_buckets >= MANY); /* load factor at most 1 */
        for (uintptr_t i = 0; i < MANY; i++) {
                snprintf(k, sizeof k, "node-%07zu", (size_t)i);
                assert_ptr_equal(smap_get(&m, k), (void *)(i + 1));
        }
        for (uintptr_t i = 0; i < MANY; i += 2) {
                snprintf(k, sizeof k, "node-%07zu", (size_t)i);
                assert_ptr_equal(smap_remove(&m, k), (void *)(i + 1));
        }
        assert_int_equal(m.n, MANY / 2);
        for (uintptr_t i = 0; i < MANY; i++) {
                snprintf(k, sizeof k, "node-%07zu", (size_t)i);
                assert_int_equal(smap_contains(&m, k), i % 2 == 1);
        }
        size_t n;
        _cleanup_free_ const char **keys = smap_keys(&m, &n);
        assert_int_equal(n, MANY / 2);
        assert_null(keys[n]);
        for (size_t i = 0; i < n; i++) {
                unsigned long v = strtoul(keys[i] + 5, NULL, 10);
                assert_ptr_equal(smap_get(&m, keys[i]), (void *)(uintptr_t)(v + 1));
        }
        smap_clear(&m, NULL);
}

struct visit {
        struct smap *m;
        size_t seen, removed;
};

/* Removes the entry it is given when its value is odd. */
static void remove_odd_fn(const char *key, void *value, void *ud) {
        struct visit *v = ud;
        v->seen++;
        if ((uintptr_t)value % 2) {
                assert_ptr_equal(smap_remove(v->m, key), value);
                v->removed++;
        }
}

/* Each entry is visited once even when the visit removes it; removing them
 * all leaves an empty map that takes new keys. */
static void test_remove_current_during_foreach(void **state) {
        struct smap m = {};
        char k[32];
        for (uintptr_t i = 1; i <= 1000; i++) {
                snprintf(k, sizeof k, "k%zu", (size_t)i);
                smap_put(&m, k, (void *)i);
        }
        struct visit v = { .m = &m };
        smap_foreach(&m, remove_odd_fn, &v);
        assert_int_equal(v.seen, 1000);
        assert_int_equal(v.removed, 500);
        assert_int_equal(m.n, 500);
        assert_true(smap_contains(&m, "k2"));
        assert_false(smap_contains(&m, "k1"));

        /* now every value left is even: make them odd and remove all */
        for (uintptr_t i = 2; i <= 1000; i += 2) {
                snprintf(k, sizeof k, "k%zu", (size_t)i);
                smap_put(&m, k, (void *)(i + 1));
        }
        v = (struct visit){ .m = &m };
        smap_foreach(&m, remove_odd_fn, &v);
        assert_int_equal(v.seen, 500);
        assert_int_equal(m.n, 0);
        smap_put(&m, "again", &v);
        assert_ptr_equal(smap_get(&m, "again"), &v);
        smap_clear(&m, NULL);
}

/* clear frees every value with FREE_VALUE (ASan reports a leak otherwise)
 * and leaves the map empty and usable. */
static void test_clear_frees_values_and_map_is_reusable(void **state) {
        struct smap m = {};
        char k[32];
        for (int i = 0; i < 200; i++) {
                snprintf(k, sizeof k, "v%d", i);
                smap_put(&m, k, xstrdup(k));
        }
        smap_clear(&m, free);
        assert_int_equal(m.n, 0);
        assert_false(smap_contains(&m, "v1"));
        smap_put(&m, "v1", xstrdup("one"));
        assert_string_equal(smap_get(&m, "v1"), "one");
        smap_clear(&m, free);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_put_get_replace_remove),
                cmocka_unit_test(test_many_keys_and_growth),
                cmocka_unit_test(test_remove_current_during_foreach),
                cmocka_unit_test(test_clear_frees_values_and_map_is_reusable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
