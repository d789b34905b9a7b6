/* zk_update.h — update one ZooKeeper record under its kazoo-compatible lock.
 *
 * The one "lock, re-read, edit, write, unlock" sequence: take the record's
 * lock (non-blocking try; or use a lock the caller already holds), read the
 * record with its version, let the caller's EDIT decide (write new bytes, no
 * write needed, or give up), write with the version read (so a change made
 * behind the lock's back fails with -ESTALE), then report to DONE with the
 * result; the lock is released (zk_release.h: confirmed) unless the caller
 * asked to keep it. zk_update_start() runs it with asynchronous calls for an
 * event loop; zk_update_run() runs the same steps with blocking calls.
 * Owner thread only (the one that calls zk_dispatch()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "zk.h"
#include "zk_lock.h"

struct zk_update;

/* Flags (zk_update_spec.flags). */
enum {
        /* Hand the lock to DONE (or zk_update_run's *ret_lock) instead of
         * releasing it: always, whatever the result, unless it could not be taken. */
        ZK_UPDATE_KEEP_LOCK = 1 << 0,
        /* No read: EDIT gets rec->data NULL and sets rec->version itself (the
         * caller knows the record, e.g. from a watched cache or its own create). */
        ZK_UPDATE_NO_READ = 1 << 1,
        /* The lock directory most likely does not exist yet (the record was just
         * made): it is made with our contender (zk_lock_set_fresh()). */
        ZK_UPDATE_FRESH_LOCK = 1 << 2,
        /* With NO_READ and FRESH_LOCK, asynchronous and no LOCK given: EDIT runs
         * first, inside zk_update_start() (it decides from what the caller
         * knows; the version condition guards the write), and its write goes
         * in the lock's multi (zk_lock_set_fresh_write()): lock and write in one
         * request. EDIT's error is zk_update_start()'s (DONE never runs); NO_WRITE
         * still takes the lock; LATER is not allowed. */
        ZK_UPDATE_EDIT_FIRST = 1 << 3,
};

/* What EDIT returns (or a negative errno: give up with it, nothing written). */
enum {
        ZK_UPDATE_NO_WRITE = 0, /* nothing to write: done with 0 */
        ZK_UPDATE_WRITE = 1,    /* write rec->new_data: done with 1, or the write's error */
        /* Decided later (the edit started an asynchronous check of its own): the
         * caller then calls zk_update_write() or zk_update_skip(). Async only. */
        ZK_UPDATE_LATER = 2,
};

/* Where an update ended (DONE's AT). */
enum zk_update_step {
        ZK_UPDATE_STEP_LOCK,    /* the lock: -EBUSY (someone else holds it) or -errno */
        ZK_UPDATE_STEP_READ,    /* the read: -ENOENT (no record), -errno */
        ZK_UPDATE_STEP_EDIT,    /* the edit gave up (its error) or wanted no write (0) */
        ZK_UPDATE_STEP_WRITE,   /* the write: 1, -ESTALE (changed since the read), -errno */
        _ZK_UPDATE_STEP_MAX,
        _ZK_UPDATE_STEP_INVALID = -EINVAL,
};

/* The record as EDIT sees it. */
struct zk_update_record {
        const char *path;
        const char *data;       /* NUL-terminated (not counted in len); NULL with ZK_UPDATE_NO_READ */
        size_t len;
        int32_t version;        /* as read (-1 with NO_READ): the write is conditional on it; EDIT may set it */
        char *new_data;         /* EDIT's bytes to write (malloc'd; the update frees them) */
        size_t new_len;
};

/* Runs once the lock is held and the record read (async: from zk_dispatch()).
 * Must not free the update; return an error instead. */
typedef int (*zk_update_edit_cb)(struct zk_update_record *rec, void *userdata);
/* Runs once, at the end: R is 1 written, 0 no write wanted, or -errno from step
 * AT. LOCK: with ZK_UPDATE_KEEP_LOCK the lock (owned by the callee now; NULL
 * when it could not be taken), else NULL (released already). The callee may
 * free the update here. */
typedef void (*zk_update_done_cb)(int r, enum zk_update_step at, struct zk_lock *lock, void *userdata);

struct zk_update_spec {
        const char *path;               /* the record */
        const char *lock_path;          /* its lock directory; ignored when LOCK is given */
        struct zk_lock *lock;           /* a lock on it we hold (taken over, even on error), or NULL: take it */
        unsigned flags;                 /* ZK_UPDATE_* */
        zk_update_edit_cb edit;
        zk_update_done_cb done;         /* zk_update_start() only */
        void *userdata;                 /* to EDIT and DONE */
};

/* Start the update described by SPEC (copied). 0 and *ret (owned by the
 * caller: DONE runs exactly once later, from zk_dispatch(), unless *ret is
 * freed first), or -errno (then nothing runs, SPEC->lock is released). */
int zk_update_start(struct zk *zk, const struct zk_update_spec *spec, struct zk_update **ret);
/* Cancel: no callback runs afterwards, a pending lock attempt or read/write is
 * dropped, the lock (if not handed over) released — confirmed through the
 * release queue. Safe at any step; NULL ok. */
void zk_update_free(struct zk_update *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zk_update *, zk_update_free);

/* The record's stat as our write left it (its new version and mzxid), once
 * the write succeeded (from DONE with R 1 on); NULL before or without one. */
const struct zk_stat *zk_update_written_stat(const struct zk_update *u);

/* After EDIT returned ZK_UPDATE_LATER: write DATA (taken over) with the
 * version read, or end with R (0 or -errno; DONE gets it at STEP_EDIT).
 * DONE may run (and free U) before they return. */
void zk_update_write(struct zk_update *u, char *data, size_t len);
void zk_update_skip(struct zk_update *u, int r);

/* The same steps with blocking calls (CLI and builder code; SPEC->done is
 * not used): 1 written, 0 no write wanted, -EBUSY lock held by someone else,
 * or -errno. With ZK_UPDATE_KEEP_LOCK, *ret_lock gets the lock as DONE would
 * (set even on error; NULL when it could not be taken). */
int zk_update_run(struct zk *zk, const struct zk_update_spec *spec, struct zk_lock **ret_lock);
