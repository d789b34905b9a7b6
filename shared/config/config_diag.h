/* config_diag.h — the problems found in a configuration file, with positions.
 *
 * One diagnostic = FILE:LINE:COLUMN: error|warning: message (1-based line and
 * column). The loader collects all of them and sorts them into file order. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

enum config_severity {
        CONFIG_SEVERITY_ERROR,
        CONFIG_SEVERITY_WARNING,
};

struct config_diag {
        char *file;
        unsigned line;          /* 1-based; 0 = the whole file */
        unsigned column;        /* 1-based */
        enum config_severity severity;
        char *message;
        unsigned file_index;    /* 0 main file, 1 secure file: sort key */
        size_t seq;             /* insertion order: stable sort tie-break */
};

struct config_diags {
        struct config_diag *items;
        size_t n, alloc;
};

/* Append one diagnostic (strings copied). */
void config_diags_add(struct config_diags *d, const char *file, unsigned file_index, unsigned line,
                      unsigned column, enum config_severity sev, const char *fmt, ...) _printf_(7, 8);
/* Sort into file order: main file before secure file, then line, column, insertion. */
void config_diags_sort(struct config_diags *d);
size_t config_diags_count(const struct config_diags *d, enum config_severity sev);
/* Print every diagnostic as "FILE:LINE:COL: error: msg\n" (FILE: only when line is 0). */
void config_diags_print(const struct config_diags *d, FILE *f);
/* Free the contents; *d becomes empty and reusable. */
void config_diags_clear(struct config_diags *d);
