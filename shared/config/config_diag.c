/* config_diag.c — collecting and printing configuration diagnostics. */
#include "config_diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void config_diags_add(struct config_diags *d, const char *file, unsigned file_index, unsigned line,
                      unsigned column, enum config_severity sev, const char *fmt, ...) {
        if (!d) return;
        if (d->n == d->alloc) {
                d->alloc = d->alloc ? d->alloc * 2 : 16;
                d->items = xrealloc(d->items, d->alloc * sizeof *d->items);
        }
        va_list ap;
        va_start(ap, fmt);
        char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0) msg = xstrdup("(out of memory formatting message)");
        va_end(ap);
        d->items[d->n] = (struct config_diag){
                .file = xstrdup(file ? file : "<config>"),
                .line = line,
                .column = column,
                .severity = sev,
                .message = msg,
                .file_index = file_index,
                .seq = d->n,
        };
        d->n++;
}

static int diag_cmp(const void *a, const void *b) {
        const struct config_diag *x = a, *y = b;
        if (x->file_index != y->file_index) return x->file_index < y->file_index ? -1 : 1;
        if (x->line != y->line) return x->line < y->line ? -1 : 1;
        if (x->column != y->column) return x->column < y->column ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void config_diags_sort(struct config_diags *d) {
        if (d && d->n > 1) qsort(d->items, d->n, sizeof *d->items, diag_cmp);
}

size_t config_diags_count(const struct config_diags *d, enum config_severity sev) {
        size_t n = 0;
        for (size_t i = 0; d && i < d->n; i++)
                if (d->items[i].severity == sev) n++;
        return n;
}

void config_diags_print(const struct config_diags *d, FILE *f) {
        for (size_t i = 0; d && i < d->n; i++) {
                const struct config_diag *g = &d->items[i];
                const char *sev = g->severity == CONFIG_SEVERITY_ERROR ? "error" : "warning";
                if (g->line > 0)
                        fprintf(f, "%s:%u:%u: %s: %s\n", g->file, g->line, g->column, sev, g->message);
                else
                        fprintf(f, "%s: %s: %s\n", g->file, sev, g->message);
        }
}

void config_diags_clear(struct config_diags *d) {
        if (!d) return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->items[i].file);
                free(d->items[i].message);
        }
        free(d->items);
        *d = (struct config_diags){};
}
