/* model.c — helpers shared by the record types: errors, strv, time, ids.
 *
 * DESIGN: kept free of jansson so the CLI's table code can use the age
 * formatter and strv helpers without pulling in record decoding. */
#include "model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "alloc.h"

int model_error_set(struct model_error *e, int r, const char *fmt, ...) {
        if (e) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(e->msg, sizeof e->msg, fmt, ap);
                va_end(ap);
        }
        return r > 0 ? -r : r;
}

size_t model_strv_length(char *const *l) {
        size_t n = 0;
        while (l && l[n]) n++;
        return n;
}

void model_strv_free(char **l) {
        for (size_t i = 0; l && l[i]; i++) free(l[i]);
        free(l);
}

char **model_strv_new(void) {
        return xnew(char *, 1);
}

char **model_strv_copy(char *const *l) {
        size_t n = model_strv_length(l);
        char **c = xnew(char *, n + 1);
        for (size_t i = 0; i < n; i++) c[i] = xstrdup(l[i]);
        return c;
}

void model_strv_push(char ***l, const char *s) {
        size_t n = model_strv_length(*l);
        *l = xrealloc(*l, (n + 2) * sizeof(char *));
        (*l)[n] = xstrdup(s);
        (*l)[n + 1] = NULL;
}

bool model_strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], s) == 0) return true;
        return false;
}

bool model_strv_equal(char *const *a, char *const *b) {
        size_t n = model_strv_length(a);
        if (n != model_strv_length(b)) return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(a[i], b[i]) != 0) return false;
        return true;
}

void model_set_str(char **field, const char *v) {
        char *c = xstrdup(v);
        free(*field);
        *field = c;
}

double model_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *model_age_format(double now, double then) {
        double dt = now - then;

        if (isnan(dt)) return xstrdup("");
        /* Keep the integer conversions below defined (~31 million years). */
        dt = fmax(-1e15, fmin(1e15, dt));

        /* Python: m, s = divmod(dt, 60); h, m = divmod(m, 60); d, h = divmod(h, 24) */
        double m = floor(dt / 60), s = dt - m * 60;
        double h = floor(m / 60);
        m -= h * 60;
        double d = floor(h / 24);
        h -= d * 24;
        /* '%02d' % float truncates toward zero. */
        return xasprintf("%02lld:%02lld:%02lld:%02lld", (long long)d, (long long)h, (long long)m, (long long)s);
}

int model_uuid4_hex(char ret[static 33]) {
        uint8_t b[16];
        size_t got = 0;

        while (got < sizeof b) {
                ssize_t n = getrandom(b + got, sizeof b - got, 0);
                if (n < 0) {
                        if (errno == EINTR) continue;
                        return negative_errno();
                }
                got += (size_t)n;
        }
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
        b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
        for (size_t i = 0; i < sizeof b; i++) snprintf(ret + 2 * i, 3, "%02x", b[i]);
        return 0;
}
