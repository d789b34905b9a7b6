/* test_rendezvous.c — rendezvous hashing as launchers use it to split work:
 * every member agrees on the owner whatever the order it lists members in,
 * keys spread evenly, and a member leaving or joining moves only the keys it
 * loses or wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>

#include "rendezvous.h"

#define N_KEYS 3000

static const char *const three[] = {
        "host-PoolWorker.static-prov-main-0f3a",
        "host-PoolWorker.static-prov-main-77c1",
        "host-PoolWorker.static-prov-main-a9e2",
};

static const char *key(int i) {
        static char buf[32];
        snprintf(buf, sizeof buf, "200-%010d", i);
        return buf;
}

/* No member: nobody owns anything; NULL members are skipped. */
static void test_no_member(void **state) {
        assert_int_equal(rendezvous_owner(NULL, 0, "k"), -1);
        const char *const holes[] = { NULL, "a", NULL };
        assert_int_equal(rendezvous_owner(holes, 3, "k"), 1);
}

/* The owner is the same member whatever order the set is listed in. */
static void test_order_independent(void **state) {
        const char *const rev[] = { three[2], three[1], three[0] };
        for (int i = 0; i < N_KEYS; i++) {
                long a = rendezvous_owner(three, 3, key(i)), b = rendezvous_owner(rev, 3, key(i));
                assert_true(a >= 0 && b >= 0);
                assert_ptr_equal(three[a], rev[b]);
        }
}

/* Sequential request ids spread over three members within 20% of a third each. */
static void test_even_spread(void **state) {
        int count[3] = { 0 };
        for (int i = 0; i < N_KEYS; i++) count[rendezvous_owner(three, 3, key(i))]++;
        for (int m = 0; m < 3; m++) {
                assert_true(count[m] > N_KEYS / 3 * 8 / 10);
                assert_true(count[m] < N_KEYS / 3 * 12 / 10);
        }
}

/* A member leaves (a launcher died): only its keys change owner. */
static void test_leave_moves_only_its_keys(void **state) {
        const char *const two[] = { three[0], three[1] };
        int moved = 0;
        for (int i = 0; i < N_KEYS; i++) {
                long before = rendezvous_owner(three, 3, key(i)), after = rendezvous_owner(two, 2, key(i));
                if (before != 2) assert_ptr_equal(three[before], two[after]);
                else moved++;
        }
        assert_true(moved > 0);
}

/* A member joins: the keys that move all move to it. */
static void test_join_takes_only_what_it_wins(void **state) {
        const char *const four[] = { three[0], three[1], three[2], "host-PoolWorker.static-prov-main-new1" };
        int taken = 0;
        for (int i = 0; i < N_KEYS; i++) {
                long before = rendezvous_owner(three, 3, key(i)), after = rendezvous_owner(four, 4, key(i));
                if (after == 3) taken++;
                else assert_ptr_equal(three[before], four[after]);
        }
        assert_true(taken > N_KEYS / 4 * 8 / 10 && taken < N_KEYS / 4 * 12 / 10);
}

/* The separator matters: ("ab", "c") and ("a", "bc") score differently. */
static void test_member_key_boundary(void **state) {
        assert_true(rendezvous_score("ab", "c") != rendezvous_score("a", "bc"));
        assert_true(rendezvous_score("a", "k") == rendezvous_score("a", "k"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_member),
                cmocka_unit_test(test_order_independent),
                cmocka_unit_test(test_even_spread),
                cmocka_unit_test(test_leave_moves_only_its_keys),
                cmocka_unit_test(test_join_takes_only_what_it_wins),
                cmocka_unit_test(test_member_key_boundary),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
