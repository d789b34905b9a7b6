/* zk_cache.h — an in-memory mirror of a ZooKeeper subtree fed by watches.
 *
 * The classic TreeCache: one-shot data and child watches re-armed on every
 * event (Debian's client has no persistent watches). Nodes at depth
 * 1..max_depth below ROOT are cached with their data and stat; with
 * ZK_CACHE_TRACK_LOCKS a child called "lock" is not cached as a node but its
 * children (kazoo lock contenders) are counted on the parent, so
 * lock_contenders > 0 means "locked" (protocol.md §1.8).
 * Callbacks run from zk_dispatch() on the owner thread, in ZooKeeper order;
 * data older than what is cached (smaller mzxid) is ignored. After a
 * reconnect everything is listed and read again, and nodes that vanished
 * meanwhile are reported REMOVED. The cache stores bytes; decoding is the
 * caller's business. Owner thread only. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "zk.h"

struct zk_cache;

enum zk_cache_event {
        ZK_CACHE_ADDED,
        ZK_CACHE_UPDATED, /* data or lock contender count changed */
        ZK_CACHE_REMOVED,
        _ZK_CACHE_EVENT_MAX,
        _ZK_CACHE_EVENT_INVALID = -EINVAL,
};

enum {
        ZK_CACHE_TRACK_LOCKS = 1 << 0,
};

struct zk_cache_node {
        const char *path;
        const char *name; /* last path component */
        int depth;        /* 1 = child of the root */
        const char *data; /* NUL-terminated */
        size_t len;
        int32_t version;
        int64_t mzxid, ctime, mtime;
        unsigned lock_contenders; /* children of <path>/lock (ZK_CACHE_TRACK_LOCKS) */
};

/* NODE is valid only during the call; for REMOVED it is the last cached state. */
typedef void (*zk_cache_cb)(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *node,
                            void *userdata);
typedef void (*zk_cache_synced_cb)(struct zk_cache *c, void *userdata);

const char *zk_cache_event_to_string(enum zk_cache_event ev);

/* A cache of ROOT down to MAX_DEPTH (>= 1) with FLAGS; CB may be NULL.
 * Nothing is read until zk_cache_start(). *ret owned by the caller. */
int zk_cache_new(struct zk *zk, const char *root, int max_depth, unsigned flags, zk_cache_cb cb, void *userdata,
                 struct zk_cache **ret);
/* Stop watching (pending callbacks are cancelled) and free. NULL ok. */
void zk_cache_free(struct zk_cache *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zk_cache *, zk_cache_free);

/* Called whenever a (re)synchronisation has no reads left in flight. */
void zk_cache_set_synced_cb(struct zk_cache *c, zk_cache_synced_cb cb, void *userdata);
/* Begin the initial listing; ADDED events follow from zk_dispatch(). */
int zk_cache_start(struct zk_cache *c);
/* True once the latest (re)sync has no reads in flight. */
bool zk_cache_is_synced(struct zk_cache *c);

const char *zk_cache_root(struct zk_cache *c);
/* The cached node at PATH (full path, with ROOT), or NULL. Valid until the next dispatch. */
const struct zk_cache_node *zk_cache_get(struct zk_cache *c, const char *path);
size_t zk_cache_size(struct zk_cache *c);
/* Writes of our own, told instead of read back (issue 14). A writer that
 * holds PATH's lock (so nobody else writes it) mutes PATH before writing: a
 * firing of its data watch is then not followed by a read (nor a new watch),
 * and the writer reports what it wrote with zk_cache_apply(). The mute ends
 * with zk_cache_unmute() (read again if a firing was skipped), with any
 * change of PATH's lock directory (ZK_CACHE_TRACK_LOCKS: the lock changed
 * hands) and with every reconnect. A deletion is still seen (the parent's
 * listing). 0, or -ENOENT when PATH is not cached. */
int zk_cache_mute(struct zk_cache *c, const char *path);
void zk_cache_unmute(struct zk_cache *c, const char *path);
/* DATA (LEN bytes) as written, with the STAT the write answered: stored and
 * reported (UPDATED, or ADDED) when newer than the cached data (mzxid). 1
 * stored, 0 older than the cache, -ENOENT when PATH is not cached. */
int zk_cache_apply(struct zk_cache *c, const char *path, const char *data, size_t len, const struct zk_stat *stat);

/* Call FN for every cached node (any order); FN must not change the cache. */
void zk_cache_foreach(struct zk_cache *c, void (*fn)(const struct zk_cache_node *node, void *userdata),
                      void *userdata);
