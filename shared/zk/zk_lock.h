/* zk_lock.h — kazoo's Lock recipe, byte for byte (protocol.md §1.8).
 *
 * A contender is the ephemeral-sequential child "<uuid4 hex>__lock__<seq10>"
 * of the lock directory L, with the identifier (UTF-8, maybe empty) as data.
 * Contenders are the children matching (__lock__|__rlock__)(-?\d{10})$ (a
 * WriteLock: blocked by both kinds), ordered by the sequence compared as a
 * string; the lowest holds the lock. L is created like kazoo's ensure_path
 * and never deleted here. All functions run on the zk owner thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "zk.h"

struct zk_lock;

/* A lock object for directory PATH with IDENTIFIER (NULL = empty). Nothing is
 * sent yet. *ret is owned by the caller (zk_lock_free). 0 or -EINVAL. */
int zk_lock_new(struct zk *zk, const char *path, const char *identifier, struct zk_lock **ret);
/* Cancels a pending async attempt and releases our contender if any (or
 * one a lost create may have made) through the session's release queue
 * (zk_release.h: retried until ZooKeeper confirms it). NULL ok. */
void zk_lock_free(struct zk_lock *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zk_lock *, zk_lock_free);

/* Non-blocking: 1 acquired, 0 held by someone else (our contender is removed
 * again), -EBUSY if this object holds it or has an attempt pending, <0 error. */
int zk_lock_try(struct zk_lock *l);
/* zk_lock_new() + zk_lock_try() in one: 1 and *ret (a held lock, caller
 * frees) when acquired; 0 when someone else holds it or -errno, and then
 * nothing is allocated. */
int zk_lock_try_new(struct zk *zk, const char *path, const char *identifier, struct zk_lock **ret);
/* Block until acquired (0), or -ETIMEDOUT after TIMEOUT_MS (-1: forever) with
 * our contender removed; waits on the predecessor with a watch. */
int zk_lock_acquire(struct zk_lock *l, int timeout_ms);
/* Delete our contender (blocking). 0 also when not held. */
int zk_lock_release(struct zk_lock *l);
/* The same without waiting (event-loop code): the delete goes to the
 * session's release queue, which retries it across connection losses until
 * ZooKeeper confirms it (or the session, and the contender with it, ends). */
void zk_lock_release_async(struct zk_lock *l);
/* Our contender is gone by the caller's own hand (deleted with the locked
 * record in one zk_amulti()): not held any more, nothing left to release. */
void zk_lock_forget(struct zk_lock *l);
/* True while acquired and the session that created the contender lives. */
bool zk_lock_is_held(struct zk_lock *l);
/* Our contender's name (e.g. "…__lock__0000000003") or NULL. */
const char *zk_lock_node(struct zk_lock *l);
const char *zk_lock_path(struct zk_lock *l);

/* Asynchronous non-blocking attempt for the event loop: CB runs from
 * zk_dispatch() with 1 acquired, 0 busy (contender removed) or -errno.
 * 0 when started, -EBUSY if held or an attempt is pending. */
typedef void (*zk_lock_cb)(struct zk_lock *l, int result, void *userdata);
int zk_lock_try_async(struct zk_lock *l, zk_lock_cb cb, void *userdata);
/* Every attempt (blocking or not) holds the lock without listing L when our
 * contender is numbered 0000000000: the first child ever made in L, so no
 * other contender is before it. Tell L most likely does not exist yet (the
 * lock of a record just made): then zk_lock_try_async() makes L and our
 * contender in one atomic multi request, which makes ours L's first child,
 * holding the lock; when L exists (or its parent does not) nothing is made
 * and the usual create and listing follow (one round trip more). */
void zk_lock_set_fresh(struct zk_lock *l);
/* With zk_lock_set_fresh(): the same multi also writes DATA (LEN bytes,
 * copied) into PATH if it is at VERSION (-1: any), so a lock and the first
 * write under it cost one request. Only the fresh multi carries it: when L
 * exists, the attempt goes on without it and the caller writes after the lock. */
void zk_lock_set_fresh_write(struct zk_lock *l, const char *path, const void *data, size_t len, int version);
/* What became of that write once the attempt ended. */
enum zk_lock_write {
        ZK_LOCK_WRITE_NONE,     /* not made (none asked, L existed, or the attempt failed before) */
        ZK_LOCK_WRITE_APPLIED,  /* made with our contender, atomically */
        ZK_LOCK_WRITE_FAILED,   /* the write itself failed (the attempt's error): nothing made, no lock */
};
/* *ret_stat (may be NULL): the record as written when known (not after a
 * lost answer that a later listing proved applied), else NULL. */
enum zk_lock_write zk_lock_fresh_write_state(const struct zk_lock *l, const struct zk_stat **ret_stat);

/* Nodepool's "is it locked?": 1 if L has any child, 0 if not (or no L), <0. */
int zk_is_locked(struct zk *zk, const char *path);
/* Contenders of L in lock order: names and identifiers (each optional,
 * NULL-terminated, zk_strv_free). Vanishing contenders are skipped. */
int zk_lock_contenders(struct zk *zk, const char *path, char ***ret_names, char ***ret_identifiers, size_t *ret_n);

/* ---- pure helpers (unit-tested) ---- */

/* The sequence part of a contender name ("0000000003", "-000000001"), or
 * NULL when NAME is not a contender. *ret_read (may be NULL) says __rlock__. */
const char *zk_lock_contender_seq(const char *name, bool *ret_read);
/* Order of two sequences as kazoo sorts them: plain string comparison. */
int zk_lock_seq_compare(const char *a, const char *b);
/* Among CHILDREN (N names), the contender just before OWN in lock order:
 * 0 with *ret_pred = NULL when OWN is first (acquired), 0 with a pointer into
 * CHILDREN otherwise, -ENOENT if OWN is not a contender among CHILDREN. */
int zk_lock_find_predecessor(char *const *children, size_t n, const char *own, const char **ret_pred);
/* Sort contender names in place in lock order; non-contenders are dropped.
 * Returns the new count. */
size_t zk_lock_sort_contenders(char **names, size_t n);
