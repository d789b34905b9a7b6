/* digest.c — see digest.h. */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "alloc.h"

#define CHUNK (1 << 20)

EVP_MD_CTX *digest_sha256_new(void) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) abort();
        return c;
}

void digest_update(EVP_MD_CTX *c, const void *data, size_t len) {
        if (len > 0 && EVP_DigestUpdate(c, data, len) != 1) abort();
}

static void to_hex(const unsigned char *md, unsigned len, char ret_hex[SHA256_HEX_SIZE]) {
        static const char digits[] = "0123456789abcdef";
        if (len * 2 + 1 != SHA256_HEX_SIZE) abort();
        for (unsigned i = 0; i < len; i++) {
                ret_hex[2 * i] = digits[md[i] >> 4];
                ret_hex[2 * i + 1] = digits[md[i] & 15];
        }
        ret_hex[2 * len] = '\0';
}

void digest_final_hex(EVP_MD_CTX *c, char ret_hex[SHA256_HEX_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        if (EVP_DigestFinal_ex(c, md, &len) != 1) abort();
        to_hex(md, len, ret_hex);
}

void digest_sha256_hex(const void *data, size_t len, char ret_hex[SHA256_HEX_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned md_len = 0;
        if (EVP_Digest(len ? data : "", len, md, &md_len, EVP_sha256(), NULL) != 1) abort();
        to_hex(md, md_len, ret_hex);
}

int digest_sha256_file_hex(const char *path, char ret_hex[SHA256_HEX_SIZE]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) return -errno;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = digest_sha256_new();
        _cleanup_free_ char *buf = xmalloc(CHUNK);
        for (;;) {
                ssize_t k = read(fd, buf, CHUNK);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0) return -errno;
                if (k == 0) break;
                digest_update(c, buf, (size_t)k);
        }
        digest_final_hex(c, ret_hex);
        return 0;
}
