/* test_dbuf.c — the bounded buffer's cap is exact and failures leave content unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "dbuf.h"

static void test_add_up_to_exactly_max_succeeds_one_more_byte_fails_unchanged(void **state) {
        struct dbuf b = DBUF_INIT(8);
        assert_int_equal(dbuf_add(&b, "abcde", 5), 0);
        assert_int_equal(dbuf_add(&b, "fgh", 3), 0); /* len == max exactly */
        assert_int_equal(b.len, 8);
        assert_string_equal(dbuf_str(&b), "abcdefgh");
        assert_int_equal(dbuf_add(&b, "i", 1), -E2BIG);
        assert_int_equal(b.len, 8);
        assert_string_equal(dbuf_str(&b), "abcdefgh"); /* unchanged, still terminated */
        assert_int_equal(dbuf_add(&b, "", 0), 0);     /* adding nothing at the cap is fine */
        assert_true(b.alloc <= b.max + 1);             /* never allocates past the cap */
        dbuf_free(&b);
}

static void test_add_larger_than_max_at_once_fails_on_empty_and_partial_buffer(void **state) {
        struct dbuf b = DBUF_INIT(4);
        assert_int_equal(dbuf_add(&b, "12345", 5), -E2BIG);
        assert_int_equal(b.len, 0);
        assert_string_equal(dbuf_str(&b), "");
        assert_int_equal(dbuf_add(&b, "12", 2), 0);
        assert_int_equal(dbuf_add(&b, "345", 3), -E2BIG);
        assert_string_equal(dbuf_str(&b), "12");
        /* A length that would wrap size_t arithmetic is refused too. */
        assert_int_equal(dbuf_add(&b, "x", SIZE_MAX), -E2BIG);
        assert_string_equal(dbuf_str(&b), "12");
        dbuf_free(&b);
}

/* max = SIZE_MAX means "no cap"; growing must not wrap max + 1 to 0. */
static void test_uncapped_buffer_grows_without_overflow(void **state) {
        struct dbuf b = DBUF_INIT(SIZE_MAX);
        char chunk[1000];
        memset(chunk, 'x', sizeof chunk);
        for (int i = 0; i < 100; i++) assert_int_equal(dbuf_add(&b, chunk, sizeof chunk), 0);
        assert_int_equal(b.len, 100000);
        assert_int_equal(dbuf_str(&b)[99999], 'x');
        assert_int_equal(dbuf_str(&b)[100000], '\0');
        dbuf_free(&b);
}

/* dbuf_read_file appends a whole file, stops at the cap with -E2BIG, and
 * reports a missing file as -ENOENT. */
static void test_read_file_appends_content_and_respects_cap(void **state) {
        char path[] = "/tmp/poold-dbuf-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        char data[20000];
        for (size_t i = 0; i < sizeof data; i++) data[i] = (char)('a' + i % 26);
        assert_int_equal(write(fd, data, sizeof data), (ssize_t)sizeof data);
        close(fd);

        struct dbuf b = DBUF_INIT(sizeof data);
        assert_int_equal(dbuf_add(&b, "", 0), 0);
        assert_int_equal(dbuf_read_file(&b, path), 0);
        assert_int_equal(b.len, sizeof data);
        assert_memory_equal(b.buf, data, sizeof data);
        dbuf_free(&b);

        struct dbuf small = DBUF_INIT(sizeof data - 1);
        assert_int_equal(dbuf_read_file(&small, path), -E2BIG);
        assert_true(small.len < sizeof data);
        dbuf_free(&small);

        unlink(path);
        struct dbuf none = DBUF_INIT(10);
        assert_int_equal(dbuf_read_file(&none, path), -ENOENT);
        dbuf_free(&none);
}

static void test_zero_cap_accepts_only_nothing(void **state) {
        struct dbuf b = DBUF_INIT(0);
        assert_int_equal(dbuf_add(&b, "", 0), 0);
        assert_int_equal(dbuf_add(&b, "a", 1), -E2BIG);
        assert_int_equal(dbuf_addf(&b, "%s", "a"), -E2BIG);
        assert_int_equal(b.len, 0);
        assert_string_equal(dbuf_str(&b), "");
        dbuf_free(&b);
}

static void test_addf_exact_boundary_and_unchanged_on_overflow(void **state) {
        struct dbuf b;
        dbuf_init(&b, 10);
        assert_int_equal(dbuf_addf(&b, "%s-%d", "abc", 42), 0); /* 6 bytes */
        assert_int_equal(dbuf_addf(&b, "%04d", 7), 0);           /* 10 == max */
        assert_string_equal(dbuf_str(&b), "abc-420007");
        assert_int_equal(dbuf_addf(&b, "%c", 'z'), -E2BIG);
        assert_int_equal(b.len, 10);
        assert_string_equal(dbuf_str(&b), "abc-420007");
        dbuf_reset(&b);
        assert_int_equal(dbuf_addf(&b, "%s", "0123456789A"), -E2BIG); /* 11 > 10 on empty */
        assert_int_equal(b.len, 0);
        assert_string_equal(dbuf_str(&b), "");
        dbuf_free(&b);
}

static void test_adds_reset_and_free_keep_cap_and_termination(void **state) {
        struct dbuf b = DBUF_INIT(32);
        assert_string_equal(dbuf_str(&b), ""); /* never NULL, even before any add */
        assert_int_equal(dbuf_adds(&b, "hello"), 0);
        size_t alloc = b.alloc;
        dbuf_reset(&b);
        assert_int_equal(b.len, 0);
        assert_string_equal(dbuf_str(&b), "");
        assert_int_equal(b.alloc, alloc); /* reset keeps the allocation */
        assert_int_equal(dbuf_adds(&b, "again"), 0);
        assert_string_equal(dbuf_str(&b), "again");
        dbuf_free(&b);
        assert_null(b.buf);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.max, 32); /* free keeps the cap for reuse */
        assert_int_equal(dbuf_adds(&b, "reuse"), 0);
        assert_string_equal(dbuf_str(&b), "reuse");
        dbuf_free(&b);
}

static void test_binary_content_with_nul_bytes_is_kept_by_length(void **state) {
        struct dbuf b = DBUF_INIT(16);
        assert_int_equal(dbuf_add(&b, "a\0b\0c", 5), 0);
        assert_int_equal(b.len, 5);
        assert_memory_equal(b.buf, "a\0b\0c", 6); /* plus the terminator */
        dbuf_free(&b);
}

static void test_take_hands_over_content_and_empties_buffer(void **state) {
        struct dbuf b = DBUF_INIT(64);
        assert_int_equal(dbuf_adds(&b, "payload"), 0);
        size_t len = 0;
        char *p = dbuf_take(&b, &len);
        assert_string_equal(p, "payload");
        assert_int_equal(len, 7);
        assert_null(b.buf);
        assert_int_equal(b.len, 0);
        assert_string_equal(dbuf_str(&b), "");
        free(p);

        /* Taking from an empty buffer still gives a freeable "". */
        len = 99;
        p = dbuf_take(&b, &len);
        assert_non_null(p);
        assert_string_equal(p, "");
        assert_int_equal(len, 0);
        free(p);
        p = dbuf_take(&b, NULL); /* ret_len is optional */
        assert_string_equal(p, "");
        free(p);

        /* The buffer stays usable, with its cap. */
        assert_int_equal(dbuf_adds(&b, "x"), 0);
        assert_int_equal(b.max, 64);
        dbuf_free(&b);
}

static void test_growth_across_many_small_adds_keeps_all_bytes(void **state) {
        struct dbuf b = DBUF_INIT(100000);
        for (int i = 0; i < 10000; i++) assert_int_equal(dbuf_addf(&b, "%d,", i % 10), 0);
        assert_int_equal(b.len, 20000);
        for (size_t i = 0; i < b.len; i += 2) {
                assert_int_equal(b.buf[i], '0' + (int)((i / 2) % 10));
                assert_int_equal(b.buf[i + 1], ',');
        }
        assert_int_equal(b.buf[b.len], '\0');
        dbuf_free(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_add_up_to_exactly_max_succeeds_one_more_byte_fails_unchanged),
                cmocka_unit_test(test_add_larger_than_max_at_once_fails_on_empty_and_partial_buffer),
                cmocka_unit_test(test_zero_cap_accepts_only_nothing),
                cmocka_unit_test(test_uncapped_buffer_grows_without_overflow),
                cmocka_unit_test(test_read_file_appends_content_and_respects_cap),
                cmocka_unit_test(test_addf_exact_boundary_and_unchanged_on_overflow),
                cmocka_unit_test(test_adds_reset_and_free_keep_cap_and_termination),
                cmocka_unit_test(test_binary_content_with_nul_bytes_is_kept_by_length),
                cmocka_unit_test(test_take_hands_over_content_and_empties_buffer),
                cmocka_unit_test(test_growth_across_many_small_adds_keeps_all_bytes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
