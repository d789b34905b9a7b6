/* Unit tests for shared/zk/zk_cache.c against a scripted, in-memory ZooKeeper:
 * this file defines the zk_* calls the cache makes (so zk.o is not linked),
 * answers them one at a time in order as the server would, and lets a test
 * change the tree between two answers — races a real server cannot be made to
 * hit on demand. Watches follow ZooKeeper's rules: a data watch (get) fires on
 * change/delete, an exists watch also on create, a children watch on a child
 * created/deleted or the node deleted; each fires once. A test can also fail
 * the oldest call (a lost connection), drop every watch (an expired session)
 * and report session states to the cache's listener. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "zk.h"
#include "zk_cache.h"

/* ---------------------------------------------------------------- the fake server */

#define MAX_NODES 64
#define MAX_WATCHES 256
#define MAX_QUEUE 256

enum wkind { W_DATA, W_EXISTS, W_CHILD };
enum qkind { Q_GET, Q_EXISTS, Q_CHILDREN, Q_EVENT };

struct fnode {
        char path[128];
        char data[64];
        int64_t mzxid;
        int32_t version;
        bool used;
};

struct fwatch {
        char path[128];
        enum wkind kind;
        zk_watch_cb cb;
        void *ud;
        uint64_t id;
        bool used;
};

struct fq {
        enum qkind kind;
        char path[128];
        zk_watch_cb wcb;
        zk_result_cb cb;
        void *ud;
        bool cancelled;
        /* Q_EVENT */
        enum zk_event ev;
        uint64_t wid;
};

static struct fnode nodes[MAX_NODES];
static struct fwatch watches[MAX_WATCHES];
static struct fq queue[MAX_QUEUE];
static size_t q_head, q_tail;
static unsigned n_gets; /* zk_aget calls */
static int64_t zxid;
static uint64_t next_wid = 1;

static void fake_reset(void) {
        memset(nodes, 0, sizeof nodes);
        memset(watches, 0, sizeof watches);
        memset(queue, 0, sizeof queue);
        q_head = q_tail = 0;
        n_gets = 0;
        zxid = 0;
        next_wid = 1;
}

static struct fnode *find(const char *path) {
        for (size_t i = 0; i < MAX_NODES; i++)
                if (nodes[i].used && strcmp(nodes[i].path, path) == 0) return &nodes[i];
        return NULL;
}

static void parent_of(const char *path, char *buf, size_t sz) {
        snprintf(buf, sz, "%s", path);
        char *s = strrchr(buf, '/');
        if (s == buf) s[1] = '\0';
        else *s = '\0';
}

static void push(struct fq q) {
        assert_true(q_tail < MAX_QUEUE);
        queue[q_tail++] = q;
}

/* Fire (queue, once) every watch of KIND on PATH. */
static void fire(const char *path, enum wkind kind, enum zk_event ev) {
        for (size_t i = 0; i < MAX_WATCHES; i++) {
                struct fwatch *w = &watches[i];
                if (!w->used || w->kind != kind || strcmp(w->path, path) != 0) continue;
                w->used = false;
                struct fq q = { .kind = Q_EVENT, .wcb = w->cb, .ud = w->ud, .ev = ev, .wid = w->id };
                snprintf(q.path, sizeof q.path, "%s", path);
                push(q);
        }
}

static void tree_create(const char *path, const char *data) {
        assert_null(find(path));
        for (size_t i = 0; i < MAX_NODES; i++)
                if (!nodes[i].used) {
                        nodes[i] = (struct fnode){ .used = true, .mzxid = ++zxid };
                        snprintf(nodes[i].path, sizeof nodes[i].path, "%s", path);
                        snprintf(nodes[i].data, sizeof nodes[i].data, "%s", data);
                        char parent[128];
                        parent_of(path, parent, sizeof parent);
                        fire(path, W_EXISTS, ZK_EVENT_CREATED);
                        fire(parent, W_CHILD, ZK_EVENT_CHILD);
                        return;
                }
        fail();
}

static void tree_delete(const char *path) {
        struct fnode *n = find(path);
        assert_non_null(n);
        n->used = false;
        char parent[128];
        parent_of(path, parent, sizeof parent);
        fire(path, W_DATA, ZK_EVENT_DELETED);
        fire(path, W_EXISTS, ZK_EVENT_DELETED);
        fire(path, W_CHILD, ZK_EVENT_DELETED);
        fire(parent, W_CHILD, ZK_EVENT_CHILD);
}

static void tree_set(const char *path, const char *data) {
        struct fnode *n = find(path);
        assert_non_null(n);
        snprintf(n->data, sizeof n->data, "%s", data);
        n->mzxid = ++zxid;
        n->version++;
        fire(path, W_DATA, ZK_EVENT_CHANGED);
        fire(path, W_EXISTS, ZK_EVENT_CHANGED);
}

static uint64_t add_watch(const char *path, enum wkind kind, zk_watch_cb cb, void *ud) {
        for (size_t i = 0; i < MAX_WATCHES; i++)
                if (!watches[i].used) {
                        watches[i] = (struct fwatch){ .used = true, .kind = kind, .cb = cb, .ud = ud,
                                                      .id = next_wid++ };
                        snprintf(watches[i].path, sizeof watches[i].path, "%s", path);
                        return watches[i].id;
                }
        fail();
        return 0;
}

/* Answer the oldest queued call (as zk_dispatch would run it). False when none. */
static bool fake_step(void) {
        if (q_head == q_tail) return false;
        struct fq q = queue[q_head++];
        if (q.cancelled) return true;
        if (q.kind == Q_EVENT) {
                struct zk_watch_event ev = { .type = q.ev, .path = q.path, .id = q.wid };
                q.wcb(NULL, &ev, q.ud);
                return true;
        }
        struct fnode *n = find(q.path);
        struct zk_stat st = { 0 };
        struct zk_result res = { .path = q.path };
        char *children[MAX_NODES + 1] = { NULL };
        size_t nc = 0;
        if (n) {
                st.mzxid = n->mzxid;
                st.version = n->version;
                res.stat = &st;
        }
        res.r = n ? 0 : -ENOENT;
        switch (q.kind) {
        case Q_GET:
                if (n) {
                        res.data = n->data;
                        res.len = strlen(n->data);
                        if (q.wcb) res.watch_id = add_watch(q.path, W_DATA, q.wcb, q.ud);
                }
                break;
        case Q_EXISTS:
                if (q.wcb) res.watch_id = add_watch(q.path, W_EXISTS, q.wcb, q.ud);
                break;
        case Q_CHILDREN:
                if (n) {
                        size_t plen = strlen(q.path);
                        for (size_t i = 0; i < MAX_NODES; i++) {
                                const char *p = nodes[i].path;
                                if (nodes[i].used && strncmp(p, q.path, plen) == 0 && p[plen] == '/' &&
                                    !strchr(p + plen + 1, '/'))
                                        children[nc++] = (char *)p + plen + 1;
                        }
                        if (q.wcb) res.watch_id = add_watch(q.path, W_CHILD, q.wcb, q.ud);
                }
                res.children = children;
                res.n_children = nc;
                break;
        case Q_EVENT:
                break;
        }
        res.watch_registered = res.watch_id != 0;
        if (q.kind == Q_EXISTS) res.stat = n ? &st : NULL;
        q.cb(NULL, &res, q.ud);
        return true;
}

/* Answer the oldest queued call (not an event) with error R, as when the
 * connection is lost before the answer: nothing applied, no watch set. */
static void fake_fail_next(int r) {
        assert_true(q_head < q_tail && queue[q_head].kind != Q_EVENT);
        struct fq q = queue[q_head++];
        struct zk_result res = { .r = r, .path = q.path };
        if (!q.cancelled) q.cb(NULL, &res, q.ud);
}

static void fake_drain(void) {
        for (int i = 0; i < 1000 && fake_step(); i++) {
        }
        assert_true(q_head == q_tail);
}

/* True when the oldest queued call is of KIND on PATH. */
static bool next_is(enum qkind kind, const char *path) {
        return q_head < q_tail && queue[q_head].kind == kind && strcmp(queue[q_head].path, path) == 0;
}

/* ---------------------------------------------------------------- the zk.h calls zk_cache.c makes */

static int enqueue_op(enum qkind kind, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        struct fq q = { .kind = kind, .wcb = watch, .cb = cb, .ud = userdata };
        snprintf(q.path, sizeof q.path, "%s", path);
        push(q);
        return 0;
}

int zk_aget(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        n_gets++;
        return enqueue_op(Q_GET, path, watch, cb, userdata);
}

int zk_aexists(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        return enqueue_op(Q_EXISTS, path, watch, cb, userdata);
}

int zk_aget_children(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        return enqueue_op(Q_CHILDREN, path, watch, cb, userdata);
}

void zk_cancel(struct zk *zk, void *userdata) {
        for (size_t i = q_head; i < q_tail; i++)
                if (queue[i].ud == userdata) queue[i].cancelled = true;
        for (size_t i = 0; i < MAX_WATCHES; i++)
                if (watches[i].ud == userdata) watches[i].used = false;
}

static zk_state_cb state_cb;
static void *state_ud;

void zk_add_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) {
        state_cb = cb;
        state_ud = userdata;
}
void zk_remove_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) { state_cb = NULL; }

static void fake_state(enum zk_state s) {
        assert_non_null(state_cb);
        state_cb(NULL, s, state_ud);
}

/* ---------------------------------------------------------------- tests */

static unsigned contenders(struct zk_cache *c, const char *path) {
        const struct zk_cache_node *n = zk_cache_get(c, path);
        assert_non_null(n);
        return n->lock_contenders;
}

static struct zk_cache *start_cache(void) {
        struct zk_cache *c = NULL;
        /* zk_cache never dereferences the handle itself: any non-NULL pointer will do. */
        assert_int_equal(zk_cache_new((struct zk *)1, "/nodes", 1, ZK_CACHE_TRACK_LOCKS, NULL, NULL, &c), 0);
        assert_int_equal(zk_cache_start(c), 0);
        return c;
}

/* Proves (regression): a lock directory created between the cache's listing of
 * it (ENOENT) and its exists call is then watched for children, so the lock
 * being taken and released later is seen — the node does not look locked forever. */
static void test_lock_dir_appearing_between_list_and_exists_keeps_being_watched(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "{}");
        struct zk_cache *c = start_cache();
        /* Answer until the lock directory's listing has said ENOENT and the exists call is queued. */
        for (int i = 0; i < 100 && !next_is(Q_EXISTS, "/nodes/0000000001/lock"); i++) assert_true(fake_step());
        assert_true(next_is(Q_EXISTS, "/nodes/0000000001/lock"));
        /* The race: a launcher locks the node right now. */
        tree_create("/nodes/0000000001/lock", "");
        tree_create("/nodes/0000000001/lock/u__lock__0000000000", "");
        fake_drain();
        assert_true(zk_cache_is_synced(c));
        assert_int_equal(contenders(c, "/nodes/0000000001"), 1);
        /* Released later: the cache must notice. */
        tree_delete("/nodes/0000000001/lock/u__lock__0000000000");
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 0);
        /* And locked again. */
        tree_create("/nodes/0000000001/lock/v__lock__0000000001", "");
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 1);
        zk_cache_free(c);
}

/* Proves: the ordinary paths still work — a lock directory created after the
 * sync (exists watch fires) and one present from the start are both followed. */
static void test_lock_dir_created_later_or_present_at_start_is_followed(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "{}");
        tree_create("/nodes/0000000002", "{}");
        tree_create("/nodes/0000000002/lock", "");
        tree_create("/nodes/0000000002/lock/a__lock__0000000000", "");
        struct zk_cache *c = start_cache();
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 0);
        assert_int_equal(contenders(c, "/nodes/0000000002"), 1);
        tree_create("/nodes/0000000001/lock", "");
        fake_drain();
        tree_create("/nodes/0000000001/lock/b__lock__0000000000", "");
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 1);
        tree_delete("/nodes/0000000002/lock/a__lock__0000000000");
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000002"), 0);
        zk_cache_free(c);
}

static const char *data_of(struct zk_cache *c, const char *path) {
        const struct zk_cache_node *n = zk_cache_get(c, path);
        return n ? n->data : NULL;
}

/* Proves (issue 13): a change whose read was lost with the connection (the
 * watch fired, its re-read failed, so no watch is armed either) is read again
 * when the session is CONNECTED again, and the node is watched again after. */
static void test_read_lost_with_the_connection_is_redone_on_reconnect(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        struct zk_cache *c = start_cache();
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "a");
        tree_set("/nodes/0000000001", "b");
        assert_true(fake_step());       /* the watch fires: a read with a new watch goes out */
        assert_true(next_is(Q_GET, "/nodes/0000000001"));
        fake_fail_next(-ECONNRESET);
        fake_state(ZK_STATE_SUSPENDED);
        assert_string_equal(data_of(c, "/nodes/0000000001"), "a");
        fake_state(ZK_STATE_CONNECTED);
        assert_false(zk_cache_is_synced(c));
        fake_drain();
        assert_true(zk_cache_is_synced(c));
        assert_string_equal(data_of(c, "/nodes/0000000001"), "b");
        tree_set("/nodes/0000000001", "c"); /* watched again */
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "c");
        zk_cache_free(c);
}

/* Proves (issue 13): after an expiry (the server dropped every watch, so no
 * event tells of changes made meanwhile) the new session's CONNECTED lists and
 * reads everything again: a changed node, a deleted one and a new one are all
 * seen, and later changes are watched again. */
static void test_changes_missed_during_expiry_are_seen_after_new_session(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        tree_create("/nodes/0000000002", "x");
        struct zk_cache *c = start_cache();
        fake_drain();
        fake_state(ZK_STATE_EXPIRED);
        memset(watches, 0, sizeof watches); /* the server forgot them with the session */
        tree_set("/nodes/0000000001", "b");
        tree_delete("/nodes/0000000002");
        tree_create("/nodes/0000000003", "new");
        assert_int_equal(q_head, q_tail); /* no watch left to tell */
        fake_state(ZK_STATE_CONNECTED);
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "b");
        assert_null(zk_cache_get(c, "/nodes/0000000002"));
        assert_string_equal(data_of(c, "/nodes/0000000003"), "new");
        tree_set("/nodes/0000000003", "newer");
        tree_create("/nodes/0000000003/lock", "");
        tree_create("/nodes/0000000003/lock/a__lock__0000000000", "");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000003"), "newer");
        assert_int_equal(contenders(c, "/nodes/0000000003"), 1);
        zk_cache_free(c);
}

/* Proves (regression, issue 13): a re-sync read sent while the data watch was
 * armed (so it asks for none) and answered after that watch fired and a new
 * one was asked for does not mark the node unwatched: later changes are still
 * seen. (Before, the re-sync answer settled the pending watch as "none", the
 * new watch's firing was then taken for a stale one, and the node's cache
 * froze — after a ZooKeeper restart under load, nodes stuck `used` forever.) */
static void test_resync_answer_does_not_disarm_a_watch_asked_meanwhile(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        struct zk_cache *c = start_cache();
        fake_drain();
        /* A change lands just before the reconnect's re-sync reads go out: its
         * event comes first, then the re-sync's read (no watch: one is armed). */
        tree_set("/nodes/0000000001", "b");
        fake_state(ZK_STATE_CONNECTED);
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "b");
        tree_set("/nodes/0000000001", "c");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "c");
        /* The same for a lock directory's children watch. */
        tree_create("/nodes/0000000001/lock", "");
        fake_drain();
        tree_create("/nodes/0000000001/lock/a__lock__0000000000", "");
        fake_state(ZK_STATE_CONNECTED);
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 1);
        tree_delete("/nodes/0000000001/lock/a__lock__0000000000");
        fake_drain();
        assert_int_equal(contenders(c, "/nodes/0000000001"), 0);
        zk_cache_free(c);
}

/* Proves (issue 14): a node's deletion, told by its data watch, removes it
 * from the cache without reading it again (the read could only say ENOENT),
 * and a node made again under the same name is still picked up (through the
 * parent's listing) and watched. */
static void test_deleted_event_removes_the_node_without_a_read(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        struct zk_cache *c = start_cache();
        fake_drain();
        unsigned gets = n_gets;
        tree_delete("/nodes/0000000001");
        fake_drain();
        assert_null(zk_cache_get(c, "/nodes/0000000001"));
        assert_int_equal(n_gets, gets);
        tree_create("/nodes/0000000001", "again");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "again");
        tree_set("/nodes/0000000001", "changed");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "changed");
        zk_cache_free(c);
}

/* Our write of PATH as the server applied it: the stat a set answers. */
static struct zk_stat written_stat(const char *path) {
        struct fnode *n = find(path);
        assert_non_null(n);
        return (struct zk_stat){ .mzxid = n->mzxid, .version = n->version };
}

/* Proves (issue 14): a muted node's own writes are told (zk_cache_apply), not
 * read back: the firing is followed by no read, the told data and version are
 * cached; after zk_cache_unmute() it is read and watched again, so a later
 * change by someone else is seen. */
static void test_muted_writes_are_told_not_read_and_unmute_watches_again(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        struct zk_cache *c = start_cache();
        fake_drain();
        assert_int_equal(zk_cache_mute(c, "/nodes/0000000001"), 0);
        assert_int_equal(zk_cache_mute(c, "/nodes/0000000009"), -ENOENT);
        unsigned gets = n_gets;
        tree_set("/nodes/0000000001", "ours");
        fake_drain();
        assert_int_equal(n_gets, gets); /* the firing is not followed by a read */
        struct zk_stat st = written_stat("/nodes/0000000001");
        assert_int_equal(zk_cache_apply(c, "/nodes/0000000001", "ours", 4, &st), 1);
        assert_string_equal(data_of(c, "/nodes/0000000001"), "ours");
        assert_int_equal(zk_cache_get(c, "/nodes/0000000001")->version, st.version);
        /* A second write: no watch is armed, nothing fires; told again. */
        tree_set("/nodes/0000000001", "ours2");
        assert_int_equal(q_head, q_tail);
        st = written_stat("/nodes/0000000001");
        assert_int_equal(zk_cache_apply(c, "/nodes/0000000001", "ours2", 5, &st), 1);
        assert_int_equal(zk_cache_apply(c, "/nodes/0000000001", "ours", 4, &(struct zk_stat){ .mzxid = 1 }), 0);
        assert_string_equal(data_of(c, "/nodes/0000000001"), "ours2");
        zk_cache_unmute(c, "/nodes/0000000001");
        fake_drain();
        assert_int_equal(n_gets, gets + 1); /* read (and watched) again */
        tree_set("/nodes/0000000001", "theirs");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "theirs");
        zk_cache_free(c);
}

/* Proves (issue 14): a mute ends by itself when the node's lock directory
 * changes (the lock changed hands: a write we skipped may be someone else's)
 * and with a reconnect; a muted node's deletion is still seen. */
static void test_mute_ends_with_a_lock_change_or_a_reconnect(void **state) {
        fake_reset();
        tree_create("/nodes", "");
        tree_create("/nodes/0000000001", "a");
        tree_create("/nodes/0000000001/lock", "");
        tree_create("/nodes/0000000002", "x");
        struct zk_cache *c = start_cache();
        fake_drain();
        assert_int_equal(zk_cache_mute(c, "/nodes/0000000001"), 0);
        tree_set("/nodes/0000000001", "b");     /* skipped, and never told */
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "a");
        tree_create("/nodes/0000000001/lock/a__lock__0000000000", "");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "b");
        assert_int_equal(contenders(c, "/nodes/0000000001"), 1);
        tree_set("/nodes/0000000001", "c");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000001"), "c");
        /* A reconnect: everything is read again, the mute is over. */
        assert_int_equal(zk_cache_mute(c, "/nodes/0000000002"), 0);
        tree_set("/nodes/0000000002", "y");
        fake_state(ZK_STATE_CONNECTED);
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000002"), "y");
        tree_set("/nodes/0000000002", "z");
        fake_drain();
        assert_string_equal(data_of(c, "/nodes/0000000002"), "z");
        /* Muted and deleted: gone from the cache all the same (the parent's listing). */
        assert_int_equal(zk_cache_mute(c, "/nodes/0000000002"), 0);
        tree_set("/nodes/0000000002", "last");
        fake_drain();
        tree_delete("/nodes/0000000002");
        fake_drain();
        assert_null(zk_cache_get(c, "/nodes/0000000002"));
        zk_cache_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lock_dir_appearing_between_list_and_exists_keeps_being_watched),
                cmocka_unit_test(test_lock_dir_created_later_or_present_at_start_is_followed),
                cmocka_unit_test(test_read_lost_with_the_connection_is_redone_on_reconnect),
                cmocka_unit_test(test_changes_missed_during_expiry_are_seen_after_new_session),
                cmocka_unit_test(test_resync_answer_does_not_disarm_a_watch_asked_meanwhile),
                cmocka_unit_test(test_deleted_event_removes_the_node_without_a_read),
                cmocka_unit_test(test_muted_writes_are_told_not_read_and_unmute_watches_again),
                cmocka_unit_test(test_mute_ends_with_a_lock_change_or_a_reconnect),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
