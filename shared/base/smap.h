/* smap.h — a string → pointer hash map (chained, power-of-two buckets).
 *
 * Keys are copied; values are the caller's (NULL is a value like any other:
 * smap_contains() tells it from absence). Iteration order is unspecified;
 * removing the current entry during smap_foreach is allowed (only that one).
 * Lookups allocate nothing. Not thread-safe: one owner thread per map. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct smap_entry;

struct smap {
        struct smap_entry **buckets;
        size_t n_buckets, n; /* n = entries */
};

/* The value for KEY or NULL. */
void *smap_get(const struct smap *m, const char *key);
/* Whether KEY is present (whatever its value). */
bool smap_contains(const struct smap *m, const char *key);
/* Insert or replace; returns the previous value (NULL if none). */
void *smap_put(struct smap *m, const char *key, void *value);
/* Remove KEY; returns its value (NULL if absent). */
void *smap_remove(struct smap *m, const char *key);
/* Call FN for each entry; FN may remove the entry it is given, and nothing else. */
void smap_foreach(struct smap *m, void (*fn)(const char *key, void *value, void *ud), void *ud);
/* Free the table (values untouched unless FREE_VALUE is non-NULL); M is empty and reusable after. */
void smap_clear(struct smap *m, void (*free_value)(void *value));
/* Keys as a new array of borrowed pointers (caller frees the array only); *ret_n entries. */
const char **smap_keys(const struct smap *m, size_t *ret_n);
