/* table.h — the rows a listing command prints, as Python's PrettyTable draws
 * them (default style, every column left-aligned, as `nodepool list` does)
 * or as JSON (a list of objects keyed by the columns' field names, as
 * Nodepool's web app serves them).
 *
 *   +----+----------+
 *   | ID | Provider |
 *   +----+----------+
 *   | 1  | local    |
 *   +----+----------+
 *
 * Each cell holds a display text and a JSON value; they may differ (the
 * "age" cell shows DD:HH:MM:SS, its JSON is the raw state_time). Widths count
 * terminal columns (UTF-8 decoded; East Asian wide characters take two,
 * combining marks and control characters none), and a cell with newlines
 * spans several lines, as in PrettyTable.
 *
 * A table is owned by one thread; nothing here is shared. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "macro.h"

struct table_column {
        const char *key;    /* JSON field name, e.g. "public_ipv4" */
        const char *header; /* text header, e.g. "Public IPv4" */
};

struct table;

/* A table with N columns (copied). Never NULL. */
struct table *table_new(const struct table_column *cols, size_t n);
void table_free(struct table *t);   /* NULL ok */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct table *, table_free);

/* Leave column COL out of the text form (it stays in the JSON form). */
void table_hide_column(struct table *t, size_t col);
/* Hide from the text form every column whose key is not in FIELDS, a
 * comma-separated list of keys (Nodepool web app's ?fields=a,b). */
void table_show_only(struct table *t, const char *fields);

/* Append an empty row (every cell "" / JSON null); the table_set_* calls
 * below fill the last row. */
void table_add_row(struct table *t);
size_t table_n_rows(const struct table *t);

/* Set cell COL of the last row: TEXT (copied; NULL = "") and JSON (a
 * reference the table takes over; NULL = null). No row yet: a no-op that
 * still drops the JSON reference. */
void table_set(struct table *t, size_t col, const char *text, json_t *json);
/* S as text and as JSON string; NULL = "" and null. */
void table_set_str(struct table *t, size_t col, const char *s);
/* A string list: text joined with ',', JSON an array. NULL = empty list. */
void table_set_strv(struct table *t, size_t col, char *const *l);
/* An integer shown in decimal, JSON a number. */
void table_set_int(struct table *t, size_t col, long long v);

/* The PrettyTable text, each line ending in '\n'. Malloc'd, caller frees. */
char *table_format_text(const struct table *t);
/* json.dumps() of the rows: "[{"id": "1", ...}, ...]" (non-ASCII escaped,
 * as Python does) plus '\n'. Malloc'd, caller frees. */
char *table_format_json(const struct table *t);
/* Write the text form (JSON when JSON is true) to F: 0 or -errno. */
int table_print(const struct table *t, bool json, FILE *f);

/* ---- rows rendered ahead: a listing kept up to date row by row ----
 *
 * A long listing whose rows rarely change (10,000 nodes) need not be
 * re-rendered whole: each row is detached once as a table_row, holding its
 * cell texts with their widths and its JSON object already dumped; a listing
 * is then a concatenation (JSON) or a padding pass (text), and the output is
 * byte for byte what table_format_text()/table_format_json() print for a
 * table of the same rows. A table_row is immutable and reference-counted
 * atomically, so rows made on one thread may be formatted on another. */
struct table_row;

/* Detach the last row of T (T loses it; a no-op returning NULL when T has no
 * row). Costs one JSON dump; the caller owns the one reference. */
struct table_row *table_row_take(struct table *t);
/* Another reference to R (returned). Any thread. */
struct table_row *table_row_ref(struct table_row *r);
/* Drop a reference (NULL ok). Any thread. */
void table_row_unref(struct table_row *r);
/* The display text of cell COL of R ("" when COL is out of range). */
const char *table_row_text(const struct table_row *r, size_t col);

/* The text form of a table with T's columns and hidden columns (T's own rows
 * are ignored) whose rows are ROWS[0..n), made with tables of T's columns.
 * When DYN_COL < T's column count, that column's text for row i is
 * DYN_TEXTS[i] instead of the row's own (a cell that changes with time, like
 * an age). Malloc'd, caller frees. Any thread, if nobody modifies T. */
char *table_format_rows_text(const struct table *t, struct table_row *const *rows, size_t n, size_t dyn_col,
                             const char *const *dyn_texts);
/* The JSON form of a table made of ROWS[0..n). Malloc'd. Any thread. */
char *table_format_rows_json(struct table_row *const *rows, size_t n);

/* Terminal columns of the UTF-8 text S[0..len) (no newline handling). */
size_t table_text_width(const char *s, size_t len);
