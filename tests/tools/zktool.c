/* zktool — drives shared/zk/ (zk*.c) and component.c for the integration tests.
 *
 *   zktool HOSTS [SESSION_TIMEOUT_MS [CA CERT KEY]]
 *
 * With CA CERT KEY (PEM files) it connects over TLS, as zookeeper-tls does.
 * Reads one command per line on stdin and answers one line on stdout per
 * command. Asynchronous news is printed on lines of its own, starting with
 * "STATE " (session changes), "CACHE " (tree cache events) or "ASYNC "
 * (async lock results), so a reader can tell them from answers.
 *
 * Commands: lock PATH [IDENT] | trylock PATH [IDENT] | atrylock PATH [IDENT] |
 * acquire-timeout PATH MS | release PATH | held PATH | node PATH | islocked PATH |
 * contenders PATH | register KIND HOSTNAME [VERSION] | set-state STATE |
 * component-set KEY JSON | update | unregister | components KIND |
 * watch ROOT DEPTH [locks] | cache-get PATH | cache-count | session |
 * rec-update PATH LOCK DATA [race] | rec-update-sync PATH LOCK DATA | quit
 *
 * rec-update runs zk_update_start() (its outcome on an "ASYNC update" line),
 * rec-update-sync zk_update_run(): both replace PATH's data with DATA under
 * the lock LOCK. With "race" the edit first writes PATH itself, ignoring the
 * lock (as a careless writer would), so the conditional write must fail. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "component.h"
#include "log.h"
#include "zk.h"
#include "zk_cache.h"
#include "zk_lock.h"
#include "zk_update.h"

#define MAX_LOCKS 64
#define MAX_CACHES 8
#define MAX_UPDATES 16

struct rec_update {
        struct tool *t;
        struct zk_update *u;
        char *path, *data;
        bool race;
        char saw[64];           /* the data the edit was given */
};

struct tool {
        struct zk *zk;
        struct zk_lock *locks[MAX_LOCKS];
        size_t n_locks;
        struct component *comp;
        struct zk_cache *caches[MAX_CACHES];
        size_t n_caches;
        struct rec_update *updates[MAX_UPDATES];
        size_t n_updates;
};

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static struct zk_lock *lock_for(struct tool *t, const char *path, const char *ident, bool create) {
        for (size_t i = 0; i < t->n_locks; i++)
                if (strcmp(zk_lock_path(t->locks[i]), path) == 0) return t->locks[i];
        if (!create || t->n_locks == MAX_LOCKS) return NULL;
        struct zk_lock *l;
        if (zk_lock_new(t->zk, path, ident, &l) < 0) return NULL;
        t->locks[t->n_locks++] = l;
        return l;
}

static void on_state(struct zk *zk, enum zk_state s, void *userdata) { say("STATE %s", zk_state_to_string(s)); }

static void on_async_lock(struct zk_lock *l, int result, void *userdata) {
        if (result < 0)
                say("ASYNC %s error %s", zk_lock_path(l), strerror(-result));
        else
                say("ASYNC %s %s", zk_lock_path(l), result ? "acquired" : "busy");
}

static void on_cache(struct zk_cache *c, enum zk_cache_event ev, const struct zk_cache_node *n, void *userdata) {
        say("CACHE %s %s %u %.*s", zk_cache_event_to_string(ev), n->path, n->lock_contenders, (int)MIN(n->len, 200),
            n->data ? n->data : "");
}

static void on_synced(struct zk_cache *c, void *userdata) { say("CACHE SYNCED %s", zk_cache_root(c)); }

static void err(const char *what, int r) { say("error %s %s", what, strerror(-r)); }

static const char *const step_names[_ZK_UPDATE_STEP_MAX] = { "lock", "read", "edit", "write" };

static int rec_edit(struct zk_update_record *rec, void *userdata) {
        struct rec_update *ru = userdata;
        snprintf(ru->saw, sizeof ru->saw, "%.*s", (int)MIN(rec->len, (size_t)60), rec->data ? rec->data : "");
        if (ru->race) {
                int r = zk_set(ru->t->zk, rec->path, "racer", 5, -1, NULL);
                if (r < 0) return r;
        }
        rec->new_data = xstrdup(ru->data);
        rec->new_len = strlen(ru->data);
        return ZK_UPDATE_WRITE;
}

static void rec_done(int r, enum zk_update_step at, struct zk_lock *lock, void *userdata) {
        struct rec_update *ru = userdata;
        say("ASYNC update %s r=%d at=%s saw=%s", ru->path, r, step_names[at], ru->saw);
}

static void on_multi(struct zk *zk, const struct zk_result *res, void *userdata) {
        say("ASYNC multi %s", res->r < 0 ? strerror(-res->r) : "ok");
}

static void rec_update_free(struct rec_update *ru) {
        zk_update_free(ru->u);
        free(ru->path);
        free(ru->data);
        free(ru);
}

static bool command(struct tool *t, char *line) {
        char *argv[8] = { 0 };
        int argc = 0;
        for (char *save = NULL, *tok = strtok_r(line, " \t", &save); tok && argc < 8;
             tok = strtok_r(NULL, " \t", &save))
                argv[argc++] = tok;
        if (argc == 0) return true;
        const char *cmd = argv[0];
        int r;

        if (strcmp(cmd, "quit") == 0) {
                say("bye");
                return false;
        } else if (strcmp(cmd, "session") == 0) {
                say("%s timeout=%d gen=%llu", zk_is_connected(t->zk) ? "connected" : "disconnected",
                    zk_session_timeout(t->zk), (unsigned long long)zk_session_generation(t->zk));
        } else if (argc >= 2 && (strcmp(cmd, "lock") == 0 || strcmp(cmd, "acquire-timeout") == 0)) {
                struct zk_lock *l = lock_for(t, argv[1], strcmp(cmd, "lock") == 0 ? argv[2] : NULL, true);
                int timeout = strcmp(cmd, "lock") == 0 ? -1 : (argc >= 3 ? atoi(argv[2]) : 0);
                r = l ? zk_lock_acquire(l, timeout) : -ENOMEM;
                if (r == -ETIMEDOUT)
                        say("timeout");
                else if (r < 0)
                        err(cmd, r);
                else
                        say("acquired");
        } else if (argc >= 2 && strcmp(cmd, "trylock") == 0) {
                struct zk_lock *l = lock_for(t, argv[1], argv[2], true);
                r = l ? zk_lock_try(l) : -ENOMEM;
                if (r < 0)
                        err(cmd, r);
                else
                        say("%s", r ? "acquired" : "busy");
        } else if (argc >= 2 && (strcmp(cmd, "atrylock") == 0 || strcmp(cmd, "atrylock-fresh") == 0)) {
                /* atrylock-fresh: the directory is taken to be new (zk_lock_set_fresh) */
                struct zk_lock *l = lock_for(t, argv[1], argv[2], true);
                if (l && strcmp(cmd, "atrylock-fresh") == 0) zk_lock_set_fresh(l);
                r = l ? zk_lock_try_async(l, on_async_lock, NULL) : -ENOMEM;
                if (r < 0)
                        err(cmd, r);
                else
                        say("started");
        } else if (argc >= 2 && strcmp(cmd, "release") == 0) {
                struct zk_lock *l = lock_for(t, argv[1], NULL, false);
                r = l ? zk_lock_release(l) : -ENOENT;
                if (r < 0)
                        err(cmd, r);
                else
                        say("released");
        } else if (argc >= 4 && (strcmp(cmd, "rec-update") == 0 || strcmp(cmd, "rec-update-sync") == 0)) {
                bool sync = strcmp(cmd, "rec-update-sync") == 0;
                if (!sync && t->n_updates == MAX_UPDATES) {
                        err(cmd, -ENOSPC);
                        return true;
                }
                struct rec_update *ru = xnew(struct rec_update, 1);
                *ru = (struct rec_update){ .t = t, .path = xstrdup(argv[1]), .data = xstrdup(argv[3]),
                                           .race = argc >= 5 && strcmp(argv[4], "race") == 0 };
                struct zk_update_spec spec = { .path = argv[1], .lock_path = argv[2], .edit = rec_edit,
                                               .done = rec_done, .userdata = ru };
                if (sync) {
                        r = zk_update_run(t->zk, &spec, NULL);
                        say("updated r=%d saw=%s", r, ru->saw);
                        rec_update_free(ru);
                        return true;
                }
                r = zk_update_start(t->zk, &spec, &ru->u);
                if (r < 0) {
                        rec_update_free(ru);
                        err(cmd, r);
                } else {
                        t->updates[t->n_updates++] = ru;
                        say("started");
                }
        } else if (argc >= 2 && strcmp(cmd, "multi-delete") == 0) {
                /* multi-delete PATH...: one atomic multi request deleting each PATH in order */
                struct zk_multi_op ops[8];
                for (int i = 1; i < argc; i++)
                        ops[i - 1] = (struct zk_multi_op){ .kind = ZK_MULTI_DELETE, .path = argv[i], .version = -1 };
                r = zk_amulti(t->zk, ops, (size_t)argc - 1, on_multi, NULL);
                if (r < 0)
                        err(cmd, r);
                else
                        say("started");
        } else if (argc >= 2 && strcmp(cmd, "held") == 0) {
                struct zk_lock *l = lock_for(t, argv[1], NULL, false);
                say("%s", l && zk_lock_is_held(l) ? "held" : "not-held");
        } else if (argc >= 2 && strcmp(cmd, "node") == 0) {
                struct zk_lock *l = lock_for(t, argv[1], NULL, false);
                say("%s", l && zk_lock_node(l) ? zk_lock_node(l) : "-");
        } else if (argc >= 2 && strcmp(cmd, "islocked") == 0) {
                r = zk_is_locked(t->zk, argv[1]);
                if (r < 0)
                        err(cmd, r);
                else
                        say("%s", r ? "locked" : "unlocked");
        } else if (argc >= 2 && strcmp(cmd, "contenders") == 0) {
                char **names = NULL, **idents = NULL;
                size_t n = 0;
                r = zk_lock_contenders(t->zk, argv[1], &names, &idents, &n);
                if (r < 0)
                        err(cmd, r);
                else {
                        char out[4096] = "";
                        for (size_t i = 0; i < n; i++)
                                snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s=%s", i ? " " : "",
                                         names[i], idents[i]);
                        say("contenders %zu %s", n, out);
                }
                zk_strv_free(names);
                zk_strv_free(idents);
        } else if (argc >= 3 && strcmp(cmd, "register") == 0) {
                component_free(t->comp);
                t->comp = NULL;
                r = component_new(t->zk, argv[1], argv[2], argc >= 4 ? argv[3] : "1.0.0", &t->comp);
                if (r >= 0) r = component_register(t->comp);
                if (r < 0)
                        err(cmd, r);
                else
                        say("%s", component_path(t->comp));
        } else if (argc >= 2 && strcmp(cmd, "set-state") == 0) {
                r = t->comp ? component_set_state(t->comp, argv[1]) : -ENOENT;
                if (r >= 0) r = component_update(t->comp);
                if (r < 0)
                        err(cmd, r);
                else
                        say("ok");
        } else if (argc >= 3 && strcmp(cmd, "component-set") == 0) {
                json_error_t je;
                json_t *v = json_loads(argv[2], JSON_DECODE_ANY, &je);
                r = !v ? -EINVAL : t->comp ? component_set(t->comp, argv[1], v) : -ENOENT;
                json_decref(v);
                if (r < 0)
                        err(cmd, r);
                else
                        say("ok");
        } else if (strcmp(cmd, "update") == 0) {
                r = t->comp ? component_update(t->comp) : -ENOENT;
                if (r < 0)
                        err(cmd, r);
                else
                        say("ok");
        } else if (strcmp(cmd, "unregister") == 0) {
                r = t->comp ? component_unregister(t->comp) : -ENOENT;
                if (r < 0)
                        err(cmd, r);
                else
                        say("ok");
        } else if (argc >= 2 && strcmp(cmd, "components") == 0) {
                json_t *list = NULL;
                r = component_list(t->zk, argv[1], &list);
                if (r < 0)
                        err(cmd, r);
                else {
                        char *s = json_dumps(list, JSON_SORT_KEYS | JSON_COMPACT);
                        say("%s", s);
                        free(s);
                }
                json_decref(list);
        } else if (argc >= 3 && strcmp(cmd, "watch") == 0) {
                unsigned flags = argc >= 4 && strcmp(argv[3], "locks") == 0 ? ZK_CACHE_TRACK_LOCKS : 0;
                struct zk_cache *c = NULL;
                r = t->n_caches < MAX_CACHES ? zk_cache_new(t->zk, argv[1], atoi(argv[2]), flags, on_cache, t, &c)
                                             : -ENOSPC;
                if (r >= 0) {
                        zk_cache_set_synced_cb(c, on_synced, t);
                        t->caches[t->n_caches++] = c;
                        r = zk_cache_start(c);
                }
                if (r < 0)
                        err(cmd, r);
                else
                        say("watching");
        } else if (argc >= 2 && strcmp(cmd, "cache-get") == 0) {
                const struct zk_cache_node *n = NULL;
                for (size_t i = 0; i < t->n_caches && !n; i++) n = zk_cache_get(t->caches[i], argv[1]);
                if (!n)
                        say("absent");
                else
                        say("present v%d locks=%u %.*s", (int)n->version, n->lock_contenders, (int)MIN(n->len, 200),
                            n->data);
        } else if (strcmp(cmd, "cache-count") == 0) {
                size_t total = 0;
                for (size_t i = 0; i < t->n_caches; i++) total += zk_cache_size(t->caches[i]);
                say("count %zu", total);
        } else
                say("error unknown-command %s", cmd);
        return true;
}

int main(int argc, char **argv) {
        struct tool t = { 0 };
        int r;

        if (argc != 2 && argc != 3 && argc != 6) {
                fprintf(stderr, "usage: zktool HOSTS [SESSION_TIMEOUT_MS [CA CERT KEY]]\n");
                return 2;
        }
        log_setup("zktool", getenv("ZKTOOL_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING);
        struct zk_tls tls = { .ca = argc == 6 ? argv[3] : NULL, .cert = argc == 6 ? argv[4] : NULL,
                              .key = argc == 6 ? argv[5] : NULL };
        r = zk_new(argv[1], argc >= 3 ? atoi(argv[2]) : 10000, argc == 6 ? &tls : NULL, &t.zk);
        if (r < 0) return log_error_errno(r, "zk_new: %m"), 1;
        zk_add_state_listener(t.zk, on_state, &t);
        r = zk_connect_wait(t.zk, 15000);
        if (r < 0) {
                log_error_errno(r, "cannot connect to %s: %m", argv[1]);
                zk_free(t.zk);
                return 1;
        }
        say("ready");

        char buf[8192];
        size_t len = 0;
        bool running = true, eof = false;
        while (running && !eof) {
                struct pollfd pfd[2] = { { .fd = 0, .events = POLLIN }, { .fd = zk_event_fd(t.zk), .events = POLLIN } };
                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR) continue;
                        break;
                }
                if (pfd[1].revents & POLLIN) zk_dispatch(t.zk);
                if (pfd[0].revents & (POLLIN | POLLHUP)) {
                        ssize_t n = read(0, buf + len, sizeof buf - 1 - len);
                        if (n <= 0) eof = true;
                        if (n > 0) len += (size_t)n;
                        char *nl;
                        while (running && (nl = memchr(buf, '\n', len))) {
                                *nl = '\0';
                                running = command(&t, buf);
                                size_t used = (size_t)(nl - buf) + 1;
                                memmove(buf, buf + used, len - used);
                                len -= used;
                        }
                        if (len == sizeof buf - 1) len = 0; /* an overlong line: drop it */
                }
        }

        for (size_t i = 0; i < t.n_caches; i++) zk_cache_free(t.caches[i]);
        for (size_t i = 0; i < t.n_updates; i++) rec_update_free(t.updates[i]);
        component_free(t.comp);
        for (size_t i = 0; i < t.n_locks; i++) zk_lock_free(t.locks[i]);
        zk_free(t.zk);
        return 0;
}
