/* test_digest.c — builder/digest.c: libcrypto's SHA-256 gives the FIPS 180-4
 * example digests as lowercase hex through every entry point (a buffer, a
 * context fed in odd-sized chunks, a file), and file errors are negative errno. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "digest.h"

#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define THREE_MILLION_A "2a152c894398719c0570f83fac34ac03a0f6e8e474b995c2403aa5434f7b9dd4" /* by sha256sum */

static void test_buffer_known_vectors(void **state) {
        char hex[SHA256_HEX_SIZE];
        digest_sha256_hex("", 0, hex);
        assert_string_equal(hex, EMPTY);
        digest_sha256_hex(NULL, 0, hex);
        assert_string_equal(hex, EMPTY);
        digest_sha256_hex("abc", 3, hex);
        assert_string_equal(hex, ABC);
}

/* A million 'a' fed in chunks of 1, 2, 3, ... 999 bytes (odd sizes that
 * straddle every 64-byte block boundary) equals the one-shot digest. */
static void test_context_fed_in_odd_chunks(void **state) {
        const size_t total = 1000000;
        _cleanup_free_ char *a = xmalloc(total);
        memset(a, 'a', total);
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = digest_sha256_new();
        size_t off = 0;
        for (size_t step = 1; off < total; step = step % 999 + 1) {
                size_t n = MIN(step, total - off);
                digest_update(c, a + off, n);
                off += n;
        }
        digest_update(c, NULL, 0);
        char hex[SHA256_HEX_SIZE];
        digest_final_hex(c, hex);
        assert_string_equal(hex, MILLION_A);
        digest_sha256_hex(a, total, hex);
        assert_string_equal(hex, MILLION_A);
}

/* An empty file, a 1 MB file (one read) and a 3 MB one (three 1 MiB reads,
 * the last one short); a missing file is -ENOENT and leaves the output alone. */
static void test_file(void **state) {
        char path[] = "/tmp/test_digestXXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        char hex[SHA256_HEX_SIZE];
        assert_int_equal(digest_sha256_file_hex(path, hex), 0);
        assert_string_equal(hex, EMPTY);

        _cleanup_free_ char *a = xmalloc(1000000);
        memset(a, 'a', 1000000);
        assert_int_equal(write(fd, a, 1000000), 1000000);
        assert_int_equal(digest_sha256_file_hex(path, hex), 0);
        assert_string_equal(hex, MILLION_A);
        assert_int_equal(write(fd, a, 1000000), 1000000);
        assert_int_equal(write(fd, a, 1000000), 1000000);
        assert_int_equal(close(fd), 0);
        assert_int_equal(digest_sha256_file_hex(path, hex), 0);
        assert_string_equal(hex, THREE_MILLION_A);
        assert_int_equal(unlink(path), 0);

        strcpy(hex, "untouched");
        assert_int_equal(digest_sha256_file_hex(path, hex), -ENOENT);
        assert_string_equal(hex, "untouched");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buffer_known_vectors),
                cmocka_unit_test(test_context_fed_in_odd_chunks),
                cmocka_unit_test(test_file),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
