/* table.c — see table.h.
 *
 * DESIGN. Rows are kept as parallel text/JSON cells and rendered only at the
 * end, because PrettyTable sizes every column to its widest cell. Width is
 * measured in terminal columns with a small built-in wcwidth (the ranges
 * Python's wcwidth treats as wide or zero-width that occur in practice), so
 * non-ASCII comments and hold jobs line up as they do under Nodepool.
 * Detached rows (table_row_take) carry what rendering needs per row, widths
 * and the JSON text, so a listing of unchanged rows is assembled with
 * memcpy; multi-line rows take the same put_row path as a whole table. */
#include "table.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"

struct table_cell {
        char *text;
        json_t *json;
};

struct table {
        struct table_column *cols;
        bool *hidden;
        size_t n_cols;
        struct table_cell **rows;
        size_t n_rows, alloc_rows;
};

struct table *table_new(const struct table_column *cols, size_t n) {
        struct table *t = xnew(struct table, 1);
        t->cols = xnew(struct table_column, n ? n : 1);
        t->hidden = xnew(bool, n ? n : 1);
        t->n_cols = n;
        for (size_t i = 0; i < n; i++) {
                t->cols[i].key = xstrdup(cols[i].key);
                t->cols[i].header = xstrdup(cols[i].header);
        }
        return t;
}

void table_free(struct table *t) {
        if (!t) return;
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_cols; c++) {
                        free(t->rows[r][c].text);
                        if (t->rows[r][c].json) json_decref(t->rows[r][c].json);
                }
                free(t->rows[r]);
        }
        for (size_t i = 0; i < t->n_cols; i++) {
                free((char *)t->cols[i].key);
                free((char *)t->cols[i].header);
        }
        free(t->rows);
        free(t->cols);
        free(t->hidden);
        free(t);
}

void table_hide_column(struct table *t, size_t col) {
        if (col < t->n_cols) t->hidden[col] = true;
}

void table_show_only(struct table *t, const char *fields) {
        for (size_t c = 0; c < t->n_cols; c++) {
                size_t klen = strlen(t->cols[c].key);
                bool keep = false;
                for (const char *p = fields ? fields : ""; *p;) {
                        size_t n = strcspn(p, ",");
                        if (n == klen && strncmp(p, t->cols[c].key, n) == 0) keep = true;
                        p += n;
                        if (*p == ',') p++;
                }
                if (!keep) t->hidden[c] = true;
        }
}

void table_add_row(struct table *t) {
        if (t->n_rows == t->alloc_rows) {
                t->alloc_rows = t->alloc_rows ? t->alloc_rows * 2 : 16;
                t->rows = xrealloc(t->rows, t->alloc_rows * sizeof *t->rows);
        }
        t->rows[t->n_rows++] = xnew(struct table_cell, t->n_cols ? t->n_cols : 1);
}

size_t table_n_rows(const struct table *t) { return t->n_rows; }

void table_set(struct table *t, size_t col, const char *text, json_t *json) {
        if (t->n_rows == 0 || col >= t->n_cols) {
                if (json) json_decref(json);
                return;
        }
        struct table_cell *c = &t->rows[t->n_rows - 1][col];
        free(c->text);
        if (c->json) json_decref(c->json);
        c->text = xstrdup(text ? text : "");
        c->json = json;
}

/* jansson refuses invalid UTF-8; keep such a value visible as text and null in JSON. */
static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : NULL;
}

void table_set_str(struct table *t, size_t col, const char *s) { table_set(t, col, s, json_string_or_null(s)); }

void table_set_strv(struct table *t, size_t col, char *const *l) {
        size_t len = 0;
        json_t *arr = json_array();
        for (size_t i = 0; l && l[i]; i++) {
                len += strlen(l[i]) + 1;
                json_t *v = json_string(l[i]);
                if (v) json_array_append_new(arr, v);
        }
        _cleanup_free_ char *joined = xmalloc(len + 1);
        char *p = joined;
        *p = '\0';
        for (size_t i = 0; l && l[i]; i++) {
                if (i > 0) *p++ = ',';
                size_t n = strlen(l[i]);
                memcpy(p, l[i], n);
                p += n;
                *p = '\0';
        }
        table_set(t, col, joined, arr);
}

void table_set_int(struct table *t, size_t col, long long v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v);
        table_set(t, col, buf, json_integer(v));
}

/* ---------------------------------------------------------------- widths */

struct range {
        uint32_t lo, hi;
};

/* Zero-width: combining marks, zero-width spaces/joiners, variation selectors. */
static const struct range zero_width[] = {
        { 0x0300, 0x036F }, { 0x0483, 0x0489 }, { 0x0591, 0x05BD }, { 0x0610, 0x061A }, { 0x064B, 0x065F },
        { 0x0E31, 0x0E31 }, { 0x0E34, 0x0E3A }, { 0x1AB0, 0x1AFF }, { 0x1DC0, 0x1DFF }, { 0x200B, 0x200F },
        { 0x2028, 0x202E }, { 0x2060, 0x2064 }, { 0x20D0, 0x20FF }, { 0xFE00, 0xFE0F }, { 0xFE20, 0xFE2F },
        { 0xFEFF, 0xFEFF }, { 0xE0100, 0xE01EF },
};

/* East Asian Wide and Fullwidth, and emoji presentation blocks. */
static const struct range wide[] = {
        { 0x1100, 0x115F },   { 0x231A, 0x231B },   { 0x2329, 0x232A },   { 0x23E9, 0x23EC },
        { 0x25FD, 0x25FE },   { 0x2614, 0x2615 },   { 0x2648, 0x2653 },   { 0x26AA, 0x26AB },
        { 0x26BD, 0x26BE },   { 0x26C4, 0x26C5 },   { 0x26F2, 0x26F5 },   { 0x2705, 0x2705 },
        { 0x270A, 0x270B },   { 0x2728, 0x2728 },   { 0x274C, 0x274C },   { 0x2753, 0x2755 },
        { 0x2795, 0x2797 },   { 0x2B1B, 0x2B1C },   { 0x2E80, 0x303E },   { 0x3041, 0x33FF },
        { 0x3400, 0x4DBF },   { 0x4E00, 0x9FFF },   { 0xA000, 0xA4CF },   { 0xA960, 0xA97F },
        { 0xAC00, 0xD7A3 },   { 0xF900, 0xFAFF },   { 0xFE10, 0xFE19 },   { 0xFE30, 0xFE6F },
        { 0xFF00, 0xFF60 },   { 0xFFE0, 0xFFE6 },   { 0x16FE0, 0x16FE4 }, { 0x17000, 0x18CFF },
        { 0x1B000, 0x1B2FF }, { 0x1F004, 0x1F004 }, { 0x1F0CF, 0x1F0CF }, { 0x1F18E, 0x1F18E },
        { 0x1F191, 0x1F19A }, { 0x1F200, 0x1F251 }, { 0x1F300, 0x1F64F }, { 0x1F680, 0x1F6FF },
        { 0x1F7E0, 0x1F7EB }, { 0x1F90C, 0x1F9FF }, { 0x1FA70, 0x1FAFF }, { 0x20000, 0x2FFFD },
        { 0x30000, 0x3FFFD },
};

static bool in_ranges(uint32_t c, const struct range *r, size_t n) {
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (c < r[mid].lo)
                        hi = mid;
                else if (c > r[mid].hi)
                        lo = mid + 1;
                else
                        return true;
        }
        return false;
}

static int char_width(uint32_t c) {
        if (c < 0x20 || (c >= 0x7F && c < 0xA0)) return 0; /* controls: wcwidth -1, PrettyTable counts 0 */
        if (c < 0x300) return 1;
        if (in_ranges(c, zero_width, ELEMENTSOF(zero_width))) return 0;
        if (in_ranges(c, wide, ELEMENTSOF(wide))) return 2;
        return 1;
}

/* Decode one UTF-8 sequence at s (n bytes left); invalid bytes decode as
 * themselves, one at a time, so a broken string still gets a width. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *ret) {
        unsigned char b = s[0];
        size_t len;
        uint32_t c;
        if (b < 0x80) {
                *ret = b;
                return 1;
        } else if ((b & 0xE0) == 0xC0) {
                len = 2;
                c = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
                len = 3;
                c = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
                len = 4;
                c = b & 0x07;
        } else {
                *ret = b;
                return 1;
        }
        if (len > n) {
                *ret = b;
                return 1;
        }
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xC0) != 0x80) {
                        *ret = b;
                        return 1;
                }
                c = (c << 6) | (s[i] & 0x3F);
        }
        *ret = c;
        return len;
}

size_t table_text_width(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *)s;
        size_t w = 0;
        while (len > 0) {
                uint32_t c;
                size_t k = utf8_next(p, len, &c);
                w += (size_t)char_width(c);
                p += k;
                len -= k;
        }
        return w;
}

/* ---------------------------------------------------------------- text */

static size_t cell_width(const char *s, size_t *ret_lines) {
        size_t w = 0, lines = 1;
        for (;;) {
                const char *nl = strchr(s, '\n');
                size_t n = nl ? (size_t)(nl - s) : strlen(s);
                w = MAX(w, table_text_width(s, n));
                if (!nl) break;
                s = nl + 1;
                lines++;
        }
        if (ret_lines) *ret_lines = lines;
        return w;
}

/* Line I of S (0-based) as pointer+length; past the end: "". */
static const char *cell_line(const char *s, size_t i, size_t *ret_len) {
        for (; i > 0; i--) {
                const char *nl = strchr(s, '\n');
                if (!nl) {
                        *ret_len = 0;
                        return "";
                }
                s = nl + 1;
        }
        const char *nl = strchr(s, '\n');
        *ret_len = nl ? (size_t)(nl - s) : strlen(s);
        return s;
}

static void put_hrule(FILE *f, const struct table *t, const size_t *widths) {
        fputc('+', f);
        for (size_t c = 0; c < t->n_cols; c++) {
                if (t->hidden[c]) continue;
                for (size_t i = 0; i < widths[c] + 2; i++) fputc('-', f);
                fputc('+', f);
        }
        fputc('\n', f);
}

/* One logical row (header or data) of TEXTS, over as many lines as its tallest cell. */
static void put_row(FILE *f, const struct table *t, const size_t *widths, const char *const *texts) {
        size_t height = 1;
        for (size_t c = 0; c < t->n_cols; c++) {
                if (t->hidden[c]) continue;
                size_t lines;
                cell_width(texts[c], &lines);
                height = MAX(height, lines);
        }
        for (size_t line = 0; line < height; line++) {
                fputc('|', f);
                for (size_t c = 0; c < t->n_cols; c++) {
                        if (t->hidden[c]) continue;
                        size_t n;
                        const char *s = cell_line(texts[c], line, &n);
                        size_t w = table_text_width(s, n);
                        fputc(' ', f);
                        fwrite(s, 1, n, f);
                        for (size_t i = w; i < widths[c]; i++) fputc(' ', f);
                        fputs(" |", f);
                }
                fputc('\n', f);
        }
}

char *table_format_text(const struct table *t) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);
        if (!f) abort(); /* only fails on OOM, which we abort on anyway */

        _cleanup_free_ size_t *widths = xnew(size_t, t->n_cols ? t->n_cols : 1);
        _cleanup_free_ const char **texts = xnew(const char *, t->n_cols ? t->n_cols : 1);
        for (size_t c = 0; c < t->n_cols; c++) {
                widths[c] = cell_width(t->cols[c].header, NULL);
                for (size_t r = 0; r < t->n_rows; r++)
                        widths[c] = MAX(widths[c], cell_width(t->rows[r][c].text ? t->rows[r][c].text : "", NULL));
        }

        /* PrettyTable: top rule, header, rule, rows, bottom rule — the
         * bottom rule follows even an empty body. */
        put_hrule(f, t, widths);
        for (size_t c = 0; c < t->n_cols; c++) texts[c] = t->cols[c].header;
        put_row(f, t, widths, texts);
        put_hrule(f, t, widths);
        for (size_t r = 0; r < t->n_rows; r++) {
                for (size_t c = 0; c < t->n_cols; c++) texts[c] = t->rows[r][c].text ? t->rows[r][c].text : "";
                put_row(f, t, widths, texts);
        }
        put_hrule(f, t, widths);
        if (fclose(f) != 0) abort();
        return buf;
}

/* ---------------------------------------------------------------- JSON */

/* jansson writes \u00FC, Python \u00fc: same JSON, but match byte for byte. */
static void lower_unicode_escapes(char *s) {
        for (char *p = s; *p; p++) {
                if (*p != '\\') continue;
                p++;
                if (*p == 'u')
                        for (int i = 1; i <= 4 && p[i]; i++) p[i] = (char)tolower((unsigned char)p[i]);
        }
}

/* No JSON_COMPACT: ", " and ": " separators, as Python's json.dumps. */
#define TABLE_JSON_FLAGS (JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17))

static json_t *row_object(const struct table *t, const struct table_cell *cells) {
        json_t *obj = json_object();
        if (!obj) abort();
        for (size_t c = 0; c < t->n_cols; c++) {
                json_t *v = cells[c].json;
                json_object_set_new(obj, t->cols[c].key, v ? json_incref(v) : json_null());
        }
        return obj;
}

char *table_format_json(const struct table *t) {
        json_t *arr = json_array();
        if (!arr) abort();
        for (size_t r = 0; r < t->n_rows; r++) json_array_append_new(arr, row_object(t, t->rows[r]));
        char *s = json_dumps(arr, TABLE_JSON_FLAGS);
        json_decref(arr);
        if (!s) abort();
        lower_unicode_escapes(s);
        char *out = xasprintf("%s\n", s);
        free(s);
        return out;
}

int table_print(const struct table *t, bool json, FILE *f) {
        _cleanup_free_ char *s = json ? table_format_json(t) : table_format_text(t);
        if (fputs(s, f) < 0 || fflush(f) != 0) return negative_errno();
        return 0;
}

/* ---------------------------------------------------------------- detached rows */

struct row_cell {
        char *text;
        size_t len, width;      /* bytes; terminal columns (widest line) */
};

struct table_row {
        _Atomic unsigned refs;
        bool multiline;         /* some cell spans several lines: the general path draws it */
        char *json;             /* the row's object, dumped */
        size_t json_len;
        size_t n_cols;
        struct row_cell cells[];
};

struct table_row *table_row_take(struct table *t) {
        if (t->n_rows == 0) return NULL;
        struct table_cell *cells = t->rows[--t->n_rows];
        struct table_row *r = xmalloc(sizeof *r + (t->n_cols ? t->n_cols : 1) * sizeof r->cells[0]);
        atomic_init(&r->refs, 1);
        r->multiline = false;
        r->n_cols = t->n_cols;
        json_t *obj = row_object(t, cells);
        r->json = json_dumps(obj, TABLE_JSON_FLAGS);
        json_decref(obj);
        if (!r->json) abort();
        lower_unicode_escapes(r->json);
        r->json_len = strlen(r->json);
        for (size_t c = 0; c < t->n_cols; c++) {
                size_t lines;
                r->cells[c].text = cells[c].text ? cells[c].text : xstrdup("");
                r->cells[c].len = strlen(r->cells[c].text);
                r->cells[c].width = cell_width(r->cells[c].text, &lines);
                if (lines > 1) r->multiline = true;
                if (cells[c].json) json_decref(cells[c].json);
        }
        free(cells);
        return r;
}

struct table_row *table_row_ref(struct table_row *r) {
        if (r) atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
        return r;
}

void table_row_unref(struct table_row *r) {
        if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
        for (size_t c = 0; c < r->n_cols; c++) free(r->cells[c].text);
        free(r->json);
        free(r);
}

const char *table_row_text(const struct table_row *r, size_t col) {
        return r && col < r->n_cols ? r->cells[col].text : "";
}

/* A growing output buffer (our own output, so unbounded; OOM aborts). */
struct obuf {
        char *p;
        size_t len, cap;
};

static void ob_reserve(struct obuf *b, size_t more) {
        if (b->len + more + 1 <= b->cap) return;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + more + 1) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
}

static void ob_put(struct obuf *b, const char *s, size_t n) {
        ob_reserve(b, n);
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

static void ob_fill(struct obuf *b, char ch, size_t n) {
        ob_reserve(b, n);
        memset(b->p + b->len, ch, n);
        b->len += n;
}

static char *ob_finish(struct obuf *b) {
        ob_reserve(b, 0);
        b->p[b->len] = '\0';
        return b->p;
}

/* put_row()'s output into B: one logical row over as many lines as its tallest cell. */
static void ob_row(struct obuf *b, const struct table *t, const size_t *widths, const char *const *texts) {
        size_t height = 1;
        for (size_t c = 0; c < t->n_cols; c++) {
                if (t->hidden[c]) continue;
                size_t lines;
                cell_width(texts[c], &lines);
                height = MAX(height, lines);
        }
        for (size_t line = 0; line < height; line++) {
                ob_put(b, "|", 1);
                for (size_t c = 0; c < t->n_cols; c++) {
                        if (t->hidden[c]) continue;
                        size_t n;
                        const char *s = cell_line(texts[c], line, &n);
                        size_t w = table_text_width(s, n);
                        ob_put(b, " ", 1);
                        ob_put(b, s, n);
                        if (w < widths[c]) ob_fill(b, ' ', widths[c] - w);
                        ob_put(b, " |", 2);
                }
                ob_put(b, "\n", 1);
        }
}

char *table_format_rows_text(const struct table *t, struct table_row *const *rows, size_t n, size_t dyn_col,
                             const char *const *dyn_texts) {
        bool dyn = dyn_col < t->n_cols && dyn_texts;
        _cleanup_free_ size_t *widths = xnew(size_t, t->n_cols ? t->n_cols : 1);
        _cleanup_free_ size_t *dyn_widths = dyn ? xnew(size_t, n ? n : 1) : NULL;
        _cleanup_free_ const char **texts = xnew(const char *, t->n_cols ? t->n_cols : 1);
        for (size_t c = 0; c < t->n_cols; c++) widths[c] = cell_width(t->cols[c].header, NULL);
        for (size_t i = 0; i < n; i++)
                for (size_t c = 0; c < t->n_cols && c < rows[i]->n_cols; c++)
                        if (!(dyn && c == dyn_col)) widths[c] = MAX(widths[c], rows[i]->cells[c].width);
        bool dyn_multiline = false;
        for (size_t i = 0; dyn && i < n; i++) {
                size_t lines;
                dyn_widths[i] = cell_width(dyn_texts[i] ? dyn_texts[i] : "", &lines);
                if (lines > 1) dyn_multiline = true;
                widths[dyn_col] = MAX(widths[dyn_col], dyn_widths[i]);
        }

        /* The horizontal rule, drawn once. */
        struct obuf rule = {};
        ob_put(&rule, "+", 1);
        for (size_t c = 0; c < t->n_cols; c++) {
                if (t->hidden[c]) continue;
                ob_fill(&rule, '-', widths[c] + 2);
                ob_put(&rule, "+", 1);
        }
        ob_put(&rule, "\n", 1);

        struct obuf b = {};
        ob_reserve(&b, rule.len * (n + 4));
        ob_put(&b, rule.p, rule.len);
        for (size_t c = 0; c < t->n_cols; c++) texts[c] = t->cols[c].header;
        ob_row(&b, t, widths, texts);
        ob_put(&b, rule.p, rule.len);
        for (size_t i = 0; i < n; i++) {
                const struct table_row *r = rows[i];
                if (r->multiline || dyn_multiline || r->n_cols < t->n_cols) {
                        for (size_t c = 0; c < t->n_cols; c++)
                                texts[c] = dyn && c == dyn_col ? (dyn_texts[i] ? dyn_texts[i] : "")
                                                               : table_row_text(r, c);
                        ob_row(&b, t, widths, texts);
                        continue;
                }
                /* One line per row: the cells' widths are known, no decoding. */
                ob_put(&b, "|", 1);
                for (size_t c = 0; c < t->n_cols; c++) {
                        if (t->hidden[c]) continue;
                        const char *s = r->cells[c].text;
                        size_t len = r->cells[c].len, w = r->cells[c].width;
                        if (dyn && c == dyn_col) {
                                s = dyn_texts[i] ? dyn_texts[i] : "";
                                len = strlen(s);
                                w = dyn_widths[i];
                        }
                        ob_reserve(&b, len + widths[c] - w + 3);
                        b.p[b.len++] = ' ';
                        memcpy(b.p + b.len, s, len);
                        b.len += len;
                        memset(b.p + b.len, ' ', widths[c] - w);
                        b.len += widths[c] - w;
                        b.p[b.len++] = ' ';
                        b.p[b.len++] = '|';
                }
                ob_put(&b, "\n", 1);
        }
        ob_put(&b, rule.p, rule.len);
        free(rule.p);
        return ob_finish(&b);
}

char *table_format_rows_json(struct table_row *const *rows, size_t n) {
        struct obuf b = {};
        size_t total = 3;
        for (size_t i = 0; i < n; i++) total += rows[i]->json_len + 2;
        ob_reserve(&b, total);
        ob_put(&b, "[", 1);
        for (size_t i = 0; i < n; i++) {
                if (i > 0) ob_put(&b, ", ", 2);
                ob_put(&b, rows[i]->json, rows[i]->json_len);
        }
        ob_put(&b, "]\n", 2);
        return ob_finish(&b);
}
