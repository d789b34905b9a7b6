/* smap.c — see smap.h.
 *
 * DESIGN. FNV-1a hash, separate chaining, doubling at load factor 1. Small
 * and predictable; the launcher keeps tens of thousands of entries at most. */
#include "smap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

static uint64_t hash(const char *s) {
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

static struct smap_entry **find(const struct smap *m, const char *key) {
        if (!m->n_buckets) return NULL;
        struct smap_entry **pp = &m->buckets[hash(key) & (m->n_buckets - 1)];
        for (; *pp; pp = &(*pp)->next)
                if (strcmp((*pp)->key, key) == 0) return pp;
        return pp;
}

void *smap_get(const struct smap *m, const char *key) {
        struct smap_entry **pp = find(m, key);
        return pp && *pp ? (*pp)->value : NULL;
}

static void grow(struct smap *m) {
        size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
        struct smap_entry **b = xnew(struct smap_entry *, nb);
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        size_t h = hash(e->key) & (nb - 1);
                        e->next = b[h];
                        b[h] = e;
                }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
}

void *smap_put(struct smap *m, const char *key, void *value) {
        if (m->n + 1 > m->n_buckets) grow(m);
        struct smap_entry **pp = find(m, key);
        if (*pp) {
                void *old = (*pp)->value;
                (*pp)->value = value;
                return old;
        }
        struct smap_entry *e = xnew(struct smap_entry, 1);
        e->key = xstrdup(key);
        e->value = value;
        *pp = e;
        m->n++;
        return NULL;
}

void *smap_remove(struct smap *m, const char *key) {
        struct smap_entry **pp = find(m, key);
        if (!pp || !*pp) return NULL;
        struct smap_entry *e = *pp;
        void *v = e->value;
        *pp = e->next;
        free(e->key);
        free(e);
        m->n--;
        return v;
}

void smap_foreach(struct smap *m, void (*fn)(const char *key, void *value, void *ud), void *ud) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        fn(e->key, e->value, ud);
                }
}

void smap_clear(struct smap *m, void (*free_value)(void *value)) {
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        if (free_value) free_value(e->value);
                        free(e->key);
                        free(e);
                }
        free(m->buckets);
        *m = (struct smap){};
}

const char **smap_keys(const struct smap *m, size_t *ret_n) {
        const char **v = xnew(const char *, m->n + 1);
        size_t k = 0;
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct smap_entry *e = m->buckets[i]; e; e = e->next) v[k++] = e->key;
        *ret_n = k;
        return v;
}
