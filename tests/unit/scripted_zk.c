/* scripted_zk.c — see scripted_zk.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc.h"
#include "scripted_zk.h"
#include "zk_release.h"

struct fnode fnodes[FMAX];
struct fcall fq[FQUEUE];
size_t fq_head, fq_tail;
unsigned fseq, fsets, fsent; /* sequence counter; sets applied; calls sent to the "server" */
bool fconnected;
uint64_t fgen;
zk_state_cb flisten[4];
void *flisten_ud[4];
struct zk_release_queue *frq;

void fake_reset(void) {
        zk_release_queue_free(frq);
        frq = NULL;
        memset(fnodes, 0, sizeof fnodes);
        memset(fq, 0, sizeof fq);
        memset(flisten, 0, sizeof flisten);
        fq_head = fq_tail = 0;
        fseq = fsets = fsent = 0;
        fconnected = true;
        fgen = 0;
}

struct fnode *fnode_find(const char *path) {
        for (int i = 0; i < FMAX; i++)
                if (fnodes[i].path[0] && strcmp(fnodes[i].path, path) == 0) return &fnodes[i];
        return NULL;
}

struct fnode *fnode_put(const char *path, const char *data) {
        struct fnode *n = fnode_find(path);
        for (int i = 0; !n && i < FMAX; i++)
                if (!fnodes[i].path[0]) n = &fnodes[i];
        assert_non_null(n);
        snprintf(n->path, sizeof n->path, "%s", path);
        snprintf(n->data, sizeof n->data, "%s", data ? data : "");
        return n;
}

size_t fchildren(const char *dir, char **out) {
        size_t n = 0, k = strlen(dir);
        for (int i = 0; i < FMAX; i++)
                if (fnodes[i].path[0] && strncmp(fnodes[i].path, dir, k) == 0 && fnodes[i].path[k] == '/' &&
                    !strchr(fnodes[i].path + k + 1, '/'))
                        out[n++] = fnodes[i].path + k + 1;
        out[n] = NULL;
        return n;
}

void fpush(struct fcall c) {
        assert_true(fq_tail < FQUEUE);
        if (c.kind != F_STATE) {
                fsent++;
                if (!fconnected) c.fail = -ECONNRESET; /* the C client fails it at once */
        }
        fq[fq_tail++] = c;
}

/* Apply C to the tree: the answer's result; the created path or the node in *RET. */
static size_t fmulti_failed; /* the last F_MULTI's failing operation, 1-based (0 none) */

static int fapply(const struct fcall *c, char *created, size_t sz, struct fnode **ret) {
        struct fnode *n = fnode_find(c->path);
        switch (c->kind) {
        case F_CREATE:
                snprintf(created, sz, "%s", c->path);
                if (c->flags & ZK_SEQUENCE) snprintf(created + strlen(created), sz - strlen(created), "%010u", fseq++);
                if (fnode_find(created)) return -EEXIST;
                fnode_put(created, c->data);
                return 0;
        case F_DELETE:
                if (!n) return -ENOENT;
                n->path[0] = '\0';
                return 0;
        case F_GET:
                *ret = n;
                return n ? 0 : -ENOENT;
        case F_MULTI: {
                /* All or nothing: every operation checked first. A sequential child of
                 * a directory the same multi makes is its first: numbered 0. */
                fmulti_failed = 0;
                for (size_t i = 0; i < c->n_mops; i++) {
                        const struct fmop *m = &c->mops[i];
                        const struct fnode *t = fnode_find(m->path);
                        int r = 0;
                        if (m->kind == F_CREATE && !(m->flags & ZK_SEQUENCE) && t) r = -EEXIST;
                        if ((m->kind == F_DELETE || m->kind == F_SET) && !t) r = -ENOENT;
                        if (m->kind == F_SET && t && m->version != -1 && m->version != t->version) r = -ESTALE;
                        if (r < 0) {
                                fmulti_failed = i + 1;
                                return r;
                        }
                }
                char made[160] = "";
                for (size_t i = 0; i < c->n_mops; i++) {
                        const struct fmop *m = &c->mops[i];
                        if (m->kind == F_DELETE) {
                                fnode_find(m->path)->path[0] = '\0';
                                continue;
                        }
                        if (m->kind == F_SET) { /* the answer's stat is the last set's */
                                *ret = fnode_find(m->path);
                                snprintf((*ret)->data, sizeof (*ret)->data, "%s", m->data);
                                (*ret)->version++;
                                fsets++;
                                continue;
                        }
                        snprintf(created, sz, "%s", m->path);
                        if (m->flags & ZK_SEQUENCE) {
                                size_t k = strlen(made);
                                bool first = k && strncmp(m->path, made, k) == 0 && m->path[k] == '/';
                                snprintf(created + strlen(created), sz - strlen(created), "%010u", first ? 0 : fseq++);
                        } else
                                snprintf(made, sizeof made, "%s", m->path);
                        fnode_put(created, m->data);
                }
                return 0;
        }
        case F_SET:
                if (!n) return -ENOENT;
                if (c->version != -1 && c->version != n->version) return -ESTALE;
                snprintf(n->data, sizeof n->data, "%s", c->data);
                n->version++;
                fsets++;
                *ret = n;
                return 0;
        default:
                return 0;
        }
}

bool fake_step_ex(bool lose_answer) {
        if (fq_head == fq_tail) return false;
        struct fcall c = fq[fq_head++];
        if (c.cancelled) return true;
        if (c.kind == F_STATE) {
                for (int i = 0; i < 4; i++)
                        if (flisten[i]) flisten[i](FAKE_ZK, c.state, flisten_ud[i]);
                return true;
        }
        char created[200] = "";
        char *kids[FMAX + 1] = { NULL };
        struct fnode *n = NULL;
        struct zk_stat st = {};
        struct zk_result res = { .path = c.path };
        if (c.fail) {
                res.r = c.fail;
        } else if (c.kind == F_CHILDREN) {
                res.n_children = fchildren(c.path, kids);
                res.children = kids;
        } else {
                res.r = fapply(&c, created, sizeof created, &n);
                res.created_path = created;
                if (c.kind == F_MULTI && res.r < 0) res.multi_failed = fmulti_failed;
                if (n) {
                        st.version = n->version;
                        res.stat = &st;
                        res.data = n->data;
                        res.len = strlen(n->data);
                }
        }
        if (lose_answer) res = (struct zk_result){ .r = -ECONNRESET, .path = c.path };
        if (c.cb) c.cb(FAKE_ZK, &res, c.ud);
        return true;
}

bool fake_step(void) { return fake_step_ex(false); }

void fake_drain(void) {
        for (int i = 0; i < 1000 && fake_step(); i++) {
        }
        assert_true(fq_head == fq_tail);
}

/* The connection drops: every call not answered yet fails, then SUSPENDED. */
void fake_disconnect(void) {
        fconnected = false;
        for (size_t i = fq_head; i < fq_tail; i++)
                if (fq[i].kind != F_STATE && !fq[i].fail) fq[i].fail = -ECONNRESET;
        fpush((struct fcall){ .kind = F_STATE, .state = ZK_STATE_SUSPENDED });
}

void fake_reconnect(void) {
        fconnected = true;
        fpush((struct fcall){ .kind = F_STATE, .state = ZK_STATE_CONNECTED });
}

void fake_expire(void) {
        fconnected = false;
        fgen++;
        memset(fnodes, 0, sizeof fnodes);
        for (size_t i = fq_head; i < fq_tail; i++)
                if (fq[i].kind != F_STATE) fq[i].fail = -EKEYEXPIRED;
        fpush((struct fcall){ .kind = F_STATE, .state = ZK_STATE_EXPIRED });
}

size_t contenders_in(const char *dir) {
        char *kids[FMAX + 1];
        return fchildren(dir, kids);
}

/* ---------------------------------------------------------------- the zk.h calls the recipes make */

static void fpush_op(enum fkind kind, const char *path, const void *data, size_t len, int version, unsigned flags,
                     zk_result_cb cb, void *ud) {
        struct fcall c = { .kind = kind, .version = version, .flags = flags, .cb = cb, .ud = ud };
        snprintf(c.path, sizeof c.path, "%s", path);
        if (data) snprintf(c.data, sizeof c.data, "%.*s", (int)len, (const char *)data);
        fpush(c);
}

int zk_acreate(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, zk_result_cb cb,
               void *userdata) {
        fpush_op(F_CREATE, path, data, len, -1, flags, cb, userdata);
        return 0;
}

int zk_aget_children(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        fpush_op(F_CHILDREN, path, NULL, 0, -1, 0, cb, userdata);
        return 0;
}

int zk_adelete(struct zk *zk, const char *path, int version, zk_result_cb cb, void *userdata) {
        fpush_op(F_DELETE, path, NULL, 0, version, 0, cb, userdata);
        return 0;
}

int zk_aget(struct zk *zk, const char *path, zk_watch_cb watch, zk_result_cb cb, void *userdata) {
        fpush_op(F_GET, path, NULL, 0, -1, 0, cb, userdata);
        return 0;
}

int zk_aset(struct zk *zk, const char *path, const void *data, size_t len, int version, zk_result_cb cb,
            void *userdata) {
        fpush_op(F_SET, path, data, len, version, 0, cb, userdata);
        return 0;
}

int zk_amulti(struct zk *zk, const struct zk_multi_op *ops, size_t n, zk_result_cb cb, void *userdata) {
        struct fcall c = { .kind = F_MULTI, .version = -1, .cb = cb, .ud = userdata };
        assert_true(n > 0 && n <= 4);
        snprintf(c.path, sizeof c.path, "%s", ops[0].path);
        for (size_t i = 0; i < n; i++) {
                assert_true(ops[i].kind == ZK_MULTI_CREATE || ops[i].kind == ZK_MULTI_DELETE ||
                            ops[i].kind == ZK_MULTI_SET);
                struct fmop *m = &c.mops[c.n_mops++];
                m->kind = ops[i].kind == ZK_MULTI_CREATE ? F_CREATE : ops[i].kind == ZK_MULTI_SET ? F_SET : F_DELETE;
                m->flags = ops[i].flags;
                m->version = ops[i].version;
                snprintf(m->path, sizeof m->path, "%s", ops[i].path);
                if (ops[i].data) snprintf(m->data, sizeof m->data, "%.*s", (int)ops[i].len, (const char *)ops[i].data);
        }
        fpush(c);
        return 0;
}

void zk_cancel(struct zk *zk, void *userdata) {
        for (size_t i = fq_head; i < fq_tail; i++)
                if (userdata && fq[i].ud == userdata) fq[i].cancelled = true;
}

uint64_t zk_session_generation(struct zk *zk) { return fgen; }
bool zk_is_connected(struct zk *zk) { return fconnected; }
int zk_session_timeout(struct zk *zk) { return 10000; }

void zk_add_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) {
        for (int i = 0; i < 4; i++)
                if (!flisten[i]) {
                        flisten[i] = cb;
                        flisten_ud[i] = userdata;
                        return;
                }
        fail();
}

void zk_remove_state_listener(struct zk *zk, zk_state_cb cb, void *userdata) {
        for (int i = 0; i < 4; i++)
                if (flisten[i] == cb && flisten_ud[i] == userdata) flisten[i] = NULL;
}

struct zk_release_queue *zk_releases(struct zk *zk) {
        if (!frq) assert_int_equal(zk_release_queue_new(zk, &frq), 0);
        return frq;
}

void zk_strv_free(char **v) {
        for (char **p = v; p && *p; p++) free(*p);
        free(v);
}

/* Blocking calls: answered at once from the same tree (tests drain the queue first). */
static int fsync_call(enum fkind kind, const char *path, const void *data, size_t len, int version, unsigned flags,
                      char *created, struct fnode **ret) {
        if (!fconnected) return -ECONNRESET;
        struct fcall c = { .kind = kind, .version = version, .flags = flags };
        snprintf(c.path, sizeof c.path, "%s", path);
        if (data) snprintf(c.data, sizeof c.data, "%.*s", (int)len, (const char *)data);
        char buf[200];
        struct fnode *n = NULL;
        int r = fapply(&c, created ? created : buf, 200, &n);
        if (ret) *ret = n;
        return r;
}

int zk_connect_wait(struct zk *zk, int timeout_ms) { return fconnected ? 0 : -ETIMEDOUT; }
int zk_create(struct zk *zk, const char *path, const void *data, size_t len, unsigned flags, char **ret_path) {
        char created[200];
        int r = fsync_call(F_CREATE, path, data, len, -1, flags, created, NULL);
        if (r >= 0 && ret_path) *ret_path = xstrdup(created);
        return r;
}
int zk_delete(struct zk *zk, const char *path, int version) {
        return fsync_call(F_DELETE, path, NULL, 0, version, 0, NULL, NULL);
}
int zk_ensure_path(struct zk *zk, const char *path) { return fconnected ? 0 : -ECONNRESET; }
int zk_get(struct zk *zk, const char *path, char **ret_data, size_t *ret_len, struct zk_stat *ret_stat) {
        struct fnode *n = NULL;
        int r = fsync_call(F_GET, path, NULL, 0, -1, 0, NULL, &n);
        if (r < 0) return r;
        *ret_data = xstrdup(n->data);
        if (ret_len) *ret_len = strlen(n->data);
        if (ret_stat) *ret_stat = (struct zk_stat){ .version = n->version };
        return 0;
}
int zk_set(struct zk *zk, const char *path, const void *data, size_t len, int version, struct zk_stat *ret_stat) {
        return fsync_call(F_SET, path, data, len, version, 0, NULL, NULL);
}
int zk_get_children(struct zk *zk, const char *path, char ***ret_children, size_t *ret_n) {
        if (!fconnected) return -ECONNRESET;
        char *kids[FMAX + 1];
        size_t n = fchildren(path, kids);
        char **v = xnew(char *, n + 1);
        for (size_t i = 0; i < n; i++) v[i] = xstrdup(kids[i]);
        *ret_children = v;
        if (ret_n) *ret_n = n;
        return 0;
}
int zk_wait_change(struct zk *zk, const char *path, int timeout_ms) { fail(); return -ENOTSUP; }

int fake_teardown(void **state) {
        zk_release_queue_free(frq);
        frq = NULL;
        return 0;
}
