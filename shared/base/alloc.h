/* alloc.h — allocation that never returns NULL.
 *
 * OOM policy, decided once: the daemons abort on allocation failure (the
 * service manager restarts them), so call sites never check for NULL. */
#pragma once

#include <stddef.h>

#include "macro.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);          /* xstrdup(NULL) == NULL */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

#define xnew(type, n) ((type *)xcalloc((n), sizeof(type)))
