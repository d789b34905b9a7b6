/* sha256.h — SHA-256 (FIPS 180-4), small and dependency-free.
 *
 * Written when the programs linked no crypto library (OpenSSL came later,
 * with the ZooKeeper TLS client); the builder's stage cache keys use it.
 * Any thread may use its own context; nothing is shared. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE 65 /* 64 hex digits + NUL */

struct sha256_ctx {
        uint32_t state[8];
        uint64_t bytes;     /* message length so far */
        uint8_t block[64];
        size_t block_len;
};

/* Start a new digest in ctx (no allocation). */
void sha256_init(struct sha256_ctx *ctx);
/* Feed len bytes of data (data may be NULL when len is 0). */
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* Finish: write the 32-byte digest to ret. ctx must be re-initialised before reuse. */
void sha256_final(struct sha256_ctx *ctx, uint8_t ret[SHA256_DIGEST_SIZE]);
/* Finish and write the digest as 64 lowercase hex digits plus NUL to ret_hex. */
void sha256_final_hex(struct sha256_ctx *ctx, char ret_hex[SHA256_HEX_SIZE]);
/* One-shot digest of a buffer, as lowercase hex. */
void sha256_hex(const void *data, size_t len, char ret_hex[SHA256_HEX_SIZE]);
