/* zk_release.c — see zk_release.h.
 *
 * DESIGN. A list of entries, each a node to delete (or a prefix to look for
 * first) tagged with its session generation. An entry is sent when added and
 * on every CONNECTED; while its delete or listing is in flight it is not sent
 * again. The answer decides: gone (0 or -ENOENT) ends it; a lost connection
 * keeps it for the next CONNECTED (or sends it again at once when the
 * connection is already back, a few times); an ended session drops it; any
 * other refusal is final (logged at debug: nothing we could do about it). */
#include "zk_release.h"

#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

/* Re-sends at once while connected; then only the next CONNECTED sends again. */
#define QUICK_RETRIES 3

struct rel {
        struct zk_release_queue *q;
        char *dir, *name;       /* NAME: the node's name, or the prefix while PREFIX */
        bool prefix;
        bool in_flight;
        unsigned tries;
        uint64_t gen;
        struct rel *prev, *next;
};

struct zk_release_queue {
        struct zk *zk;
        struct rel *head;
        size_t n;
};

static void rel_free(struct rel *r) {
        struct zk_release_queue *q = r->q;
        if (r->prev) r->prev->next = r->next;
        else q->head = r->next;
        if (r->next) r->next->prev = r->prev;
        q->n--;
        free(r->dir);
        free(r->name);
        free(r);
}

static void on_listed(struct zk *zk, const struct zk_result *res, void *ud);
static void on_deleted(struct zk *zk, const struct zk_result *res, void *ud);

static void rel_send(struct rel *r) {
        struct zk *zk = r->q->zk;
        if (r->gen != zk_session_generation(zk)) {
                rel_free(r); /* the session that made the node is gone, and the node with it */
                return;
        }
        if (!zk_is_connected(zk)) return; /* the next CONNECTED sends it */
        r->in_flight = true;
        if (r->prefix) {
                (void)zk_aget_children(zk, r->dir, NULL, on_listed, r);
                return;
        }
        _cleanup_free_ char *path = xasprintf("%s/%s", r->dir, r->name);
        (void)zk_adelete(zk, path, -1, on_deleted, r);
}

static bool connection_lost(int e) { return e == -ECONNRESET || e == -ETIMEDOUT || e == -EAGAIN; }

/* The answer to R's request was error E: keep R or drop it. */
static void rel_failed(struct rel *r, int e, const char *path) {
        struct zk *zk = r->q->zk;
        if (!connection_lost(e) || r->gen != zk_session_generation(zk)) {
                if (e != -EKEYEXPIRED && e != -ESHUTDOWN)
                        log_debug_errno(e, "zk_release: giving up on %s: %m", path);
                rel_free(r);
                return;
        }
        log_debug_errno(e, "zk_release: %s: retrying after a reconnect: %m", path);
        /* Usually the connection is down now and CONNECTED resends; when it is
         * already back (the failure raced the reconnect), resend at once. */
        if (zk_is_connected(zk) && ++r->tries <= QUICK_RETRIES) rel_send(r);
}

static void on_deleted(struct zk *zk, const struct zk_result *res, void *ud) {
        struct rel *r = ud;
        r->in_flight = false;
        if (res->r == 0 || res->r == -ENOENT) {
                log_debug("zk_release: %s gone", res->path);
                rel_free(r);
                return;
        }
        rel_failed(r, res->r, res->path);
}

static void on_listed(struct zk *zk, const struct zk_result *res, void *ud) {
        struct rel *r = ud;
        r->in_flight = false;
        if (res->r == -ENOENT) { /* no directory, so no node either */
                rel_free(r);
                return;
        }
        if (res->r < 0) {
                rel_failed(r, res->r, res->path);
                return;
        }
        const char *found = NULL;
        size_t k = strlen(r->name);
        for (size_t i = 0; i < res->n_children && !found; i++)
                if (strncmp(res->children[i], r->name, k) == 0) found = res->children[i];
        if (!found) { /* the create never landed */
                rel_free(r);
                return;
        }
        free(r->name);
        r->name = xstrdup(found);
        r->prefix = false;
        r->tries = 0;
        rel_send(r);
}

static void on_state(struct zk *zk, enum zk_state s, void *ud) {
        struct zk_release_queue *q = ud;
        if (s != ZK_STATE_CONNECTED && s != ZK_STATE_EXPIRED) return;
        /* rel_send may free R: keep the next one first. */
        for (struct rel *r = q->head, *next; r; r = next) {
                next = r->next;
                if (r->in_flight) continue; /* its answer decides (an expiry fails it) */
                r->tries = 0;
                rel_send(r);
        }
}

int zk_release_queue_new(struct zk *zk, struct zk_release_queue **ret) {
        struct zk_release_queue *q = xnew(struct zk_release_queue, 1);
        q->zk = zk;
        zk_add_state_listener(zk, on_state, q);
        *ret = q;
        return 0;
}

void zk_release_queue_free(struct zk_release_queue *q) {
        if (!q) return;
        zk_remove_state_listener(q->zk, on_state, q);
        while (q->head) {
                if (q->head->in_flight) zk_cancel(q->zk, q->head);
                rel_free(q->head);
        }
        free(q);
}

static void rel_add(struct zk_release_queue *q, const char *dir, const char *name, bool prefix, uint64_t gen) {
        struct rel *r = xnew(struct rel, 1);
        r->q = q;
        r->dir = xstrdup(dir);
        r->name = xstrdup(name);
        r->prefix = prefix;
        r->gen = gen;
        r->next = q->head;
        if (q->head) q->head->prev = r;
        q->head = r;
        q->n++;
        rel_send(r);
}

void zk_release_path(struct zk_release_queue *q, const char *path, uint64_t gen) {
        const char *slash = strrchr(path, '/');
        if (!slash || slash == path || !slash[1]) return; /* not a child node: nothing of ours */
        _cleanup_free_ char *dir = xstrndup(path, (size_t)(slash - path));
        rel_add(q, dir, slash + 1, false, gen);
}

void zk_release_prefix(struct zk_release_queue *q, const char *dir, const char *prefix, uint64_t gen) {
        if (!prefix || !*prefix) return; /* an empty prefix would match anybody's node */
        rel_add(q, dir, prefix, true, gen);
}

size_t zk_release_pending(struct zk_release_queue *q) { return q ? q->n : 0; }
