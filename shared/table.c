/* table.c — see table.h.
 *
 * DESIGN. Rows are kept as parallel text/JSON cells and rendered only at the
 * end, because PrettyTable sizes every column to its widest cell. Width is
 * measured in terminal columns with a small built-in wcwidth (the ranges
 * Python's wcwidth treats as wide or zero-width that occur in practice), so
 * non-ASCII comments and hold jobs line up as they do under Nodepool. */
#include "table.h"

#include <ctype.h>
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

char *table_format_json(const struct table *t) {
        json_t *arr = json_array();
        if (!arr) abort();
        for (size_t r = 0; r < t->n_rows; r++) {
                json_t *obj = json_object();
                if (!obj) abort();
                for (size_t c = 0; c < t->n_cols; c++) {
                        json_t *v = t->rows[r][c].json;
                        json_object_set_new(obj, t->cols[c].key, v ? json_incref(v) : json_null());
                }
                json_array_append_new(arr, obj);
        }
        /* No JSON_COMPACT: ", " and ": " separators, as Python's json.dumps. */
        char *s = json_dumps(arr, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        json_decref(arr);
        if (!s) abort();
        /* jansson writes \u00FC, Python \u00fc: same JSON, but match byte for byte. */
        for (char *p = s; *p; p++) {
                if (*p != '\\') continue;
                p++;
                if (*p == 'u')
                        for (int i = 1; i <= 4 && p[i]; i++) p[i] = (char)tolower((unsigned char)p[i]);
        }
        char *out = xasprintf("%s\n", s);
        free(s);
        return out;
}

int table_print(const struct table *t, bool json, FILE *f) {
        _cleanup_free_ char *s = json ? table_format_json(t) : table_format_text(t);
        if (fputs(s, f) < 0 || fflush(f) != 0) return negative_errno();
        return 0;
}
