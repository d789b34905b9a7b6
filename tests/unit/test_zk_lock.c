/* Unit tests for the pure parts of shared/zk_lock.c: they must agree with
 * kazoo's contender regex (?:__lock__|__rlock__)(-?\d{10})$, its string
 * ordering of sequences and its predecessor choice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "zk_lock.h"

#define UUID "0123456789abcdef0123456789abcdef"

/* Proves: plain and negative sequences parse; read/write kind is reported. */
static void test_contender_seq_parses_kazoo_names(void **state) {
        bool read = true;
        const char *s = zk_lock_contender_seq(UUID "__lock__0000000003", &read);
        assert_non_null(s);
        assert_string_equal(s, "0000000003");
        assert_false(read);
        s = zk_lock_contender_seq(UUID "__rlock__0000000012", &read);
        assert_non_null(s);
        assert_string_equal(s, "0000000012");
        assert_true(read);
        /* ZooKeeper's counter overflows into negative numbers; kazoo's "-?\d{10}"
         * takes a '-' followed by ten digits ("%010d" of -2147483648). */
        s = zk_lock_contender_seq(UUID "__lock__-2147483648", NULL);
        assert_non_null(s);
        assert_string_equal(s, "-2147483648");
        /* But "%010d" of -1 is "-000000001": nine digits after the '-', which
         * kazoo's regex does not match, so neither do we (checked with Python's re). */
        assert_null(zk_lock_contender_seq(UUID "__lock__-000000001", NULL));
        assert_null(zk_lock_contender_seq("x__rlock__-123456789", NULL));
        /* The regex is searched, not anchored at the start: any prefix is fine. */
        assert_string_equal(zk_lock_contender_seq("__lock__0000000000", NULL), "0000000000");
        assert_string_equal(zk_lock_contender_seq("x__rlock__-1000000000", NULL), "-1000000000");
}

/* Proves: names that kazoo's regex rejects are not contenders. */
static void test_contender_seq_rejects_non_contenders(void **state) {
        assert_null(zk_lock_contender_seq("lock", NULL));
        assert_null(zk_lock_contender_seq("", NULL));
        assert_null(zk_lock_contender_seq(NULL, NULL));
        assert_null(zk_lock_contender_seq(UUID "__lock__000000003", NULL));   /* 9 digits */
        assert_null(zk_lock_contender_seq(UUID "__lock__00000000031", NULL)); /* 11 digits */
        assert_null(zk_lock_contender_seq(UUID "__lock__000000000x", NULL));
        assert_null(zk_lock_contender_seq(UUID "__lease__0000000003", NULL));
        assert_null(zk_lock_contender_seq(UUID "_lock__0000000003", NULL));
        assert_null(zk_lock_contender_seq(UUID "__lock__--00000001", NULL));
        assert_null(zk_lock_contender_seq("0000000003", NULL));
        assert_null(zk_lock_contender_seq(UUID "__lock__0000000003/x", NULL));
}

/* Proves: sequences compare as strings, so '-' (0x2d) sorts before digits. */
static void test_seq_compare_is_string_order(void **state) {
        assert_int_equal(zk_lock_seq_compare("0000000001", "0000000002"), -1);
        assert_int_equal(zk_lock_seq_compare("0000000010", "0000000009"), 1);
        assert_int_equal(zk_lock_seq_compare("0000000005", "0000000005"), 0);
        assert_int_equal(zk_lock_seq_compare("-2147483648", "0000000000"), -1);
        /* String order, not numeric: -2147483648 sorts after -2147483647. */
        assert_int_equal(zk_lock_seq_compare("-2147483648", "-2147483647"), 1);
}

/* Proves: the predecessor is the contender just below us, of either kind,
 * ignoring non-contender children; the lowest contender has none. */
static void test_find_predecessor(void **state) {
        char *children[] = {
                "aaaa__lock__0000000005", "junk", "bbbb__rlock__0000000002", "cccc__lock__0000000009",
                "dddd__lock__0000000001", "lock",
        };
        size_t n = ELEMENTSOF(children);
        const char *pred = (const char *)1;

        assert_int_equal(zk_lock_find_predecessor(children, n, "dddd__lock__0000000001", &pred), 0);
        assert_null(pred);
        assert_int_equal(zk_lock_find_predecessor(children, n, "aaaa__lock__0000000005", &pred), 0);
        assert_string_equal(pred, "bbbb__rlock__0000000002"); /* WriteLock: blocked by readers too */
        assert_int_equal(zk_lock_find_predecessor(children, n, "cccc__lock__0000000009", &pred), 0);
        assert_string_equal(pred, "aaaa__lock__0000000005");
        /* Our node is missing (session lost) or is not a contender at all. */
        assert_int_equal(zk_lock_find_predecessor(children, n, "eeee__lock__0000000010", &pred), -ENOENT);
        assert_int_equal(zk_lock_find_predecessor(children, n, "junk", &pred), -ENOENT);
}

/* Proves: after the counter wrapped, negative sequences come first and are
 * ordered as strings (as kazoo sorts them); short negatives are not contenders. */
static void test_find_predecessor_with_negative_sequences(void **state) {
        char *children[] = { "a__lock__2147483647", "b__lock__-2147483647", "c__lock__-2147483648",
                             "d__lock__-000000001" };
        const char *pred = NULL;
        assert_int_equal(zk_lock_find_predecessor(children, 4, "a__lock__2147483647", &pred), 0);
        assert_string_equal(pred, "c__lock__-2147483648");
        assert_int_equal(zk_lock_find_predecessor(children, 4, "c__lock__-2147483648", &pred), 0);
        assert_string_equal(pred, "b__lock__-2147483647");
        assert_int_equal(zk_lock_find_predecessor(children, 4, "b__lock__-2147483647", &pred), 0);
        assert_null(pred);
        assert_int_equal(zk_lock_find_predecessor(children, 4, "d__lock__-000000001", &pred), -ENOENT);
}

/* Proves: sorting drops non-contenders and orders by sequence string. */
static void test_sort_contenders(void **state) {
        char **v = xnew(char *, 6);
        v[0] = xstrdup("z__lock__0000000003");
        v[1] = xstrdup("lock");
        v[2] = xstrdup("y__rlock__0000000001");
        v[3] = xstrdup("x__lock__-0000000007");
        v[4] = xstrdup("w__lock__0000000002");
        size_t n = zk_lock_sort_contenders(v, 5);
        assert_int_equal(n, 4);
        assert_string_equal(v[0], "x__lock__-0000000007");
        assert_string_equal(v[1], "y__rlock__0000000001");
        assert_string_equal(v[2], "w__lock__0000000002");
        assert_string_equal(v[3], "z__lock__0000000003");
        assert_null(v[4]);
        for (size_t i = 0; i < n; i++) free(v[i]);
        free(v);
}

/* Proves: lock objects validate their path and free cleanly without I/O. */
static void test_lock_new_rejects_bad_paths(void **state) {
        struct zk *fake = (struct zk *)(uintptr_t)0x1; /* never dereferenced on these paths */
        struct zk_lock *l = NULL;
        assert_int_equal(zk_lock_new(fake, "relative", NULL, &l), -EINVAL);
        assert_int_equal(zk_lock_new(fake, "/", NULL, &l), -EINVAL);
        assert_int_equal(zk_lock_new(fake, "/a/", NULL, &l), -EINVAL);
        assert_int_equal(zk_lock_new(NULL, "/a", NULL, &l), -EINVAL);
        assert_null(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_contender_seq_parses_kazoo_names),
                cmocka_unit_test(test_contender_seq_rejects_non_contenders),
                cmocka_unit_test(test_seq_compare_is_string_order),
                cmocka_unit_test(test_find_predecessor),
                cmocka_unit_test(test_find_predecessor_with_negative_sequences),
                cmocka_unit_test(test_sort_contenders),
                cmocka_unit_test(test_lock_new_rejects_bad_paths),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
