#include "dbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

void dbuf_init(struct dbuf *b, size_t max) { *b = DBUF_INIT(max); }

static void dbuf_reserve(struct dbuf *b, size_t need) {
        if (need + 1 <= b->alloc) return;
        size_t a = b->alloc ? b->alloc : 64;
        while (a < need + 1) a = a > SIZE_MAX / 2 ? need + 1 : a * 2;
        /* max may be SIZE_MAX ("no cap"): max + 1 would wrap to 0. */
        if (b->max < SIZE_MAX && a > b->max + 1) a = b->max + 1;
        b->buf = xrealloc(b->buf, a);
        b->alloc = a;
}

int dbuf_add(struct dbuf *b, const void *data, size_t len) {
        if (len > b->max || b->len > b->max - len) return -E2BIG;
        dbuf_reserve(b, b->len + len);
        if (len) memcpy(b->buf + b->len, data, len);
        b->len += len;
        b->buf[b->len] = '\0';
        return 0;
}

int dbuf_adds(struct dbuf *b, const char *s) { return dbuf_add(b, s, strlen(s)); }

int dbuf_addf(struct dbuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0) return -EINVAL;
        if ((size_t)n > b->max || b->len > b->max - (size_t)n) return -E2BIG;
        dbuf_reserve(b, b->len + (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void dbuf_reset(struct dbuf *b) {
        b->len = 0;
        if (b->buf) b->buf[0] = '\0';
}

void dbuf_free(struct dbuf *b) {
        free(b->buf);
        b->buf = NULL;
        b->len = b->alloc = 0;
}

const char *dbuf_str(const struct dbuf *b) { return b->buf ? b->buf : ""; }

char *dbuf_take(struct dbuf *b, size_t *ret_len) {
        char *p = b->buf ? b->buf : xstrdup("");
        if (ret_len) *ret_len = b->len;
        b->buf = NULL;
        b->len = b->alloc = 0;
        return p;
}

int dbuf_read_file(struct dbuf *b, const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) return negative_errno();
        char chunk[8192];
        int r = 0;
        for (;;) {
                size_t k = fread(chunk, 1, sizeof chunk, f);
                if (k > 0 && (r = dbuf_add(b, chunk, k)) < 0) break;
                if (k < sizeof chunk) {
                        if (ferror(f)) r = -EIO;
                        break;
                }
        }
        fclose(f);
        return r;
}
