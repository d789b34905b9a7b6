/* redact.c — credentials out of logged and published text (see redact.h).
 *
 * DESIGN: two passes over the text. The first replaces the known secrets,
 * longest first (a token may contain a short password), including the forms
 * a JSON encoder gives them (a password with a quote or a non-ASCII letter
 * is echoed escaped). The second walks the words: a word that names a
 * credential and is followed by ':' or '=' has its value replaced, whatever
 * the value is, so a secret we were never told about (another user's, an
 * old token) is caught as well. The output grows by at most a few bytes per
 * replacement, so it is bounded by a small multiple of the input. */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "dbuf.h"
#include "redact.h"

#define MARK_LEN (sizeof REDACT_MARK - 1)

/* Words that name a credential (oslo.utils' mask_password uses the same idea). */
static const char *const key_words[] = { "password", "passwd", "secret", "token" };

static void put(struct dbuf *b, const char *s, size_t n) {
        if (dbuf_add(b, s, n) < 0) abort(); /* no cap is set: only on overflow of size_t */
}

/* S as the inside of a JSON string, encoded with FLAGS; NULL when S is not UTF-8. */
static char *json_escaped(const char *s, size_t flags) {
        json_t *j = json_string(s);
        if (!j) return NULL;
        char *d = json_dumps(j, JSON_ENCODE_ANY | flags);
        json_decref(j);
        if (!d) return NULL;
        size_t n = strlen(d);
        char *inner = xstrndup(d + 1, n >= 2 ? n - 2 : 0);
        free(d);
        return inner;
}

/* S with the hex digits of its \uXXXX escapes in lower case (Python writes
 * them so, jansson in upper case). */
static char *lower_u_escapes(const char *s) {
        if (!s) return NULL;
        char *d = xstrdup(s);
        for (char *p = d; *p; p++)
                if (p[0] == '\\' && p[1] == 'u') {
                        for (int i = 2; i < 6 && p[i]; i++) p[i] = (char)tolower((unsigned char)p[i]);
                        p++;
                } else if (p[0] == '\\' && p[1]) {
                        p++; /* an escaped backslash is not the start of an escape */
                }
        return d;
}

struct needle {
        char *s;
        size_t n;
};

static int longest_first(const void *a, const void *b) {
        size_t x = ((const struct needle *)a)->n, y = ((const struct needle *)b)->n;
        return x < y ? 1 : x > y ? -1 : 0;
}

static void add_needle(struct needle *v, size_t *n, char *s) {
        if (!s || !*s) {
                free(s);
                return;
        }
        for (size_t i = 0; i < *n; i++)
                if (strcmp(v[i].s, s) == 0) {
                        free(s);
                        return;
                }
        v[(*n)++] = (struct needle){ .s = s, .n = strlen(s) };
}

static char *replace_secrets(const char *text, const char *const *secrets) {
        size_t n_secrets = 0, n = 0;
        while (secrets && secrets[n_secrets]) n_secrets++;
        struct needle *v = xnew(struct needle, 4 * n_secrets + 1);
        for (size_t i = 0; i < n_secrets; i++) {
                add_needle(v, &n, xstrdup(secrets[i]));
                add_needle(v, &n, json_escaped(secrets[i], 0));
                char *ascii = json_escaped(secrets[i], JSON_ENSURE_ASCII);
                add_needle(v, &n, lower_u_escapes(ascii));
                add_needle(v, &n, ascii);
        }
        qsort(v, n, sizeof *v, longest_first);
        struct dbuf b = DBUF_INIT(SIZE_MAX);
        for (const char *p = text; *p;) {
                size_t k = 0;
                while (k < n && strncmp(p, v[k].s, v[k].n) != 0) k++;
                if (k < n) {
                        put(&b, REDACT_MARK, MARK_LEN);
                        p += v[k].n;
                } else {
                        put(&b, p++, 1);
                }
        }
        for (size_t i = 0; i < n; i++) {
                explicit_bzero(v[i].s, v[i].n);
                free(v[i].s);
        }
        free(v);
        return dbuf_take(&b, NULL);
}

static bool word_char(char c) {
        return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* W[0..N) names a credential: contains a key word (ANYWHERE: a quoted key) or ends with one. */
static bool names_credential(const char *w, size_t n, bool anywhere) {
        for (size_t i = 0; i < ELEMENTSOF(key_words); i++) {
                size_t k = strlen(key_words[i]);
                if (n < k) continue;
                if (strncasecmp(w + n - k, key_words[i], k) == 0) return true;
                for (size_t at = 0; anywhere && at + k < n; at++)
                        if (strncasecmp(w + at, key_words[i], k) == 0) return true;
        }
        return false;
}

/* The value starting at T[I]: put the mark in its place; returns where the text goes on. */
static size_t redact_value(struct dbuf *b, const char *t, size_t n, size_t i) {
        if (i >= n || t[i] == '{' || t[i] == '[') return i; /* the keys inside are looked at in turn */
        bool esc = t[i] == '\\' && i + 1 < n && (t[i + 1] == '"' || t[i + 1] == '\'');
        char q = esc ? t[i + 1] : (t[i] == '"' || t[i] == '\'') ? t[i] : 0;
        if (q) {
                /* A quoted value, or one quoted with escaped quotes (JSON inside a JSON string). */
                size_t open = esc ? 2 : 1, j = i + open;
                while (j < n) {
                        if (t[j] == '\\' && j + 1 < n && t[j + 1] == q && esc) break;
                        if (t[j] == '\\' && !esc) {
                                j += 2;
                                continue;
                        }
                        if (t[j] == q && !esc) break;
                        j++;
                }
                put(b, t + i, open);
                put(b, REDACT_MARK, MARK_LEN);
                if (j >= n) return n; /* cut short: the rest was the value */
                put(b, t + j, open);
                return j + open;
        }
        size_t j = i;
        while (j < n && !isspace((unsigned char)t[j]) && !strchr(",;&}])\"'<>", t[j])) j++;
        if (j > i) put(b, REDACT_MARK, MARK_LEN);
        return j;
}

static char *redact_keys(const char *t) {
        size_t n = strlen(t), i = 0;
        struct dbuf b = DBUF_INIT(SIZE_MAX);
        while (i < n) {
                if (!word_char(t[i]) || (i > 0 && word_char(t[i - 1]))) {
                        put(&b, t + i++, 1);
                        continue;
                }
                size_t s = i;
                while (i < n && word_char(t[i])) i++;
                put(&b, t + s, i - s);
                /* "key", 'key' or \"key\": the quote that opened it closes it. */
                char q = s > 0 && (t[s - 1] == '"' || t[s - 1] == '\'') ? t[s - 1] : 0;
                size_t j = i;
                bool quoted = false;
                if (q && j < n && t[j] == q) {
                        quoted = true;
                        j++;
                } else if (q && j + 1 < n && t[j] == '\\' && t[j + 1] == q) {
                        quoted = true;
                        j += 2;
                }
                if (!names_credential(t + s, i - s, quoted)) continue;
                if (quoted)
                        while (j < n && (t[j] == ' ' || t[j] == '\t')) j++;
                if (j >= n || (t[j] != ':' && t[j] != '=')) continue;
                j++;
                while (j < n && (t[j] == ' ' || t[j] == '\t')) j++;
                put(&b, t + i, j - i);
                i = redact_value(&b, t, n, j);
        }
        return dbuf_take(&b, NULL);
}

char *redact_text(const char *text, const char *const *secrets) {
        if (!text) return NULL;
        char *plain = replace_secrets(text, secrets);
        char *out = redact_keys(plain);
        free(plain);
        return out;
}

void redact_msg(char **msg, const char *const *secrets) {
        if (!msg || !*msg) return;
        char *r = redact_text(*msg, secrets);
        explicit_bzero(*msg, strlen(*msg)); /* it may have held a secret */
        free(*msg);
        *msg = r;
}
