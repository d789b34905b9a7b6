/* digest.h — SHA-256 hex digests from libcrypto (EVP), in the three shapes
 * the builder needs: a buffer, a file read in chunks, and a context fed
 * field by field (the stage cache keys).
 *
 * Any thread; nothing is shared. libcrypto fails a SHA-256 digest only when
 * out of memory, which aborts here as everywhere (alloc.h). */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

#include "macro.h"

#define SHA256_HEX_SIZE 65 /* 64 lowercase hex digits + NUL */

/* A SHA-256 context, started; the caller frees it with EVP_MD_CTX_free(). */
EVP_MD_CTX *digest_sha256_new(void);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
/* Feed LEN bytes of DATA (NULL when LEN is 0) to a context from digest_sha256_new(). */
void digest_update(EVP_MD_CTX *c, const void *data, size_t len);
/* Finish C and write its digest as hex to RET_HEX; C is not usable afterwards. */
void digest_final_hex(EVP_MD_CTX *c, char ret_hex[SHA256_HEX_SIZE]);

/* The digest of LEN bytes of DATA, as hex. */
void digest_sha256_hex(const void *data, size_t len, char ret_hex[SHA256_HEX_SIZE]);
/* The digest of the file at PATH, as hex (read in 1 MiB chunks: image files
 * are gigabytes). 0, or a negative errno from open/read (RET_HEX untouched). */
int digest_sha256_file_hex(const char *path, char ret_hex[SHA256_HEX_SIZE]);
