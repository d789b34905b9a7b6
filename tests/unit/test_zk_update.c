/* Unit tests for shared/zk/zk_update.c: its step machine (lock → read → edit →
 * version-checked write → done), the lock's fate (released, confirmed, or
 * handed over), and cancellation at every step. They run against a scripted,
 * in-memory ZooKeeper (scripted_zk.c, shared with test_zk_lock.c), which lets a
 * test change a record between two answers and drop the connection; its
 * blocking calls serve zk_update_run(). The launcher's integration tests prove the
 * same paths end to end against a real ZooKeeper. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "scripted_zk.h"
#include "zk_lock.h"
#include "zk_release.h"
#include "zk_update.h"

/* ---------------------------------------------------------------- helpers */

#define REC "/nodepool/nodes/0000000001"
#define LOCK_DIR REC "/lock"

struct probe {
        int edits, dones;
        int r;
        enum zk_update_step at;
        struct zk_lock *lock;
        char seen[256];         /* the data EDIT got */
        int32_t seen_version;
        int edit_r;             /* what EDIT returns */
        const char *write;      /* the bytes it asks to write */
        struct zk_update **free_in_done;
};

static int probe_edit(struct zk_update_record *rec, void *ud) {
        struct probe *p = ud;
        p->edits++;
        snprintf(p->seen, sizeof p->seen, "%s", rec->data ? rec->data : "(none)");
        p->seen_version = rec->version;
        if (p->edit_r == ZK_UPDATE_WRITE) {
                rec->new_data = xstrdup(p->write);
                rec->new_len = strlen(p->write);
        }
        return p->edit_r;
}

static void probe_done(int r, enum zk_update_step at, struct zk_lock *lock, void *ud) {
        struct probe *p = ud;
        p->dones++;
        p->r = r;
        p->at = at;
        p->lock = lock;
        if (p->free_in_done) {
                zk_update_free(*p->free_in_done);
                *p->free_in_done = NULL;
        }
}

static struct zk_update *start(struct probe *p, unsigned flags, struct zk_lock *lock) {
        struct zk_update *u = NULL;
        struct zk_update_spec spec = {
                .path = REC, .lock_path = LOCK_DIR, .lock = lock, .flags = flags, .edit = probe_edit,
                .done = probe_done, .userdata = p,
        };
        assert_int_equal(zk_update_start(FAKE_ZK, &spec, &u), 0);
        assert_non_null(u);
        return u;
}

static size_t contenders(void) {
        char *kids[FMAX + 1];
        return fchildren(LOCK_DIR, kids);
}

static void on_locked(struct zk_lock *l, int result, void *ud) { *(int *)ud = result; }

/* ---------------------------------------------------------------- tests */

/* Proves: the whole sequence — the lock is taken, EDIT sees the record and its
 * version, the write is conditional on that version and lands, DONE says 1 at
 * the write step, and the lock is released (no contender left) without KEEP. */
static void test_update_writes_under_the_lock_and_releases_it(void **state) {
        fake_reset();
        fnode_put(REC, "old")->version = 7;
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new", .free_in_done = NULL };
        struct zk_update *u = start(&p, 0, NULL);
        fake_drain();
        assert_int_equal(p.edits, 1);
        assert_string_equal(p.seen, "old");
        assert_int_equal(p.seen_version, 7);
        assert_int_equal(p.dones, 1);
        assert_int_equal(p.r, 1);
        assert_int_equal(p.at, ZK_UPDATE_STEP_WRITE);
        assert_null(p.lock);
        assert_string_equal(fnode_find(REC)->data, "new");
        assert_int_equal(fnode_find(REC)->version, 8);
        assert_int_equal(contenders(), 0);
        zk_update_free(u);
        fake_drain();
}

/* Proves: a record changed between our read and our write is not overwritten:
 * DONE gets -ESTALE at the write step, and the lock is still released. */
static void test_update_changed_behind_our_back_is_stale(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "ours" };
        struct zk_update *u = start(&p, 0, NULL);
        while (p.edits == 0) assert_true(fake_step());
        /* The write is queued; someone ignoring the lock writes first. */
        struct fnode *n = fnode_find(REC);
        snprintf(n->data, sizeof n->data, "theirs");
        n->version++;
        fake_drain();
        assert_int_equal(p.r, -ESTALE);
        assert_int_equal(p.at, ZK_UPDATE_STEP_WRITE);
        assert_string_equal(fnode_find(REC)->data, "theirs");
        assert_int_equal(contenders(), 0);
        zk_update_free(u);
}

/* Proves: when someone else holds the lock, nothing is read or written: DONE
 * gets -EBUSY at the lock step, EDIT never runs, our contender is removed. */
static void test_update_on_a_held_lock_is_busy(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        fnode_put(LOCK_DIR "/ffffffffffffffffffffffffffffffff__lock__0000000000", "");
        fseq = 1;
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new" };
        struct zk_update *u = start(&p, ZK_UPDATE_KEEP_LOCK, NULL);
        fake_drain();
        assert_int_equal(p.dones, 1);
        assert_int_equal(p.r, -EBUSY);
        assert_int_equal(p.at, ZK_UPDATE_STEP_LOCK);
        assert_null(p.lock); /* KEEP, but there is no lock to keep */
        assert_int_equal(p.edits, 0);
        assert_int_equal(fsets, 0);
        assert_int_equal(contenders(), 1); /* only theirs */
        zk_update_free(u);
}

/* Proves: EDIT decides — "no write" ends with 0 and an error gives up with it,
 * at the edit step, and neither sends a write; a missing record ends at the read. */
static void test_edit_decides_and_missing_record_ends_at_read(void **state) {
        fake_reset();
        fnode_put(REC, "same");
        struct probe p = { .edit_r = ZK_UPDATE_NO_WRITE };
        struct zk_update *u = start(&p, 0, NULL);
        fake_drain();
        assert_int_equal(p.r, 0);
        assert_int_equal(p.at, ZK_UPDATE_STEP_EDIT);
        zk_update_free(u);

        struct probe q = { .edit_r = -ECANCELED };
        u = start(&q, 0, NULL);
        fake_drain();
        assert_int_equal(q.r, -ECANCELED);
        assert_int_equal(q.at, ZK_UPDATE_STEP_EDIT);
        assert_int_equal(fsets, 0);
        assert_int_equal(contenders(), 0);
        zk_update_free(u);

        fnode_find(REC)->path[0] = '\0';
        struct probe m = { .edit_r = ZK_UPDATE_WRITE, .write = "x" };
        u = start(&m, 0, NULL);
        fake_drain();
        assert_int_equal(m.r, -ENOENT);
        assert_int_equal(m.at, ZK_UPDATE_STEP_READ);
        assert_int_equal(m.edits, 0);
        assert_int_equal(contenders(), 0);
        zk_update_free(u);
}

/* Proves: with KEEP_LOCK, DONE owns the still-held lock (the contender stays
 * until the caller lets it go), and the caller may free the update inside DONE. */
static void test_keep_lock_hands_the_held_lock_over(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct zk_update *u = NULL;
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new", .free_in_done = &u };
        u = start(&p, ZK_UPDATE_KEEP_LOCK, NULL);
        fake_drain();
        assert_null(u); /* freed by DONE */
        assert_int_equal(p.r, 1);
        assert_non_null(p.lock);
        assert_true(zk_lock_is_held(p.lock));
        assert_int_equal(contenders(), 1);
        zk_lock_free(p.lock);
        fake_drain();
        assert_int_equal(contenders(), 0);
}

/* Proves: a lock the caller holds is used as is (no second contender, no lock
 * round trip) and released at the end without KEEP. */
static void test_handed_in_lock_is_used_and_released(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct zk_lock *l = NULL;
        int res = -1000;
        assert_int_equal(zk_lock_new(FAKE_ZK, LOCK_DIR, NULL, &l), 0);
        assert_int_equal(zk_lock_try_async(l, on_locked, &res), 0);
        fake_drain();
        assert_int_equal(res, 1);
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new" };
        struct zk_update *u = start(&p, 0, l);
        assert_true(fq[fq_head].kind == F_GET); /* straight to the read */
        fake_drain();
        assert_int_equal(p.r, 1);
        assert_int_equal(contenders(), 0);
        zk_update_free(u);
}

static void later_exists(struct zk *zk, const struct zk_result *res, void *ud) {
        struct zk_update *u = ud;
        if (res->r == -ENOENT) zk_update_write(u, xstrdup("after-check"), strlen("after-check"));
        else zk_update_skip(u, -EEXIST);
}

static struct zk_update *later_u;

static int later_edit(struct zk_update_record *rec, void *ud) {
        struct probe *p = ud;
        p->edits++;
        zk_aget(FAKE_ZK, "/nodepool/requests/100", NULL, later_exists, later_u);
        return ZK_UPDATE_LATER;
}

/* Proves: an edit that needs an asynchronous check of its own (LATER) goes on
 * with zk_update_write() — still conditional on the version read — or ends with
 * zk_update_skip()'s result at the edit step. */
static void test_later_edit_writes_or_skips(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct probe p = {};
        struct zk_update_spec spec = {
                .path = REC, .lock_path = LOCK_DIR, .edit = later_edit, .done = probe_done, .userdata = &p,
        };
        assert_int_equal(zk_update_start(FAKE_ZK, &spec, &later_u), 0);
        fake_drain();
        assert_int_equal(p.r, 1);
        assert_string_equal(fnode_find(REC)->data, "after-check");
        zk_update_free(later_u);

        fnode_put("/nodepool/requests/100", "{}");
        struct probe q = {};
        spec.userdata = &q;
        assert_int_equal(zk_update_start(FAKE_ZK, &spec, &later_u), 0);
        fake_drain();
        assert_int_equal(q.r, -EEXIST);
        assert_int_equal(q.at, ZK_UPDATE_STEP_EDIT);
        assert_int_equal(fsets, 1);
        assert_int_equal(contenders(), 0);
        zk_update_free(later_u);
}

/* Proves: freeing an update is safe at every step — while the lock attempt, the
 * read, the write or a LATER check is pending — no callback runs afterwards,
 * nothing is written, and our contender does not outlive it (the release queue
 * deletes it). */
static void test_free_at_every_step_cancels_and_releases(void **state) {
        for (int stop = 0; stop < 4; stop++) {
                fake_reset();
                fnode_put(REC, "old");
                struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new" };
                struct zk_update_spec spec = {
                        .path = REC, .lock_path = LOCK_DIR, .flags = ZK_UPDATE_KEEP_LOCK,
                        .edit = stop == 3 ? later_edit : probe_edit, .done = probe_done, .userdata = &p,
                };
                assert_int_equal(zk_update_start(FAKE_ZK, &spec, &later_u), 0);
                if (stop >= 1) /* the lock is taken: the read is queued */
                        while (fq[fq_head].kind != F_GET) assert_true(fake_step());
                if (stop >= 2) /* the read is answered: the write (or the LATER check) is queued */
                        while (p.edits == 0) assert_true(fake_step());
                if (stop == 2) assert_true(fq[fq_head].kind == F_SET);
                if (stop == 3) zk_cancel(FAKE_ZK, later_u); /* the caller's own check goes with it */
                zk_update_free(TAKE_PTR(later_u));
                fake_drain();
                assert_int_equal(p.dones, 0);
                assert_int_equal(fsets, 0);
                assert_string_equal(fnode_find(REC)->data, "old");
                assert_int_equal(contenders(), 0);
                assert_int_equal(p.edits, stop >= 2 ? 1 : 0);
                assert_int_equal(zk_release_pending(zk_releases(FAKE_ZK)), 0);
        }
}

/* Proves: a connection lost during the read ends the update there (-ECONNRESET)
 * and the lock's release, lost too, is sent again after the reconnect. */
static void test_connection_loss_ends_at_read_and_release_survives(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new" };
        struct zk_update *u = start(&p, 0, NULL);
        while (fq[fq_head].kind != F_GET) assert_true(fake_step());
        fake_disconnect();
        fake_drain();
        assert_int_equal(p.r, -ECONNRESET);
        assert_int_equal(p.at, ZK_UPDATE_STEP_READ);
        assert_int_equal(contenders(), 1); /* the release could not be sent */
        fake_reconnect();
        fake_drain();
        assert_int_equal(contenders(), 0);
        assert_int_equal(fsets, 0);
        zk_update_free(u);
}

/* Proves: the blocking form runs the same steps: written (1) with the lock
 * released; -EBUSY on a lock held by someone else; with KEEP the held lock comes
 * back (a lock handed in and kept, as the builder's upload record writes do). */
static void test_blocking_form(void **state) {
        fake_reset();
        fnode_put(REC, "old");
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "new" };
        struct zk_update_spec spec = {
                .path = REC, .lock_path = LOCK_DIR, .edit = probe_edit, .userdata = &p,
        };
        assert_int_equal(zk_update_run(FAKE_ZK, &spec, NULL), 1);
        assert_string_equal(fnode_find(REC)->data, "new");
        fake_drain(); /* the release is confirmed asynchronously */
        assert_int_equal(contenders(), 0);

        spec.flags = ZK_UPDATE_KEEP_LOCK;
        struct zk_lock *lock = NULL;
        p.write = "newer";
        assert_int_equal(zk_update_run(FAKE_ZK, &spec, &lock), 1);
        assert_non_null(lock);
        assert_int_equal(contenders(), 1);
        spec.lock = TAKE_PTR(lock);
        p.write = "newest";
        assert_int_equal(zk_update_run(FAKE_ZK, &spec, &lock), 1); /* handed in, kept */
        assert_true(zk_lock_is_held(lock));
        assert_string_equal(fnode_find(REC)->data, "newest");

        spec.lock = NULL;
        struct probe q = { .edit_r = ZK_UPDATE_WRITE, .write = "x" };
        spec.userdata = &q;
        struct zk_lock *none = (struct zk_lock *)1;
        assert_int_equal(zk_update_run(FAKE_ZK, &spec, &none), -EBUSY); /* ours holds it */
        assert_null(none);
        assert_int_equal(q.edits, 0);
        assert_int_equal(contenders(), 1); /* the busy attempt removed its contender */
        zk_lock_free(lock);
        fake_drain();
        assert_int_equal(contenders(), 0);
}

/* ---------------------------------------------------------------- ZK_UPDATE_EDIT_FIRST */

#define FIRST (ZK_UPDATE_EDIT_FIRST | ZK_UPDATE_NO_READ | ZK_UPDATE_FRESH_LOCK | ZK_UPDATE_KEEP_LOCK)

/* An EDIT that knows the record without reading it (as the launcher from its
 * cache): writes p->write conditional on version p->seen_version. */
static int known_edit(struct zk_update_record *rec, void *ud) {
        struct probe *p = ud;
        p->edits++;
        rec->version = p->seen_version;
        if (p->edit_r == ZK_UPDATE_WRITE) {
                rec->new_data = xstrdup(p->write);
                rec->new_len = strlen(p->write);
        }
        return p->edit_r;
}

static int start_first(struct probe *p, struct zk_update **ret) {
        struct zk_update_spec spec = {
                .path = REC, .lock_path = LOCK_DIR, .flags = FIRST, .edit = known_edit, .done = probe_done,
                .userdata = p,
        };
        return zk_update_start(FAKE_ZK, &spec, ret);
}

/* Proves (issue 14): with EDIT_FIRST on a record whose lock directory does not
 * exist yet, EDIT runs inside zk_update_start() and the lock directory, our
 * contender and the version-checked write go out as ONE request; DONE gets 1
 * at the write step with the held lock and the record's new stat. */
static void test_edit_first_locks_and_writes_in_one_request(void **state) {
        fake_reset();
        fnode_put(REC, "requested")->version = 3;
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "pending", .seen_version = 3 };
        struct zk_update *u = NULL;
        assert_int_equal(start_first(&p, &u), 0);
        assert_int_equal(p.edits, 1); /* before any answer */
        fake_drain();
        assert_int_equal(fsent, 1);
        assert_int_equal(p.dones, 1);
        assert_int_equal(p.r, 1);
        assert_int_equal(p.at, ZK_UPDATE_STEP_WRITE);
        assert_non_null(p.lock);
        assert_true(zk_lock_is_held(p.lock));
        assert_string_equal(fnode_find(REC)->data, "pending");
        assert_non_null(zk_update_written_stat(u));
        assert_int_equal(zk_update_written_stat(u)->version, 4);
        assert_int_equal(contenders(), 1);
        zk_lock_free(p.lock);
        zk_update_free(u);
        fake_drain();
        assert_int_equal(contenders(), 0);
}

/* Proves: a record changed since the caller knew it fails the whole multi:
 * -ESTALE at the write step, no lock, no lock directory, no contender, the
 * record untouched. */
static void test_edit_first_stale_makes_nothing(void **state) {
        fake_reset();
        fnode_put(REC, "theirs")->version = 5;
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "ours", .seen_version = 4 };
        struct zk_update *u = NULL;
        assert_int_equal(start_first(&p, &u), 0);
        fake_drain();
        assert_int_equal(p.r, -ESTALE);
        assert_int_equal(p.at, ZK_UPDATE_STEP_WRITE);
        assert_null(p.lock);
        assert_null(fnode_find(LOCK_DIR));
        assert_string_equal(fnode_find(REC)->data, "theirs");
        assert_int_equal(fsets, 0);
        zk_update_free(u);
        fake_drain();
}

/* Proves: when the lock directory exists, the write is not carried by the
 * lock attempt: held by someone else, -EBUSY and nothing written; free, the
 * lock is taken the usual way and the write follows it. */
static void test_edit_first_with_an_existing_lock_directory(void **state) {
        fake_reset();
        char other[200];
        fnode_put(REC, "requested");
        fnode_put(LOCK_DIR, "");
        snprintf(other, sizeof other, "%s/%s%010u", LOCK_DIR, "ffffffffffffffffffffffffffffffff__lock__", fseq++);
        fnode_put(other, "");
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "pending", .seen_version = 0 };
        struct zk_update *u = NULL;
        assert_int_equal(start_first(&p, &u), 0);
        fake_drain();
        assert_int_equal(p.r, -EBUSY);
        assert_int_equal(p.at, ZK_UPDATE_STEP_LOCK);
        assert_string_equal(fnode_find(REC)->data, "requested");
        zk_update_free(u);
        fake_drain();

        fnode_find(other)->path[0] = '\0'; /* they let go */
        struct probe q = { .edit_r = ZK_UPDATE_WRITE, .write = "pending", .seen_version = 0 };
        fsent = 0;
        assert_int_equal(start_first(&q, &u), 0);
        fake_drain();
        assert_int_equal(q.r, 1);
        assert_int_equal(q.at, ZK_UPDATE_STEP_WRITE);
        assert_true(zk_lock_is_held(q.lock));
        assert_string_equal(fnode_find(REC)->data, "pending");
        assert_int_equal(fsent, 4); /* the multi (EEXIST), create, listing, the write */
        zk_lock_free(q.lock);
        zk_update_free(u);
        fake_drain();
}

/* Proves: EDIT wanting no write still gets the lock (0 at the edit step, the
 * record untouched); EDIT's error is zk_update_start()'s and nothing is sent. */
static void test_edit_first_no_write_and_error(void **state) {
        fake_reset();
        fnode_put(REC, "requested");
        struct probe p = { .edit_r = ZK_UPDATE_NO_WRITE };
        struct zk_update *u = NULL;
        assert_int_equal(start_first(&p, &u), 0);
        fake_drain();
        assert_int_equal(p.r, 0);
        assert_int_equal(p.at, ZK_UPDATE_STEP_EDIT);
        assert_true(zk_lock_is_held(p.lock));
        assert_string_equal(fnode_find(REC)->data, "requested");
        zk_lock_free(p.lock);
        zk_update_free(u);
        fake_drain();

        struct probe e = { .edit_r = -ECANCELED };
        fsent = 0;
        u = NULL;
        assert_int_equal(start_first(&e, &u), -ECANCELED);
        assert_null(u);
        assert_int_equal(fsent, 0);
        assert_int_equal(e.dones, 0);
}

/* Proves: the multi's answer lost after ZooKeeper applied it: the lock finds
 * our contender and the update reports the write as made (1, stat unknown),
 * without writing a second time. */
static void test_edit_first_lost_answer_is_found_applied(void **state) {
        fake_reset();
        fnode_put(REC, "requested");
        struct probe p = { .edit_r = ZK_UPDATE_WRITE, .write = "pending", .seen_version = 0 };
        struct zk_update *u = NULL;
        assert_int_equal(start_first(&p, &u), 0);
        assert_true(fake_step_ex(true)); /* applied, answer lost */
        fake_drain();
        assert_int_equal(p.r, 1);
        assert_int_equal(p.at, ZK_UPDATE_STEP_WRITE);
        assert_true(zk_lock_is_held(p.lock));
        assert_null(zk_update_written_stat(u));
        assert_int_equal(fsets, 1);
        assert_int_equal(contenders(), 1);
        zk_lock_free(p.lock);
        zk_update_free(u);
        fake_drain();
        assert_int_equal(contenders(), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_update_writes_under_the_lock_and_releases_it, fake_teardown),
                cmocka_unit_test_teardown(test_update_changed_behind_our_back_is_stale, fake_teardown),
                cmocka_unit_test_teardown(test_update_on_a_held_lock_is_busy, fake_teardown),
                cmocka_unit_test_teardown(test_edit_decides_and_missing_record_ends_at_read, fake_teardown),
                cmocka_unit_test_teardown(test_keep_lock_hands_the_held_lock_over, fake_teardown),
                cmocka_unit_test_teardown(test_handed_in_lock_is_used_and_released, fake_teardown),
                cmocka_unit_test_teardown(test_later_edit_writes_or_skips, fake_teardown),
                cmocka_unit_test_teardown(test_free_at_every_step_cancels_and_releases, fake_teardown),
                cmocka_unit_test_teardown(test_connection_loss_ends_at_read_and_release_survives, fake_teardown),
                cmocka_unit_test_teardown(test_blocking_form, fake_teardown),
                cmocka_unit_test_teardown(test_edit_first_locks_and_writes_in_one_request, fake_teardown),
                cmocka_unit_test_teardown(test_edit_first_stale_makes_nothing, fake_teardown),
                cmocka_unit_test_teardown(test_edit_first_with_an_existing_lock_directory, fake_teardown),
                cmocka_unit_test_teardown(test_edit_first_no_write_and_error, fake_teardown),
                cmocka_unit_test_teardown(test_edit_first_lost_answer_is_found_applied, fake_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
