/* smap.c — see smap.h.
 *
 * DESIGN. FNV-1a hash, separate chaining, doubling at load factor 1. Each
 * entry is one allocation holding its key and its full hash: growing never
 * hashes again, and a lookup compares strings only when the hashes match.
 * The launcher's node and request caches and the ZooKeeper cache's path
 * table use it; tens of thousands of entries at most. */
#include "smap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct smap_entry {
        struct smap_entry *next;
        void *value;
        uint64_t hash;
        char key[];
};

static uint64_t hash(const char *s) {
        uint64_t h = 1469598103934665603ULL;
        for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return h;
}

/* The link that points at KEY's entry, or the empty link at its chain's end;
 * NULL when the map has no buckets yet. */
static struct smap_entry **find(const struct smap *m, const char *key, uint64_t h) {
        if (!m->n_buckets) return NULL;
        struct smap_entry **pp = &m->buckets[h & (m->n_buckets - 1)];
        for (; *pp; pp = &(*pp)->next)
                if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0) return pp;
        return pp;
}

void *smap_get(const struct smap *m, const char *key) {
        struct smap_entry **pp = find(m, key, hash(key));
        return pp && *pp ? (*pp)->value : NULL;
}

bool smap_contains(const struct smap *m, const char *key) {
        struct smap_entry **pp = find(m, key, hash(key));
        return pp && *pp;
}

static void grow(struct smap *m) {
        size_t nb = m->n_buckets ? m->n_buckets * 2 : 64;
        struct smap_entry **b = xnew(struct smap_entry *, nb);
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct smap_entry *e = m->buckets[i], *next; e; e = next) {
                        next = e->next;
                        size_t k = e->hash & (nb - 1);
                        e->next = b[k];
                        b[k] = e;
                }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
}

void *smap_put(struct smap *m, const char *key, void *value) {
        uint64_t h = hash(key);
        struct smap_entry **pp = find(m, key, h);
        if (pp && *pp) {
                void *old = (*pp)->value;
                (*pp)->value = value;
                return old;
        }
        if (m->n + 1 > m->n_buckets) {
                grow(m);
                pp = find(m, key, h);
        }
        size_t len = strlen(key) + 1;
        struct smap_entry *e = xmalloc(sizeof *e + len);
        e->next = NULL;
        e->value = value;
        e->hash = h;
        memcpy(e->key, key, len);
        *pp = e;
        m->n++;
        return NULL;
}

void *smap_remove(struct smap *m, const char *key) {
        struct smap_entry **pp = find(m, key, hash(key));
        if (!pp || !*pp) return NULL;
        struct smap_entry *e = *pp;
        void *v = e->value;
        *pp = e->next;
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
