/* Unit tests for shared/zk/zk_lock.c and shared/zk/zk_release.c. The pure parts must
 * agree with kazoo's contender regex (?:__lock__|__rlock__)(-?\d{10})$, its
 * string ordering of sequences and its predecessor choice. The release paths
 * run against the scripted, in-memory ZooKeeper of scripted_zk.c (shared with
 * test_zk_update.c): calls answered one at a time in order as the server would,
 * the connection dropped, restored or the session expired between two answers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "scripted_zk.h"
#include "zk_lock.h"
#include "zk_release.h"

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

/* ---------------------------------------------------------------- releases (scripted server) */

#define LOCK_DIR "/nodepool/nodes/0000000001/lock"

static void on_locked(struct zk_lock *l, int result, void *ud) { *(int *)ud = result; }

/* A held lock on LOCK_DIR (the server answered everything). */
static struct zk_lock *take_lock(void) {
        struct zk_lock *l = NULL;
        int result = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        assert_int_equal(zk_lock_try_async(l, on_locked, &result), 0);
        fake_drain();
        assert_int_equal(result, 1);
        assert_true(zk_lock_is_held(l));
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        return l;
}

/* Proves (issue 13): a release whose delete is lost with the connection is not
 * forgotten — nothing is sent while down, and after the reconnect the delete goes
 * out again and the contender is gone (before, it stayed, held by our live session). */
static void test_release_lost_with_the_connection_is_sent_again_after_reconnect(void **state) {
        fake_reset();
        struct zk_lock *l = take_lock();
        zk_lock_release_async(l);
        assert_false(zk_lock_is_held(l));
        fake_disconnect();              /* before the delete is answered */
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 1);
        unsigned sent = fsent;
        fake_drain();
        assert_int_equal(fsent, sent); /* nothing is retried while down */
        fake_reconnect();
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 0);
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
        zk_lock_free(l);
        fake_drain();
        assert_int_equal(fq_head, fq_tail); /* freeing a released lock sends nothing more */
}

/* Proves: a release that survives several connection losses is still sent after
 * each reconnect, and a delete answered "no such node" (the first try did land,
 * only its answer was lost) counts as done. */
static void test_release_retried_until_confirmed_and_enoent_is_done(void **state) {
        fake_reset();
        struct zk_lock *l = take_lock();
        zk_lock_free(l);                /* free releases too */
        fake_disconnect();
        fake_drain();
        fake_reconnect();
        fake_step();                    /* CONNECTED: the delete is sent again */
        fake_disconnect();              /* and lost again */
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        fake_reconnect();
        fake_step();                    /* CONNECTED: sent a third time */
        assert_true(fake_step_ex(true)); /* the server deletes it, the answer is lost */
        assert_int_equal(contenders_in(LOCK_DIR), 0);
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 1);
        fake_disconnect();
        fake_drain();
        fake_reconnect();
        fake_drain();                   /* sent again: -ENOENT, which is success */
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
}

/* Proves: once the session has expired the release is dropped (the server
 * removed the ephemeral contender itself) and nothing is sent in the new one. */
static void test_release_dropped_when_its_session_expired(void **state) {
        fake_reset();
        struct zk_lock *l = take_lock();
        zk_lock_release_async(l);
        fake_expire();
        fake_drain();
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
        unsigned sent = fsent;
        fake_reconnect();
        fake_drain();
        assert_int_equal(fsent, sent);
        zk_lock_free(l);
        fake_drain();
        assert_int_equal(fsent, sent);
}

/* Proves (issue 13): a lock attempt whose create reached the server but whose
 * answer was lost leaves no contender behind: the attempt fails, and freeing the
 * lock object looks for our uuid prefix after the reconnect and deletes what the
 * lost create made (before, that contender held the lock for the session's life). */
static void test_lost_create_answer_leaves_no_contender(void **state) {
        fake_reset();
        struct zk_lock *l = NULL;
        int result = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        assert_int_equal(zk_lock_try_async(l, on_locked, &result), 0);
        assert_true(fake_step_ex(true)); /* the create lands; its answer is lost */
        fake_disconnect();
        fake_drain();                   /* the retries fail at once while down */
        assert_true(result < 0);
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        zk_lock_free(l);
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 1); /* down: nothing sent yet */
        fake_reconnect();
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 0);
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
}

/* Proves: a lost create that never reached the server costs one listing and
 * nothing else (no contender of someone else is touched). */
static void test_prefix_release_touches_only_our_contender(void **state) {
        fake_reset();
        char buf[200];
        snprintf(buf, sizeof buf, "%s/%s%010u", LOCK_DIR, "ffffffffffffffffffffffffffffffff__lock__", fseq++);
        fnode_put(buf, ""); /* someone else's contender */
        struct zk_lock *l = NULL;
        int result = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        assert_int_equal(zk_lock_try_async(l, on_locked, &result), 0);
        fake_disconnect();              /* the create never reaches the server */
        fake_drain();
        assert_true(result < 0);
        zk_lock_free(l);
        fake_reconnect();
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        assert_non_null(fnode_find(buf));
        assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
}

/* Proves (issue 14): told the lock directory is fresh, the attempt makes it and
 * its contender in one multi request and nothing else (no listing): the
 * contender, numbered 0000000000 (the directory's first child), holds the lock. */
static void test_first_contender_ever_holds_without_a_listing(void **state) {
        fake_reset();
        struct zk_lock *l = NULL;
        int result = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        zk_lock_set_fresh(l);
        assert_int_equal(zk_lock_try_async(l, on_locked, &result), 0);
        fake_drain();
        assert_int_equal(result, 1);
        assert_true(zk_lock_is_held(l));
        assert_int_equal(fsent, 1);     /* the multi only */
        assert_non_null(fnode_find(LOCK_DIR));
        assert_string_equal(zk_lock_contender_seq(zk_lock_node(l), NULL), "0000000000");
        zk_lock_free(l);
        fake_drain();
        assert_int_equal(contenders_in(LOCK_DIR), 0);
}

/* Proves (issue 14): told the directory is fresh when it is not (it exists and
 * someone else's contender holds the lock), the multi makes nothing; the
 * attempt creates its contender, lists the directory and does not take a lock
 * someone else holds. */
static void test_fresh_lock_behind_another_contender_lists_and_is_busy(void **state) {
        fake_reset();
        char buf[200];
        fnode_put(LOCK_DIR, "");
        snprintf(buf, sizeof buf, "%s/%s%010u", LOCK_DIR, "ffffffffffffffffffffffffffffffff__lock__", fseq++);
        fnode_put(buf, ""); /* someone else's contender, the holder */
        struct zk_lock *l = NULL;
        int result = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        zk_lock_set_fresh(l);
        assert_int_equal(zk_lock_try_async(l, on_locked, &result), 0);
        fake_drain();
        assert_int_equal(result, 0);
        assert_false(zk_lock_is_held(l));
        assert_int_equal(contenders_in(LOCK_DIR), 1);
        assert_non_null(fnode_find(buf));
        assert_int_equal(fsent, 4);     /* the multi (EEXIST), create, listing, delete of ours */
        zk_lock_free(l);
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
                cmocka_unit_test_teardown(test_release_lost_with_the_connection_is_sent_again_after_reconnect,
                                          fake_teardown),
                cmocka_unit_test_teardown(test_release_retried_until_confirmed_and_enoent_is_done, fake_teardown),
                cmocka_unit_test_teardown(test_release_dropped_when_its_session_expired, fake_teardown),
                cmocka_unit_test_teardown(test_lost_create_answer_leaves_no_contender, fake_teardown),
                cmocka_unit_test_teardown(test_prefix_release_touches_only_our_contender, fake_teardown),
                cmocka_unit_test_teardown(test_first_contender_ever_holds_without_a_listing, fake_teardown),
                cmocka_unit_test_teardown(test_fresh_lock_behind_another_contender_lists_and_is_busy,
                                          fake_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
