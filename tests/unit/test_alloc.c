/* Tests for shared/base/alloc.c: the never-NULL allocation helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"

/* xstrndup must not read beyond n bytes of an unterminated buffer (ASan would
 * report it) and must stop at an embedded NUL. */
static void test_xstrndup_reads_at_most_n_bytes_of_unterminated_input(void **state) {
        char *buf = xmalloc(3);
        memcpy(buf, "abc", 3); /* no terminator */
        _cleanup_free_ char *a = xstrndup(buf, 3);
        _cleanup_free_ char *b = xstrndup(buf, 2);
        _cleanup_free_ char *c = xstrndup("x\0yz", 4);
        assert_string_equal(a, "abc");
        assert_string_equal(b, "ab");
        assert_string_equal(c, "x");
        assert_null(xstrndup(NULL, 5));
        free(buf);
}

static void test_xasprintf_formats_and_xstrdup_copies(void **state) {
        _cleanup_free_ char *s = xasprintf("%s-%05d", "np", 42);
        assert_string_equal(s, "np-00042");
        _cleanup_free_ char *d = xstrdup(s);
        assert_ptr_not_equal(d, s);
        assert_string_equal(d, s);
        assert_null(xstrdup(NULL));
}

/* Zero-sized requests still return distinct, freeable memory, never NULL. */
static void test_zero_size_allocations_are_never_null(void **state) {
        void *a = xmalloc(0), *b = xcalloc(0, 8), *c = xrealloc(NULL, 0);
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        free(a);
        free(b);
        free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_xstrndup_reads_at_most_n_bytes_of_unterminated_input),
                cmocka_unit_test(test_xasprintf_formats_and_xstrdup_copies),
                cmocka_unit_test(test_zero_size_allocations_are_never_null),
        };
        return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
