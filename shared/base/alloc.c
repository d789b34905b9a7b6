#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _noreturn_ void oom(size_t n) {
        /* No allocation here: write(2) straight to stderr, then abort. */
        char msg[96];
        int len = snprintf(msg, sizeof msg, "fatal: out of memory allocating %zu bytes\n", n);
        if (len > 0 && write(STDERR_FILENO, msg, (size_t)len) < 0) { /* nothing more to do */ }
        abort();
}

void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p) oom(n);
        return p;
}

void *xcalloc(size_t nmemb, size_t size) {
        void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
        if (!p) oom(nmemb * size);
        return p;
}

void *xrealloc(void *p, size_t n) {
        void *q = realloc(p, n ? n : 1);
        if (!q) oom(n);
        return q;
}

char *xstrdup(const char *s) {
        if (!s) return NULL;
        char *p = strdup(s);
        if (!p) oom(strlen(s) + 1);
        return p;
}

char *xstrndup(const char *s, size_t n) {
        if (!s) return NULL;
        /* memchr, not strndup: s may be an unterminated buffer of exactly n bytes. */
        const char *nul = memchr(s, '\0', n);
        size_t len = nul ? (size_t)(nul - s) : n;
        char *p = xmalloc(len + 1);
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *p = NULL;
        va_start(ap, fmt);
        int r = vasprintf(&p, fmt, ap);
        va_end(ap);
        if (r < 0) oom(0);
        return p;
}
