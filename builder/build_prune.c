/* build_prune.c — the stage cache kept within an age and a size.
 *
 * DESIGN: the directory is read into items (build_prune.h): the root
 * tarball, each disk with the entries naming it, each converted output with
 * its digests, each entry naming no usable disk. A disk's parent is the disk
 * its qcow2 header names as backing file, so removing an item removes what
 * is built on it, and an item counts as recently used when anything built on
 * it is. Before deciding, every item is locked exclusively without waiting:
 * its held files (tarball, disks, outputs: builds take shared locks on
 * those) and its keys' build locks (<key>.lock). An item that cannot be
 * locked is in use and pinned, with everything it needs; the locks stay
 * until the end, so nothing starts using an item between the decision and
 * its removal (a build that wanted it finds it gone and rebuilds). Only names
 * that follow the cache layout exactly are touched. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "build.h"
#include "build_prune.h"
#include "dbuf.h"
#include "model.h"

/* ---- decision --------------------------------------------------------------- */

static const char *const verdict_table[_BUILD_PRUNE_VERDICT_MAX] = {
        [BUILD_PRUNE_KEEP] = "kept",
        [BUILD_PRUNE_BROKEN] = "unusable",
        [BUILD_PRUNE_AGE] = "unused for too long",
        [BUILD_PRUNE_SIZE] = "over the size limit",
};

const char *build_prune_verdict_to_string(enum build_prune_verdict v) {
        return v >= 0 && v < _BUILD_PRUNE_VERDICT_MAX ? verdict_table[v] : NULL;
}

/* Whether item i descends from item a (i != a), following at most n links. */
static bool descends(const struct build_prune_item *items, size_t n, size_t i, size_t a) {
        ssize_t p = items[i].parent;
        for (size_t steps = 0; p >= 0 && steps < n; steps++) {
                if ((size_t)p == a) return true;
                p = items[p].parent;
        }
        return false;
}

static void remove_subtree(const struct build_prune_item *items, size_t n, const bool *cyc, size_t a,
                           enum build_prune_verdict why, enum build_prune_verdict *ret) {
        ret[a] = why;
        for (size_t i = 0; i < n; i++)
                if (!cyc[i] && ret[i] == BUILD_PRUNE_KEEP && descends(items, n, i, a)) ret[i] = why;
}

void build_prune_decide(const struct build_prune_item *items, size_t n, uint64_t total, int64_t now,
                        int64_t max_age, uint64_t max_size, enum build_prune_verdict *ret) {
        _cleanup_free_ int64_t *use = xnew(int64_t, n + 1);
        _cleanup_free_ bool *pin = xnew(bool, n + 1);
        _cleanup_free_ bool *cyc = xnew(bool, n + 1);
        _cleanup_free_ size_t *kids = xnew(size_t, n + 1);

        for (size_t i = 0; i < n; i++) {
                use[i] = items[i].last_use;
                pin[i] = items[i].pinned;
                ret[i] = BUILD_PRUNE_KEEP;
                /* A chain that does not end within n links loops. */
                ssize_t p = items[i].parent;
                size_t steps = 0;
                while (p >= 0 && p < (ssize_t)n && steps <= n) {
                        p = items[p].parent;
                        steps++;
                }
                cyc[i] = steps > n || p >= (ssize_t)n;
        }
        /* An item is used when anything built on it is, and pinned likewise. */
        for (size_t i = 0; i < n; i++) {
                if (cyc[i]) continue;
                for (ssize_t p = items[i].parent; p >= 0; p = items[p].parent) {
                        use[p] = MAX(use[p], items[i].last_use);
                        pin[p] = pin[p] || items[i].pinned;
                }
        }

        for (size_t i = 0; i < n; i++)
                if ((items[i].broken || cyc[i]) && !pin[i] && ret[i] == BUILD_PRUNE_KEEP)
                        remove_subtree(items, n, cyc, i, BUILD_PRUNE_BROKEN, ret);
        if (max_age > 0)
                for (size_t i = 0; i < n; i++)
                        if (ret[i] == BUILD_PRUNE_KEEP && !pin[i] && use[i] < now - max_age)
                                remove_subtree(items, n, cyc, i, BUILD_PRUNE_AGE, ret);
        if (max_size == 0) return;

        uint64_t left = total;
        for (size_t i = 0; i < n; i++) {
                if (ret[i] != BUILD_PRUNE_KEEP) left -= MIN(left, items[i].bytes);
                else if (!cyc[i] && items[i].parent >= 0) kids[items[i].parent]++;
        }
        /* Least recently used first, leaves only: a parent is never older than its children. */
        while (left > max_size) {
                ssize_t best = -1;
                for (size_t i = 0; i < n; i++) {
                        if (ret[i] != BUILD_PRUNE_KEEP || pin[i] || kids[i] > 0) continue;
                        if (best < 0 || use[i] < use[best]) best = (ssize_t)i;
                }
                if (best < 0) break;
                ret[best] = BUILD_PRUNE_SIZE;
                left -= MIN(left, items[best].bytes);
                if (!cyc[best] && items[best].parent >= 0) kids[items[best].parent]--;
        }
}

/* ---- limits ----------------------------------------------------------------- */

/* A non-negative decimal number and the rest of S. */
static int parse_number(const char *s, double *ret, const char **rest) {
        if (!s || !(*s >= '0' && *s <= '9')) return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || !isfinite(v) || v < 0) return -EINVAL;
        *ret = v;
        *rest = end;
        return 0;
}

int build_prune_parse_age(const char *s, int64_t *ret) {
        double v;
        const char *u;
        if (parse_number(s, &v, &u) < 0) return -EINVAL;
        double mult;
        if (!*u || strcmp(u, "d") == 0) mult = 86400;
        else if (strcmp(u, "h") == 0) mult = 3600;
        else if (strcmp(u, "m") == 0) mult = 60;
        else if (strcmp(u, "s") == 0) mult = 1;
        else return -EINVAL;
        if (v * mult > 100.0 * 365 * 86400) return -EINVAL; /* a century: surely a typo */
        *ret = (int64_t)(v * mult);
        return 0;
}

int build_prune_parse_size(const char *s, uint64_t *ret) {
        double v;
        const char *u;
        if (parse_number(s, &v, &u) < 0) return -EINVAL;
        static const struct {
                char c;
                double mult;
        } units[] = { { 'K', 1024.0 }, { 'M', 1024.0 * 1024 }, { 'G', 1024.0 * 1024 * 1024 },
                      { 'T', 1024.0 * 1024 * 1024 * 1024 } };
        double mult = 0;
        if (!*u) mult = units[2].mult;
        else if (strcmp(u, "B") == 0) mult = 1;
        else
                for (size_t i = 0; i < ELEMENTSOF(units); i++)
                        if (toupper((unsigned char)u[0]) == units[i].c &&
                            (!u[1] || strcasecmp(u + 1, "B") == 0 || strcasecmp(u + 1, "iB") == 0))
                                mult = units[i].mult;
        if (mult == 0 || v * mult > 1e18) return -EINVAL;
        *ret = (uint64_t)(v * mult);
        return 0;
}

int build_prune_limits_from_env(int64_t *ret_max_age, uint64_t *ret_max_size, char **errmsg) {
        int64_t age = BUILD_PRUNE_DEFAULT_MAX_AGE;
        uint64_t size = BUILD_PRUNE_DEFAULT_MAX_SIZE;
        const char *a = getenv("POOLD_STAGE_CACHE_MAX_AGE"), *s = getenv("POOLD_STAGE_CACHE_MAX_SIZE");
        if (a && *a && build_prune_parse_age(a, &age) < 0) {
                *errmsg = xasprintf("POOLD_STAGE_CACHE_MAX_AGE='%s' is not an age (e.g. 14d, 36h, 0 for none)", a);
                return -EINVAL;
        }
        if (s && *s && build_prune_parse_size(s, &size) < 0) {
                *errmsg = xasprintf("POOLD_STAGE_CACHE_MAX_SIZE='%s' is not a size (e.g. 20G, 500M, 0 for none)", s);
                return -EINVAL;
        }
        *ret_max_age = age;
        *ret_max_size = size;
        return 0;
}

char *build_prune_format_size(uint64_t bytes) {
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double)bytes;
        size_t u = 0;
        while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        if (u == 0) return xasprintf("%" PRIu64 " B", bytes);
        return xasprintf(v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

char *build_prune_format_age(int64_t s) {
        if (s >= 2 * 86400) return xasprintf("%" PRId64 " days", s / 86400);
        if (s >= 2 * 3600) return xasprintf("%" PRId64 " h", s / 3600);
        if (s >= 2 * 60) return xasprintf("%" PRId64 " min", s / 60);
        return xasprintf("%" PRId64 " s", s < 0 ? 0 : s);
}

/* ---- names ------------------------------------------------------------------ */

#define KEY_LEN (SHA256_HEX_SIZE - 1)
#define NONCE_LEN 16
#define OUT_HASH_LEN 32

static bool is_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
        return true;
}

static bool has_key_prefix(const char *name) {
        return strlen(name) > KEY_LEN && is_hex(name, KEY_LEN);
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "<key><suffix>" exactly. */
static bool is_key_file(const char *name, const char *suffix) {
        return has_key_prefix(name) && strcmp(name + KEY_LEN, suffix) == 0;
}

/* "<key>-<16 hex>.qcow2" */
static bool is_disk_file(const char *name) {
        return has_key_prefix(name) && name[KEY_LEN] == '-' && strlen(name) == KEY_LEN + 1 + NONCE_LEN + 6 &&
               is_hex(name + KEY_LEN + 1, NONCE_LEN) && strcmp(name + KEY_LEN + 1 + NONCE_LEN, ".qcow2") == 0;
}

/* "out-<32 hex>.<format>", and with ".md5"/".sha256" (*ret_sum). */
static bool is_out_file(const char *name, bool *ret_sum) {
        if (strncmp(name, "out-", 4) != 0 || strlen(name) < 4 + OUT_HASH_LEN + 2 || !is_hex(name + 4, OUT_HASH_LEN) ||
            name[4 + OUT_HASH_LEN] != '.')
                return false;
        const char *rest = name + 4 + OUT_HASH_LEN + 1;
        for (int f = 0; f < _BUILD_FORMAT_MAX; f++) {
                const char *fs = build_format_to_string((enum build_format)f);
                size_t l = strlen(fs);
                if (strncmp(rest, fs, l) != 0) continue;
                if (!rest[l] || strcmp(rest + l, ".md5") == 0 || strcmp(rest + l, ".sha256") == 0) {
                        *ret_sum = rest[l] != '\0';
                        return true;
                }
        }
        return false;
}

/* The output a digest file belongs to: the name without ".md5"/".sha256". */
static char *out_base(const char *name) {
        const char *dot = strrchr(name, '.');
        bool sum;
        if (is_out_file(name, &sum) && sum) return xstrndup(name, (size_t)(dot - name));
        return xstrdup(name);
}

/* ---- scan -------------------------------------------------------------------- */

enum item_kind { ITEM_TAR, ITEM_DISK, ITEM_OUT, ITEM_ENTRY };

struct file {
        char *name;
        uint64_t bytes;
        bool last_link; /* removing it frees its blocks */
        int64_t mtime;
};

struct item {
        enum item_kind kind;
        char *main;             /* tarball, disk, output or entry file name */
        char **keys;            /* keys whose build locks cover it */
        char **files;           /* every file of the item; entries before the disk */
        char *backing;          /* disk: its backing file name, "" for none, NULL if unreadable */
        struct build_prune_item d;
        size_t depth;
};

struct scan {
        const char *dir;
        int dfd;
        struct file *files;
        size_t n_files;
        struct item *items;
        size_t n_items;
        char **locks;           /* <key>.lock files present */
        char **tmps;            /* *.tmp files of ours */
        struct { char *name; int fd; } *held; /* files we locked (fd -1: someone else holds it) */
        size_t n_held;
        uint64_t total;
};

static struct file *file_find(struct scan *s, const char *name) {
        for (size_t i = 0; i < s->n_files; i++)
                if (strcmp(s->files[i].name, name) == 0) return &s->files[i];
        return NULL;
}

static struct item *item_new(struct scan *s, enum item_kind kind, const char *main, const char *key) {
        s->items = xrealloc(s->items, (s->n_items + 1) * sizeof *s->items);
        struct item *it = &s->items[s->n_items++];
        *it = (struct item){ .kind = kind, .main = xstrdup(main), .keys = model_strv_new(),
                             .files = model_strv_new(), .d = { .parent = -1 } };
        if (key) model_strv_push(&it->keys, key);
        return it;
}

static void item_add_file(struct scan *s, struct item *it, const char *name) {
        struct file *f = file_find(s, name);
        model_strv_push(&it->files, name);
        if (!f) return;
        it->d.bytes += f->bytes;
        it->d.last_use = MAX(it->d.last_use, f->mtime);
}

static char *key_of(const char *name) {
        return xstrndup(name, KEY_LEN);
}

static void read_dir(struct scan *s, DIR *d) {
        struct dirent *de;
        while ((de = readdir(d))) {
                const char *n = de->d_name;
                bool sum;
                bool ours = is_key_file(n, ".tar") || is_key_file(n, ".disk") || is_key_file(n, ".lock") ||
                            is_disk_file(n) || is_out_file(n, &sum) ||
                            (ends_with(n, ".tmp") && (has_key_prefix(n) || strncmp(n, "out-", 4) == 0));
                if (!ours) continue;
                struct stat st;
                if (fstatat(s->dfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) continue;
                s->files = xrealloc(s->files, (s->n_files + 1) * sizeof *s->files);
                s->files[s->n_files++] = (struct file){ .name = xstrdup(n), .bytes = (uint64_t)st.st_blocks * 512,
                                                        .last_link = st.st_nlink <= 1, .mtime = st.st_mtim.tv_sec };
                s->total += (uint64_t)st.st_blocks * 512;
        }
}

static struct item *find_disk(struct scan *s, const char *name) {
        for (size_t i = 0; i < s->n_items; i++)
                if (s->items[i].kind == ITEM_DISK && strcmp(s->items[i].main, name) == 0) return &s->items[i];
        return NULL;
}

static void build_items(struct scan *s) {
        /* Tarballs, disks and outputs first: entries attach to disks. */
        for (size_t i = 0; i < s->n_files; i++) {
                const char *n = s->files[i].name;
                bool sum;
                if (is_key_file(n, ".tar")) {
                        _cleanup_free_ char *k = key_of(n);
                        item_add_file(s, item_new(s, ITEM_TAR, n, k), n);
                } else if (is_disk_file(n)) {
                        _cleanup_free_ char *k = key_of(n), *p = xasprintf("%s/%s", s->dir, n);
                        struct item *it = item_new(s, ITEM_DISK, n, k);
                        item_add_file(s, it, n);
                        char *backing = NULL;
                        if (build_qcow2_backing(p, &backing) >= 0) it->backing = backing;
                } else if (is_key_file(n, ".lock"))
                        model_strv_push(&s->locks, n);
                else if (ends_with(n, ".tmp"))
                        model_strv_push(&s->tmps, n);
                else if (is_out_file(n, &sum)) {
                        _cleanup_free_ char *base = out_base(n);
                        struct item *it = NULL;
                        for (size_t k = 0; k < s->n_items && !it; k++)
                                if (s->items[k].kind == ITEM_OUT && strcmp(s->items[k].main, base) == 0)
                                        it = &s->items[k];
                        if (!it) it = item_new(s, ITEM_OUT, base, NULL);
                        item_add_file(s, it, n);
                }
        }
        for (size_t i = 0; i < s->n_files; i++) {
                const char *n = s->files[i].name;
                if (!is_key_file(n, ".disk")) continue;
                _cleanup_free_ char *k = key_of(n);
                _cleanup_free_ char *path = xasprintf("%s/%s", s->dir, n), *target = NULL;
                struct dbuf b = DBUF_INIT(4096);
                if (dbuf_read_file(&b, path) == 0) {
                        target = dbuf_take(&b, NULL);
                        target[strcspn(target, "\n")] = '\0';
                } else
                        dbuf_free(&b);
                struct item *disk = target ? find_disk(s, target) : NULL;
                if (disk) {
                        /* The entry goes before the disk, so nobody finds an entry without its disk. */
                        model_strv_push(&disk->files, n);
                        size_t len = model_strv_length(disk->files);
                        char *e = disk->files[len - 1];
                        memmove(disk->files + 1, disk->files, (len - 1) * sizeof(char *));
                        disk->files[0] = e;
                        struct file *f = file_find(s, n);
                        disk->d.bytes += f->bytes;
                        disk->d.last_use = MAX(disk->d.last_use, f->mtime);
                        if (!model_strv_contains(disk->keys, k)) model_strv_push(&disk->keys, k);
                } else {
                        struct item *it = item_new(s, ITEM_ENTRY, n, k);
                        item_add_file(s, it, n);
                        it->d.broken = true;
                }
        }
        /* Backing chains; a disk whose chain cannot be followed is unusable. */
        for (size_t i = 0; i < s->n_items; i++) {
                struct item *it = &s->items[i];
                if (it->kind != ITEM_DISK) continue;
                if (!it->backing) it->d.broken = true;
                else if (*it->backing) {
                        struct item *p = strchr(it->backing, '/') ? NULL : find_disk(s, it->backing);
                        if (p) it->d.parent = p - s->items;
                        else it->d.broken = true;
                }
        }
        for (size_t i = 0; i < s->n_items; i++) {
                size_t depth = 0;
                for (ssize_t p = s->items[i].d.parent; p >= 0 && depth <= s->n_items; p = s->items[p].d.parent)
                        depth++;
                s->items[i].depth = depth;
        }
}

/* Lock NAME exclusively without waiting, once per scan; the lock is kept
 * until the scan ends. True when we hold it (or it does not exist). */
static bool lock_file(struct scan *s, const char *name) {
        for (size_t i = 0; i < s->n_held; i++)
                if (strcmp(s->held[i].name, name) == 0) return s->held[i].fd >= 0;
        int fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return errno == ENOENT;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                close(fd);
                fd = -1;
        }
        s->held = xrealloc(s->held, (s->n_held + 1) * sizeof *s->held);
        s->held[s->n_held].name = xstrdup(name);
        s->held[s->n_held++].fd = fd;
        return fd >= 0;
}

static bool lock_key(struct scan *s, const char *key) {
        _cleanup_free_ char *l = xasprintf("%s.lock", key);
        return lock_file(s, l);
}

static bool lock_item(struct scan *s, struct item *it) {
        bool ok = true;
        for (size_t k = 0; it->keys[k]; k++) ok = lock_key(s, it->keys[k]) && ok;
        /* Builds hold the tarball, the disks and the outputs they read. */
        if (it->kind != ITEM_ENTRY && file_find(s, it->main)) ok = lock_file(s, it->main) && ok;
        return ok;
}

static void scan_done(struct scan *s) {
        for (size_t i = 0; i < s->n_files; i++) free(s->files[i].name);
        free(s->files);
        for (size_t i = 0; i < s->n_items; i++) {
                free(s->items[i].main);
                free(s->items[i].backing);
                model_strv_free(s->items[i].keys);
                model_strv_free(s->items[i].files);
        }
        free(s->items);
        model_strv_free(s->locks);
        model_strv_free(s->tmps);
        for (size_t i = 0; i < s->n_held; i++) {
                if (s->held[i].fd >= 0) close(s->held[i].fd);
                free(s->held[i].name);
        }
        free(s->held);
        if (s->dfd >= 0) close(s->dfd);
}

/* ---- removal ------------------------------------------------------------------- */

/* Unlink NAME; 0 or -errno (a file already gone counts as removed). Adds what it frees. */
static int remove_file(struct scan *s, const char *name, bool dry_run, uint64_t *freed, uint64_t *bytes) {
        struct file *f = file_find(s, name);
        if (!dry_run && unlinkat(s->dfd, name, 0) < 0 && errno != ENOENT) return negative_errno();
        if (f) {
                *bytes += f->bytes;
                if (f->last_link) *freed += f->bytes;
        }
        return 0;
}

/* A temporary file of a build that is gone: "<key>...tmp" whose key nobody
 * holds, or "out-....<pid>.tmp" of a process that no longer exists. */
static bool tmp_abandoned(struct scan *s, const char *name) {
        if (has_key_prefix(name)) {
                _cleanup_free_ char *k = key_of(name);
                return lock_key(s, k);
        }
        _cleanup_free_ char *copy = xstrndup(name, strlen(name) - 4);
        const char *dot = strrchr(copy, '.');
        if (!dot) return false;
        char *end;
        long pid = strtol(dot + 1, &end, 10);
        if (*end || pid <= 0) return false;
        return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static bool key_in_use(struct scan *s, const char *key, const enum build_prune_verdict *v) {
        for (size_t i = 0; i < s->n_items; i++)
                if (v[i] == BUILD_PRUNE_KEEP && model_strv_contains(s->items[i].keys, key)) return true;
        for (size_t i = 0; s->tmps[i]; i++)
                if (strncmp(s->tmps[i], key, KEY_LEN) == 0) return true;
        return false;
}

int build_cache_prune(const char *dir, const char *const *keep, int64_t now, int64_t max_age, uint64_t max_size,
                      bool dry_run, struct build_prune_report *ret) {
        struct scan s = { .dir = dir, .dfd = -1, .locks = model_strv_new(), .tmps = model_strv_new() };
        struct build_prune_report rep = {};
        DIR *d = opendir(dir);
        if (!d) {
                int r = negative_errno();
                scan_done(&s);
                return r;
        }
        s.dfd = dup(dirfd(d));
        read_dir(&s, d);
        closedir(d);
        if (s.dfd < 0) {
                int r = negative_errno();
                scan_done(&s);
                return r;
        }
        build_items(&s);

        _cleanup_free_ struct build_prune_item *items = xnew(struct build_prune_item, s.n_items + 1);
        _cleanup_free_ enum build_prune_verdict *v = xnew(enum build_prune_verdict, s.n_items + 1);
        for (size_t i = 0; i < s.n_items; i++) {
                struct item *it = &s.items[i];
                for (size_t k = 0; keep && keep[k] && !it->d.pinned; k++)
                        it->d.pinned = model_strv_contains(it->files, keep[k]) || strcmp(it->main, keep[k]) == 0;
                if (!lock_item(&s, it)) it->d.pinned = true;
                items[i] = it->d;
        }
        build_prune_decide(items, s.n_items, s.total, now, max_age, max_size, v);

        /* Deepest first, so a disk goes only after what is built on it. */
        _cleanup_free_ bool *blocked = xnew(bool, s.n_items + 1);
        size_t max_depth = 0;
        for (size_t i = 0; i < s.n_items; i++) max_depth = MAX(max_depth, s.items[i].depth);
        uint64_t gone = 0;
        for (size_t depth = max_depth + 1; depth-- > 0;)
                for (size_t i = 0; i < s.n_items; i++) {
                        struct item *it = &s.items[i];
                        if (it->depth != depth || v[i] == BUILD_PRUNE_KEEP) continue;
                        uint64_t bytes = 0;
                        int r = blocked[i] ? -EBUSY : 0;
                        for (size_t k = 0; r == 0 && it->files[k]; k++)
                                r = remove_file(&s, it->files[k], dry_run, &rep.freed, &bytes);
                        gone += bytes;
                        if (r < 0) {
                                /* Kept after all, with what it needs. */
                                v[i] = BUILD_PRUNE_KEEP;
                                for (ssize_t p = it->d.parent, n = 0; p >= 0 && n <= (ssize_t)s.n_items;
                                     p = s.items[p].d.parent, n++)
                                        blocked[p] = true;
                                continue;
                        }
                        rep.removed = xrealloc(rep.removed, (rep.n_removed + 1) * sizeof *rep.removed);
                        rep.removed[rep.n_removed++] = (struct build_prune_removed){
                                .name = xstrdup(it->main), .bytes = bytes, .last_use = it->d.last_use, .why = v[i]
                        };
                }

        for (size_t i = 0; s.tmps[i]; i++) {
                uint64_t bytes = 0;
                if (tmp_abandoned(&s, s.tmps[i]) && remove_file(&s, s.tmps[i], dry_run, &rep.freed, &bytes) == 0) {
                        gone += bytes;
                        rep.n_garbage++;
                }
        }
        for (size_t i = 0; s.locks[i]; i++) {
                _cleanup_free_ char *k = key_of(s.locks[i]);
                uint64_t bytes = 0;
                /* We hold it (lock_file) when we remove it: build_cache_lock checks it still
                 * locked the file that has the name. */
                if (key_in_use(&s, k, v) || !lock_file(&s, s.locks[i])) continue;
                if (remove_file(&s, s.locks[i], dry_run, &rep.freed, &bytes) == 0) {
                        gone += bytes;
                        rep.n_garbage++;
                }
        }

        rep.n_items = s.n_items;
        for (size_t i = 0; i < s.n_items; i++) rep.n_pinned += items[i].pinned;
        rep.total_before = s.total;
        rep.total_after = s.total - MIN(s.total, gone);
        scan_done(&s);
        *ret = rep;
        return 0;
}

void build_prune_report_done(struct build_prune_report *r) {
        for (size_t i = 0; i < r->n_removed; i++) free(r->removed[i].name);
        free(r->removed);
        *r = (struct build_prune_report){};
}

char *build_prune_report_text(const struct build_prune_report *r, int64_t now, int64_t max_age, uint64_t max_size,
                              bool dry_run) {
        struct dbuf d = DBUF_INIT(SIZE_MAX);
        _cleanup_free_ char *age = max_age > 0 ? build_prune_format_age(max_age) : xstrdup("no age limit");
        _cleanup_free_ char *size = max_size > 0 ? build_prune_format_size(max_size) : xstrdup("no size limit");
        _cleanup_free_ char *after = build_prune_format_size(r->total_after);
        for (size_t i = 0; i < r->n_removed; i++) {
                const struct build_prune_removed *x = &r->removed[i];
                _cleanup_free_ char *sz = build_prune_format_size(x->bytes);
                _cleanup_free_ char *ago = build_prune_format_age(now - x->last_use);
                if (dbuf_addf(&d, "stage cache: %s %s (%s, last used %s ago): %s\n", dry_run ? "would prune" : "pruned",
                              x->name, sz, ago, build_prune_verdict_to_string(x->why)) < 0)
                        abort();
        }
        size_t left = r->n_items - r->n_removed;
        int k;
        if (r->n_removed == 0 && r->n_garbage == 0)
                k = dbuf_addf(&d, "stage cache: %s in %zu entries, nothing to prune (limits: %s, %s)\n", after, left,
                              age, size);
        else {
                _cleanup_free_ char *freed = build_prune_format_size(r->freed);
                k = dbuf_addf(&d, "stage cache: %s %zu entries and %zu leftover files, %s %s; %s in %zu entries left "
                              "(limits: %s, %s)\n", dry_run ? "would prune" : "pruned", r->n_removed, r->n_garbage,
                              dry_run ? "would free" : "freed", freed, after, left, age, size);
        }
        if (k < 0) abort();
        if (max_size > 0 && r->total_after > max_size &&
            dbuf_adds(&d, "stage cache: still above its size limit: "
                          "the rest is in use or needed by the last build\n") < 0)
                abort();
        return dbuf_take(&d, NULL);
}
