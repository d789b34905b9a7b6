/* test_sha256.c — SHA-256 against the FIPS 180-4 / NIST example vectors,
 * and incremental feeding equal to one-shot hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "sha256.h"

/* FIPS 180-4 example: "abc" (one block). */
static void test_sha256_abc(void **state) {
        char hex[SHA256_HEX_SIZE];
        sha256_hex("abc", 3, hex);
        assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* The empty message (padding-only block). */
static void test_sha256_empty(void **state) {
        char hex[SHA256_HEX_SIZE];
        sha256_hex("", 0, hex);
        assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* The 448-bit message: padding spills into a second block. */
static void test_sha256_448bit(void **state) {
        static const char m[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        char hex[SHA256_HEX_SIZE];
        sha256_hex(m, strlen(m), hex);
        assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* The 896-bit message (two full blocks of input). */
static void test_sha256_896bit(void **state) {
        static const char m[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                                "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
        char hex[SHA256_HEX_SIZE];
        sha256_hex(m, strlen(m), hex);
        assert_string_equal(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

/* One million 'a', fed in uneven chunks: exercises the partial-block paths
 * and the 64-bit length. */
static void test_sha256_million_a(void **state) {
        char buf[997];
        struct sha256_ctx ctx;
        char hex[SHA256_HEX_SIZE];
        size_t left = 1000000;

        memset(buf, 'a', sizeof(buf));
        sha256_init(&ctx);
        for (size_t step = 1; left > 0; step = step % (sizeof(buf) - 37) + 37) {
                size_t n = step < left ? step : left;
                sha256_update(&ctx, buf, n);
                left -= n;
        }
        sha256_final_hex(&ctx, hex);
        assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Byte-at-a-time feeding gives the same digest as one call (block boundaries
 * at every possible offset around 55/56/64). */
static void test_sha256_incremental_equals_oneshot(void **state) {
        uint8_t data[200];
        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t)(i * 7 + 3);
        for (size_t len = 0; len <= sizeof(data); len++) {
                char a[SHA256_HEX_SIZE], b[SHA256_HEX_SIZE];
                struct sha256_ctx ctx;
                sha256_hex(data, len, a);
                sha256_init(&ctx);
                for (size_t i = 0; i < len; i++)
                        sha256_update(&ctx, data + i, 1);
                sha256_final_hex(&ctx, b);
                assert_string_equal(a, b);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_abc),
                cmocka_unit_test(test_sha256_empty),
                cmocka_unit_test(test_sha256_448bit),
                cmocka_unit_test(test_sha256_896bit),
                cmocka_unit_test(test_sha256_million_a),
                cmocka_unit_test(test_sha256_incremental_equals_oneshot),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
