/* zk_update.c — see zk_update.h.
 *
 * DESIGN. One small state machine, LOCK → READ → EDIT (→ LATER) → WRITE →
 * DONE, whose steps either send an asynchronous call (its answer runs the
 * next step from zk_dispatch()) or, for zk_update_run(), make the blocking
 * call and feed its answer to the very same step function — so both forms
 * share every decision. At most one call with the update as userdata is
 * outstanding (the lock attempt's are the lock object's), so freeing it
 * cancels exactly that call and releases the lock. DONE is the last thing an
 * update does: the caller may free it there. */
#include "zk_update.h"

#include <string.h>

#include "alloc.h"
#include "log.h"

enum stage { ST_LOCK, ST_READ, ST_EDIT, ST_LATER, ST_WRITE, ST_DONE };

struct zk_update {
        struct zk *zk;
        char *path, *lock_path;
        struct zk_lock *lock;
        unsigned flags;
        zk_update_edit_cb edit;
        zk_update_done_cb done;
        void *userdata;
        bool sync;              /* zk_update_run(): blocking calls, result kept below */
        enum stage stage;
        bool pending;           /* a read or write with us as userdata is outstanding */
        int32_t version;        /* the write's condition */
        int sync_r;
        struct zk_lock *sync_lock;
        struct zk_stat written;  /* the record as written (has_written) */
        bool has_written;
        char *early_data;       /* ZK_UPDATE_EDIT_FIRST: EDIT's bytes, NULL for no write */
        size_t early_len;
};

/* The end: release or hand over the lock, then DONE (the caller may free U). */
static void finish(struct zk_update *u, int r, enum zk_update_step at) {
        struct zk_lock *lock = NULL;
        u->stage = ST_DONE;
        if ((u->flags & ZK_UPDATE_KEEP_LOCK) && at != ZK_UPDATE_STEP_LOCK)
                lock = TAKE_PTR(u->lock);
        else
                zk_lock_free(TAKE_PTR(u->lock)); /* held: the release queue deletes our contender */
        if (u->sync) {
                u->sync_r = r;
                u->sync_lock = lock;
                return;
        }
        u->done(r, at, lock, u->userdata);
}

static void on_written(struct zk *zk, const struct zk_result *res, void *ud) {
        struct zk_update *u = ud;
        u->pending = false;
        if (res->r >= 0 && res->stat) {
                u->written = *res->stat;
                u->has_written = true;
        }
        finish(u, res->r < 0 ? res->r : 1, ZK_UPDATE_STEP_WRITE);
}

/* Write DATA (taken over) conditional on the version read. */
static void write_step(struct zk_update *u, char *data, size_t len) {
        _cleanup_free_ char *owned = data;
        u->stage = ST_WRITE;
        if (!u->sync) {
                u->pending = true;
                (void)zk_aset(u->zk, u->path, owned ? owned : "", len, u->version, on_written, u);
                return;
        }
        struct zk_stat st;
        struct zk_result res = { .path = u->path, .stat = &st };
        res.r = zk_set(u->zk, u->path, owned ? owned : "", len, u->version, &st);
        on_written(u->zk, &res, u);
}

static void edit_step(struct zk_update *u, struct zk_update_record *rec) {
        u->stage = ST_EDIT;
        int r = u->edit(rec, u->userdata);
        _cleanup_free_ char *data = TAKE_PTR(rec->new_data);
        u->version = rec->version;
        if (r == ZK_UPDATE_WRITE) return write_step(u, TAKE_PTR(data), rec->new_len);
        if (r == ZK_UPDATE_LATER && !u->sync) {
                u->stage = ST_LATER;
                return;
        }
        if (r > 0) r = -EINVAL; /* LATER in a blocking update, or nonsense */
        finish(u, r, ZK_UPDATE_STEP_EDIT);
}

static void on_read(struct zk *zk, const struct zk_result *res, void *ud) {
        struct zk_update *u = ud;
        u->pending = false;
        if (res->r < 0) return finish(u, res->r, ZK_UPDATE_STEP_READ);
        struct zk_update_record rec = {
                .path = u->path, .data = res->data, .len = res->len, .version = res->stat->version,
        };
        edit_step(u, &rec);
}

static void read_step(struct zk_update *u) {
        u->stage = ST_READ;
        if (u->flags & ZK_UPDATE_NO_READ) {
                struct zk_update_record rec = { .path = u->path, .version = -1 };
                return edit_step(u, &rec);
        }
        if (!u->sync) {
                u->pending = true;
                (void)zk_aget(u->zk, u->path, NULL, on_read, u);
                return;
        }
        _cleanup_free_ char *data = NULL;
        struct zk_stat st;
        struct zk_result res = { .path = u->path, .stat = &st };
        res.r = zk_get(u->zk, u->path, &data, &res.len, &st);
        res.data = data;
        on_read(u->zk, &res, u);
}

/* ZK_UPDATE_EDIT_FIRST: the lock attempt ended; its multi may have carried the write. */
static void on_locked_edited(struct zk_update *u, int result) {
        const struct zk_stat *st = NULL;
        enum zk_lock_write w = zk_lock_fresh_write_state(u->lock, &st);
        if (result != 1) {
                if (w == ZK_LOCK_WRITE_FAILED) { /* nothing was made: no lock to hand over */
                        zk_lock_free(TAKE_PTR(u->lock));
                        return finish(u, result, ZK_UPDATE_STEP_WRITE);
                }
                return finish(u, result == 0 ? -EBUSY : result, ZK_UPDATE_STEP_LOCK);
        }
        if (!u->early_data) return finish(u, ZK_UPDATE_NO_WRITE, ZK_UPDATE_STEP_EDIT);
        if (w != ZK_LOCK_WRITE_APPLIED) return write_step(u, TAKE_PTR(u->early_data), u->early_len);
        if (st) {
                u->written = *st;
                u->has_written = true;
        }
        finish(u, 1, ZK_UPDATE_STEP_WRITE);
}

static void on_locked(struct zk_lock *lock, int result, void *ud) {
        struct zk_update *u = ud;
        if (u->flags & ZK_UPDATE_EDIT_FIRST) return on_locked_edited(u, result);
        if (result != 1) return finish(u, result == 0 ? -EBUSY : result, ZK_UPDATE_STEP_LOCK);
        read_step(u);
}

/* ZK_UPDATE_EDIT_FIRST: EDIT before the lock. 0, or EDIT's error. */
static int edit_first(struct zk_update *u) {
        struct zk_update_record rec = { .path = u->path, .version = -1 };
        int r = u->edit(&rec, u->userdata);
        _cleanup_free_ char *data = TAKE_PTR(rec.new_data);
        u->version = rec.version;
        if (r < 0) return r;
        if (r == ZK_UPDATE_LATER || (r != ZK_UPDATE_WRITE && r != ZK_UPDATE_NO_WRITE)) return -EINVAL;
        if (r == ZK_UPDATE_WRITE) {
                u->early_len = data ? rec.new_len : 0;
                u->early_data = data ? TAKE_PTR(data) : xstrdup("");
        }
        return 0;
}

static int update_new(struct zk *zk, const struct zk_update_spec *spec, bool sync, struct zk_update **ret) {
        struct zk_lock *lock = spec->lock;
        if (!zk || !spec->path || !spec->edit || (!sync && !spec->done) || (!lock && !spec->lock_path) ||
            /* Async, that would run DONE before zk_update_start() returns. */
            (!sync && lock && (spec->flags & ZK_UPDATE_NO_READ))) {
                zk_lock_free(lock);
                return -EINVAL;
        }
        struct zk_update *u = xnew(struct zk_update, 1);
        *u = (struct zk_update){
                .zk = zk,
                .path = xstrdup(spec->path),
                .lock_path = xstrdup(lock ? zk_lock_path(lock) : spec->lock_path),
                .lock = lock,
                .flags = spec->flags,
                .edit = spec->edit,
                .done = spec->done,
                .userdata = spec->userdata,
                .sync = sync,
                .version = -1,
        };
        *ret = u;
        return 0;
}

int zk_update_start(struct zk *zk, const struct zk_update_spec *spec, struct zk_update **ret) {
        struct zk_update *u = NULL;
        int r = update_new(zk, spec, false, &u);
        if (r < 0) return r;
        if (u->lock) {
                read_step(u); /* sends the read: nothing else runs before zk_dispatch() */
                *ret = u;
                return 0;
        }
        const unsigned first = ZK_UPDATE_EDIT_FIRST | ZK_UPDATE_NO_READ | ZK_UPDATE_FRESH_LOCK;
        if ((u->flags & ZK_UPDATE_EDIT_FIRST) && (u->flags & first) != first) r = -EINVAL;
        else if (u->flags & ZK_UPDATE_EDIT_FIRST) r = edit_first(u);
        u->stage = ST_LOCK;
        if (r >= 0) r = zk_lock_new(zk, u->lock_path, NULL, &u->lock);
        if (r >= 0 && (u->flags & ZK_UPDATE_FRESH_LOCK)) zk_lock_set_fresh(u->lock);
        if (r >= 0 && u->early_data)
                zk_lock_set_fresh_write(u->lock, u->path, u->early_data, u->early_len, u->version);
        if (r >= 0) r = zk_lock_try_async(u->lock, on_locked, u);
        if (r < 0) {
                zk_update_free(u);
                return r;
        }
        *ret = u;
        return 0;
}

void zk_update_free(struct zk_update *u) {
        if (!u) return;
        if (u->pending) zk_cancel(u->zk, u);
        zk_lock_free(u->lock); /* cancels a pending attempt; a held lock goes to the release queue */
        zk_lock_free(u->sync_lock);
        free(u->early_data);
        free(u->path);
        free(u->lock_path);
        free(u);
}

const struct zk_stat *zk_update_written_stat(const struct zk_update *u) {
        return u && u->has_written ? &u->written : NULL;
}

void zk_update_write(struct zk_update *u, char *data, size_t len) {
        if (u->stage != ST_LATER) {
                log_debug("zk_update: %s: write outside a LATER edit ignored", u->path);
                free(data);
                return;
        }
        write_step(u, data, len);
}

void zk_update_skip(struct zk_update *u, int r) {
        if (u->stage != ST_LATER) {
                log_debug("zk_update: %s: skip outside a LATER edit ignored", u->path);
                return;
        }
        finish(u, MIN(r, 0), ZK_UPDATE_STEP_EDIT);
}

int zk_update_run(struct zk *zk, const struct zk_update_spec *spec, struct zk_lock **ret_lock) {
        struct zk_update *u = NULL;
        if (ret_lock) *ret_lock = NULL;
        int r = update_new(zk, spec, true, &u);
        if (r < 0) return r;
        if (u->lock)
                read_step(u);
        else {
                u->stage = ST_LOCK;
                r = zk_lock_new(zk, u->lock_path, NULL, &u->lock);
                if (r < 0) {
                        zk_update_free(u);
                        return r;
                }
                on_locked(u->lock, zk_lock_try(u->lock), u);
        }
        r = u->sync_r;
        if (ret_lock) *ret_lock = TAKE_PTR(u->sync_lock);
        zk_update_free(u);
        return r;
}
