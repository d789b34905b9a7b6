/* metrics.c — Prometheus registry (see metrics.h).
 *
 * DESIGN. Families in an array, series in a per-family array found by their
 * rendered label string ({k="v",...}), which is both the lookup key and the
 * output text. The registry holds at most a few hundred series (states ×
 * providers × labels), so linear search beats the bookkeeping of a hash. */
#include "metrics.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct series {
        char *labels;           /* "" or "{k=\"v\",...}" */
        double value;           /* counter, gauge; histogram sum */
        unsigned long long count; /* histogram */
        unsigned long long *bucket_counts; /* histogram: cumulative on output, per bucket here */
};

struct family {
        char *name, *help;
        enum metrics_kind kind;
        double *buckets;
        size_t n_buckets;
        struct series *series;
        size_t n_series;
};

struct metrics {
        struct family *fams;
        size_t n_fams;
};

struct metrics *metrics_new(void) { return xnew(struct metrics, 1); }

void metrics_free(struct metrics *m) {
        if (!m) return;
        for (size_t i = 0; i < m->n_fams; i++) {
                struct family *f = &m->fams[i];
                for (size_t j = 0; j < f->n_series; j++) {
                        free(f->series[j].labels);
                        free(f->series[j].bucket_counts);
                }
                free(f->series);
                free(f->name);
                free(f->help);
                free(f->buckets);
        }
        free(m->fams);
        free(m);
}

static bool name_valid(const char *s, bool label) {
        if (!s || !*s) return false;
        for (const char *p = s; *p; p++) {
                bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (!label && *p == ':');
                bool digit = *p >= '0' && *p <= '9';
                if (!alpha && !(digit && p != s)) return false;
        }
        return true;
}

static struct family *find(const struct metrics *m, const char *name) {
        for (size_t i = 0; i < m->n_fams; i++)
                if (strcmp(m->fams[i].name, name) == 0) return &m->fams[i];
        return NULL;
}

int metrics_declare(struct metrics *m, const char *name, enum metrics_kind kind, const char *help,
                    const double *buckets, size_t n_buckets) {
        if (!name_valid(name, false) || kind < 0 || kind >= _METRICS_KIND_MAX) return -EINVAL;
        if (kind == METRICS_HISTOGRAM) {
                if (n_buckets == 0 || !buckets) return -EINVAL;
                for (size_t i = 1; i < n_buckets; i++)
                        if (!(buckets[i] > buckets[i - 1])) return -EINVAL;
        }
        if (find(m, name)) return -EEXIST;
        m->fams = xrealloc(m->fams, (m->n_fams + 1) * sizeof *m->fams);
        struct family *f = &m->fams[m->n_fams++];
        *f = (struct family){ .name = xstrdup(name), .help = xstrdup(help ? help : ""), .kind = kind };
        if (kind == METRICS_HISTOGRAM) {
                f->buckets = xnew(double, n_buckets);
                memcpy(f->buckets, buckets, n_buckets * sizeof *buckets);
                f->n_buckets = n_buckets;
        }
        return 0;
}

/* Label values: backslash, double quote and newline escaped (exposition format). */
static void add_escaped(FILE *f, const char *s, bool help) {
        for (const char *p = s ? s : ""; *p; p++) {
                if (*p == '\\') fputs("\\\\", f);
                else if (*p == '\n') fputs("\\n", f);
                else if (*p == '"' && !help) fputs("\\\"", f);
                else fputc(*p, f);
        }
}

/* An in-memory FILE: the registry's own output, never remote input, so unbounded. */
static FILE *mem_open(char **buf, size_t *len) {
        FILE *f = open_memstream(buf, len);
        if (!f) abort(); /* only fails on OOM: the xmalloc policy */
        return f;
}

static char *mem_close(FILE *f, char **buf) {
        if (fclose(f) != 0 || !*buf) abort();
        return *buf;
}

static char *labels_string(const char *const *labels, int *ret_r) {
        *ret_r = 0;
        if (!labels || !labels[0]) return xstrdup("");
        for (size_t i = 0; labels[i]; i += 2)
                if (!labels[i + 1] || !name_valid(labels[i], true)) {
                        *ret_r = -EINVAL;
                        return NULL;
                }
        char *buf = NULL;
        size_t len = 0;
        FILE *f = mem_open(&buf, &len);
        fputc('{', f);
        for (size_t i = 0; labels[i]; i += 2) {
                fprintf(f, "%s%s=\"", i ? "," : "", labels[i]);
                add_escaped(f, labels[i + 1], false);
                fputc('"', f);
        }
        fputc('}', f);
        return mem_close(f, &buf);
}

static int get_series(struct metrics *m, const char *name, enum metrics_kind kind, const char *const *labels,
                      bool create, struct series **ret) {
        struct family *f = find(m, name);
        if (!f) return -ENOENT;
        if (f->kind != kind) return -EINVAL;
        int r;
        _cleanup_free_ char *ls = labels_string(labels, &r);
        if (r < 0) return r;
        for (size_t i = 0; i < f->n_series; i++)
                if (strcmp(f->series[i].labels, ls) == 0) {
                        *ret = &f->series[i];
                        return 0;
                }
        if (!create) return -ENOENT;
        f->series = xrealloc(f->series, (f->n_series + 1) * sizeof *f->series);
        struct series *s = &f->series[f->n_series++];
        *s = (struct series){ .labels = TAKE_PTR(ls) };
        if (kind == METRICS_HISTOGRAM) s->bucket_counts = xnew(unsigned long long, f->n_buckets);
        *ret = s;
        return 0;
}

int metrics_add(struct metrics *m, const char *name, const char *const *labels, double v) {
        if (!(v >= 0)) return -EINVAL;
        struct series *s;
        int r = get_series(m, name, METRICS_COUNTER, labels, true, &s);
        if (r < 0) return r;
        s->value += v;
        return 0;
}

int metrics_set(struct metrics *m, const char *name, const char *const *labels, double v) {
        struct series *s;
        int r = get_series(m, name, METRICS_GAUGE, labels, true, &s);
        if (r < 0) return r;
        s->value = v;
        return 0;
}

int metrics_set_counter(struct metrics *m, const char *name, const char *const *labels, double v) {
        struct series *s;
        int r = get_series(m, name, METRICS_COUNTER, labels, true, &s);
        if (r < 0) return r;
        if (v >= s->value) s->value = v; /* a counter never goes back */
        return 0;
}

int metrics_observe(struct metrics *m, const char *name, const char *const *labels, double v) {
        struct series *s;
        int r = get_series(m, name, METRICS_HISTOGRAM, labels, true, &s);
        if (r < 0) return r;
        struct family *f = find(m, name);
        for (size_t i = 0; i < f->n_buckets; i++)
                if (v <= f->buckets[i]) {
                        s->bucket_counts[i]++;
                        break;
                }
        s->count++;
        s->value += v;
        return 0;
}

int metrics_zero(struct metrics *m, const char *name) {
        struct family *f = find(m, name);
        if (!f) return -ENOENT;
        if (f->kind != METRICS_GAUGE) return -EINVAL;
        for (size_t i = 0; i < f->n_series; i++) f->series[i].value = 0;
        return 0;
}

int metrics_get(struct metrics *m, const char *name, const char *const *labels, double *ret) {
        struct family *f = find(m, name);
        if (!f) return -ENOENT;
        struct series *s;
        int r = get_series(m, name, f->kind, labels, false, &s);
        if (r < 0) return r;
        *ret = f->kind == METRICS_HISTOGRAM ? (double)s->count : s->value;
        return 0;
}

/* The shortest of %.15g/%.17g that reads back as V (0.1 stays "0.1");
 * NaN/±Inf as Prometheus spells them. */
static void fmt_double(char buf[static 64], double v) {
        if (isnan(v)) snprintf(buf, 64, "NaN");
        else if (isinf(v)) snprintf(buf, 64, v > 0 ? "+Inf" : "-Inf");
        else {
                snprintf(buf, 64, "%.15g", v);
                if (strtod(buf, NULL) != v) snprintf(buf, 64, "%.17g", v);
        }
}

static void add_value(FILE *f, double v) {
        char buf[64];
        fmt_double(buf, v);
        fputs(buf, f);
}

/* The series' label string with one more pair (le="...") for a histogram bucket. */
static void add_labels_le(FILE *f, const char *labels, const char *le) {
        size_t n = strlen(labels);
        if (n == 0) {
                fprintf(f, "{le=\"%s\"}", le);
                return;
        }
        fprintf(f, "%.*s,le=\"%s\"}", (int)(n - 1), labels, le);
}

static const char *kind_name(enum metrics_kind k) {
        return k == METRICS_COUNTER ? "counter" : k == METRICS_GAUGE ? "gauge" : "histogram";
}

char *metrics_render(const struct metrics *m) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = mem_open(&buf, &len);
        for (size_t i = 0; i < m->n_fams; i++) {
                const struct family *fam = &m->fams[i];
                fprintf(f, "# HELP %s ", fam->name);
                add_escaped(f, fam->help, true);
                fprintf(f, "\n# TYPE %s %s\n", fam->name, kind_name(fam->kind));
                for (size_t j = 0; j < fam->n_series; j++) {
                        const struct series *s = &fam->series[j];
                        if (fam->kind != METRICS_HISTOGRAM) {
                                fprintf(f, "%s%s ", fam->name, s->labels);
                                add_value(f, s->value);
                                fputc('\n', f);
                                continue;
                        }
                        unsigned long long cum = 0;
                        for (size_t k = 0; k < fam->n_buckets; k++) {
                                char le[64];
                                cum += s->bucket_counts[k];
                                fmt_double(le, fam->buckets[k]);
                                fprintf(f, "%s_bucket", fam->name);
                                add_labels_le(f, s->labels, le);
                                fprintf(f, " %llu\n", cum);
                        }
                        fprintf(f, "%s_bucket", fam->name);
                        add_labels_le(f, s->labels, "+Inf");
                        fprintf(f, " %llu\n%s_sum%s ", s->count, fam->name, s->labels);
                        add_value(f, s->value);
                        fprintf(f, "\n%s_count%s %llu\n", fam->name, s->labels, s->count);
                }
        }
        return mem_close(f, &buf);
}
