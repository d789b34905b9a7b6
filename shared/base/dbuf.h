/* dbuf.h — a growable byte buffer with a hard size cap.
 *
 * Anything a remote party controls (cloud API bodies, ZooKeeper payloads,
 * HTTP requests, child output) goes through a dbuf with a cap, so a hostile
 * or broken peer costs at most that many bytes. The content is always
 * NUL-terminated (the terminator is not counted in len). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

struct dbuf {
        char *buf;
        size_t len;
        size_t alloc;
        size_t max;   /* cap on len; adding past it fails with -E2BIG */
};

#define DBUF_INIT(cap) ((struct dbuf){ .max = (cap) })

void dbuf_init(struct dbuf *b, size_t max);
/* Append; -E2BIG (and the buffer unchanged) if len would exceed max. */
int dbuf_add(struct dbuf *b, const void *data, size_t len) _warn_unused_result_;
int dbuf_adds(struct dbuf *b, const char *s) _warn_unused_result_;
int dbuf_addf(struct dbuf *b, const char *fmt, ...) _printf_(2, 3) _warn_unused_result_;
void dbuf_reset(struct dbuf *b);          /* len = 0, keeps the allocation */
void dbuf_free(struct dbuf *b);           /* frees and resets; keeps max */
const char *dbuf_str(const struct dbuf *b); /* "" when empty, never NULL */
/* Append the whole content of the file at PATH; -E2BIG past max (the buffer
 * then holds a prefix), -errno if it cannot be opened or read. */
int dbuf_read_file(struct dbuf *b, const char *path) _warn_unused_result_;
/* Hand the NUL-terminated content to the caller (who frees it); buffer becomes empty. */
char *dbuf_take(struct dbuf *b, size_t *ret_len);
