/* test_build_prune.c — the stage cache's pruning (builder/build_prune.c): the decision on synthetic items, the limits' syntax, and whole
 * prunes of synthetic cache directories whose disks are real qcow2 backing
 * chains made with qemu-img, with builds' holds and locks taken for real. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "build.h"
#include "build_prune.h"
#include "dbuf.h"
#include "model.h"

#define DAY 86400

/* ---- helpers ---------------------------------------------------------------- */

static char *mktree(void) {
        char *d = xstrdup("/tmp/test_build_pruneXXXXXX");
        assert_non_null(mkdtemp(d));
        return d;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }
static void rm_rf(const char *dir) { assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0); }

/* A stage key: 64 hex digits derived from a label. */
static char *key(const char *label) {
        char hex[SHA256_HEX_SIZE];
        digest_sha256_hex(label, strlen(label), hex);
        return xstrdup(hex);
}

/* A disk file name of key(label). */
static char *disk(const char *label) {
        _cleanup_free_ char *k = key(label);
        return xasprintf("%s-%016x.qcow2", k, (unsigned)strlen(label));
}

static char *out_name(const char *label, const char *ext) {
        _cleanup_free_ char *k = key(label);
        return xasprintf("out-%.32s.%s", k, ext);
}

static void put(const char *dir, const char *name, const char *content, size_t repeat) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        FILE *f = fopen(p, "we");
        assert_non_null(f);
        for (size_t i = 0; i < repeat; i++) fputs(content, f);
        assert_int_equal(fclose(f), 0);
}

static void qemu_img(const char *dir, const char *name, const char *backing) {
        _cleanup_free_ char *cmd =
                backing ? xasprintf("cd %s && qemu-img create -q -f qcow2 -F qcow2 -b %s %s", dir, backing, name)
                        : xasprintf("cd %s && qemu-img create -q -f qcow2 %s 16M", dir, name);
        assert_int_equal(system(cmd), 0);
}

/* An entry "<key(label)>.disk" naming DISK_NAME. */
static void entry(const char *dir, const char *label, const char *disk_name) {
        _cleanup_free_ char *k = key(label);
        assert_int_equal(build_cache_publish(dir, k, disk_name), 0);
}

static void age(const char *dir, const char *name, int64_t seconds_ago) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        struct timespec t[2] = { { .tv_sec = time(NULL) - seconds_ago }, { .tv_sec = time(NULL) - seconds_ago } };
        assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
}

static bool exists(const char *dir, const char *name) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static bool removed(const struct build_prune_report *r, const char *name, enum build_prune_verdict why) {
        for (size_t i = 0; i < r->n_removed; i++)
                if (strcmp(r->removed[i].name, name) == 0) return r->removed[i].why == why;
        return false;
}

/* ---- decision ----------------------------------------------------------------- */

/* Age: an old base disk stays while an overlay on it is recent; an old chain,
 * an old tarball go; recent outputs stay. */
static void test_decide_age_counts_use_of_what_is_built_on_an_item(void **state) {
        int64_t now = 100 * DAY;
        struct build_prune_item it[] = {
                { .bytes = 10, .last_use = now - 30 * DAY, .parent = -1 }, /* 0 old base ... */
                { .bytes = 10, .last_use = now - 1 * DAY, .parent = 0 },   /* 1 ... with a recent overlay */
                { .bytes = 10, .last_use = now - 30 * DAY, .parent = -1 }, /* 2 old chain */
                { .bytes = 10, .last_use = now - 20 * DAY, .parent = 2 },  /* 3 */
                { .bytes = 10, .last_use = now - 15 * DAY, .parent = -1 }, /* 4 old tarball */
                { .bytes = 10, .last_use = now, .parent = -1 },            /* 5 output */
        };
        enum build_prune_verdict v[6];
        build_prune_decide(it, 6, 60, now, 14 * DAY, 0, v);
        enum build_prune_verdict want[6] = { BUILD_PRUNE_KEEP, BUILD_PRUNE_KEEP, BUILD_PRUNE_AGE,
                                             BUILD_PRUNE_AGE,  BUILD_PRUNE_AGE,  BUILD_PRUNE_KEEP };
        for (size_t i = 0; i < 6; i++) assert_int_equal(v[i], want[i]);
        /* no limits: nothing goes */
        build_prune_decide(it, 6, 60, now, 0, 0, v);
        for (size_t i = 0; i < 6; i++) assert_int_equal(v[i], BUILD_PRUNE_KEEP);
}

/* A pinned item keeps what it is built on, however old or large, but not what is built on it. */
static void test_decide_pinned_keeps_its_chain(void **state) {
        int64_t now = 100 * DAY;
        struct build_prune_item it[] = {
                { .bytes = 100, .last_use = now - 50 * DAY, .parent = -1 },
                { .bytes = 100, .last_use = now - 50 * DAY, .parent = 0, .pinned = true },
                { .bytes = 100, .last_use = now - 50 * DAY, .parent = 1 },
        };
        enum build_prune_verdict v[3];
        build_prune_decide(it, 3, 300, now, DAY, 1, v);
        assert_int_equal(v[0], BUILD_PRUNE_KEEP);
        assert_int_equal(v[1], BUILD_PRUNE_KEEP);
        assert_int_equal(v[2], BUILD_PRUNE_AGE);
}

/* Size: least recently used first, only items nothing is built on, until
 * the total fits; a parent goes only after its children. */
static void test_decide_size_lru_leaves_first_until_it_fits(void **state) {
        struct build_prune_item it[] = {
                { .bytes = 10, .last_use = 100, .parent = -1 }, /* A: base of B, used through B at 300 */
                { .bytes = 10, .last_use = 300, .parent = 0 },  /* B */
                { .bytes = 10, .last_use = 200, .parent = -1 }, /* C */
                { .bytes = 10, .last_use = 50, .parent = -1 },  /* D: base of E, used through E at 400 */
                { .bytes = 10, .last_use = 400, .parent = 3 },  /* E */
                { .bytes = 10, .last_use = 10, .parent = -1, .pinned = true }, /* F: in use */
        };
        enum build_prune_verdict v[6];
        build_prune_decide(it, 6, 60, 1000, 0, 30, v);
        enum build_prune_verdict want[6] = { BUILD_PRUNE_SIZE, BUILD_PRUNE_SIZE, BUILD_PRUNE_SIZE,
                                             BUILD_PRUNE_KEEP, BUILD_PRUNE_KEEP, BUILD_PRUNE_KEEP };
        for (size_t i = 0; i < 6; i++) assert_int_equal(v[i], want[i]);
        /* the total counts more than the items (locks, temporaries): only what can go goes */
        build_prune_decide(it, 6, 1000, 1000, 0, 30, v);
        for (size_t i = 0; i < 5; i++) assert_int_equal(v[i], BUILD_PRUNE_SIZE);
        assert_int_equal(v[5], BUILD_PRUNE_KEEP);
}

/* Broken items go with what is built on them, even without limits, unless pinned; cycles are broken. */
static void test_decide_broken_and_cyclic_items_go(void **state) {
        int64_t now = 1000;
        struct build_prune_item it[] = {
                { .last_use = now, .parent = -1, .broken = true }, /* 0 backing file missing */
                { .last_use = now, .parent = 0 },                  /* 1 built on it */
                { .last_use = now, .parent = 3 },                  /* 2 and 3 back each other */
                { .last_use = now, .parent = 2 },
                { .last_use = now, .parent = -1, .broken = true, .pinned = true }, /* 4 held: stays */
                { .last_use = 1, .parent = -1 },                   /* 5 fine */
        };
        enum build_prune_verdict v[6];
        build_prune_decide(it, 6, 0, now, 0, 0, v);
        enum build_prune_verdict want[6] = { BUILD_PRUNE_BROKEN, BUILD_PRUNE_BROKEN, BUILD_PRUNE_BROKEN,
                                             BUILD_PRUNE_BROKEN, BUILD_PRUNE_KEEP,   BUILD_PRUNE_KEEP };
        for (size_t i = 0; i < 6; i++) assert_int_equal(v[i], want[i]);
}

/* ---- limits ------------------------------------------------------------------- */

static void test_limits_syntax_defaults_and_environment(void **state) {
        struct {
                const char *s;
                int64_t v;
        } ages[] = { { "14d", 14 * DAY }, { "36h", 36 * 3600 }, { "90m", 5400 }, { "45s", 45 },
                     { "2", 2 * DAY },    { "0", 0 },           { "1.5d", 129600 } };
        for (size_t i = 0; i < ELEMENTSOF(ages); i++) {
                int64_t v = -1;
                assert_int_equal(build_prune_parse_age(ages[i].s, &v), 0);
                assert_int_equal(v, ages[i].v);
        }
        const char *bad_ages[] = { "", "-1", "d", "14x", "14 d", "99999d", "ten" };
        for (size_t i = 0; i < ELEMENTSOF(bad_ages); i++) {
                int64_t v;
                assert_int_equal(build_prune_parse_age(bad_ages[i], &v), -EINVAL);
        }
        struct {
                const char *s;
                uint64_t v;
        } sizes[] = { { "20G", 20ULL << 30 }, { "20GiB", 20ULL << 30 }, { "20gb", 20ULL << 30 },
                      { "500M", 500ULL << 20 }, { "1T", 1ULL << 40 }, { "4096B", 4096 },
                      { "64K", 65536 },         { "10", 10ULL << 30 }, { "0", 0 },
                      { "1.5G", 3ULL << 29 } };
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                uint64_t v = 1;
                assert_int_equal(build_prune_parse_size(sizes[i].s, &v), 0);
                assert_int_equal(v, sizes[i].v);
        }
        const char *bad_sizes[] = { "", "-5G", "G", "20X", "20 G", "20Gi", "1e30" };
        for (size_t i = 0; i < ELEMENTSOF(bad_sizes); i++) {
                uint64_t v;
                assert_int_equal(build_prune_parse_size(bad_sizes[i], &v), -EINVAL);
        }

        int64_t a;
        uint64_t s;
        char *err = NULL;
        unsetenv("POOLD_STAGE_CACHE_MAX_AGE");
        unsetenv("POOLD_STAGE_CACHE_MAX_SIZE");
        assert_int_equal(build_prune_limits_from_env(&a, &s, &err), 0);
        assert_int_equal(a, 14 * DAY);
        assert_int_equal(s, 20ULL << 30);
        setenv("POOLD_STAGE_CACHE_MAX_AGE", "3h", 1);
        setenv("POOLD_STAGE_CACHE_MAX_SIZE", "0", 1);
        assert_int_equal(build_prune_limits_from_env(&a, &s, &err), 0);
        assert_int_equal(a, 3 * 3600);
        assert_int_equal(s, 0);
        setenv("POOLD_STAGE_CACHE_MAX_SIZE", "lots", 1);
        assert_int_equal(build_prune_limits_from_env(&a, &s, &err), -EINVAL);
        assert_non_null(strstr(err, "POOLD_STAGE_CACHE_MAX_SIZE='lots'"));
        free(err);
        unsetenv("POOLD_STAGE_CACHE_MAX_AGE");
        unsetenv("POOLD_STAGE_CACHE_MAX_SIZE");

        const struct {
                uint64_t b;
                const char *s;
        } fs[] = { { 0, "0 B" }, { 1023, "1023 B" }, { 1536, "1.5 KiB" }, { 20ULL << 30, "20 GiB" },
                   { 300ULL << 20, "300 MiB" } };
        for (size_t i = 0; i < ELEMENTSOF(fs); i++) {
                _cleanup_free_ char *t = build_prune_format_size(fs[i].b);
                assert_string_equal(t, fs[i].s);
        }
        _cleanup_free_ char *d = build_prune_format_age(14 * DAY), *h = build_prune_format_age(3 * 3600),
                            *m = build_prune_format_age(600), *sec = build_prune_format_age(40);
        assert_string_equal(d, "14 days");
        assert_string_equal(h, "3 h");
        assert_string_equal(m, "10 min");
        assert_string_equal(sec, "40 s");
}

/* ---- directories -------------------------------------------------------------- */

/* A cache with a current and an old image version (real qcow2 chains),
 * outputs, broken entries, leftovers of killed builds and foreign files:
 * the age limit takes the old version whole, keeps the current chain
 * (including its old base disk, still in use through its overlay),
 * removes what can never be used, and leaves foreign files alone. */
static void test_prune_directory_by_age_with_real_qcow2_chains(void **state) {
        char *dir = mktree();
        _cleanup_free_ char *d1 = disk("v2-stage1"), *d2 = disk("v2-stage2"), *d4 = disk("v1-stage1"),
                            *d5 = disk("v1-stage2"), *d7 = disk("broken"), *d_missing = disk("missing"),
                            *k0 = key("v2-stage0"), *k1 = key("v2-stage1"), *k2 = key("v2-stage2"),
                            *k3 = key("v2-stage3"), *k4 = key("v1-stage1"), *k5 = key("v1-stage2"),
                            *k6 = key("dangling"), *k9 = key("killed"), *k10 = key("building"),
                            *o1 = out_name("v1", "qcow2"), *o2 = out_name("v2", "raw");
        _cleanup_free_ char *tar0 = xasprintf("%s.tar", k0), *e1 = xasprintf("%s.disk", k1),
                            *e2 = xasprintf("%s.disk", k2), *e3 = xasprintf("%s.disk", k3),
                            *e4 = xasprintf("%s.disk", k4), *e5 = xasprintf("%s.disk", k5),
                            *e6 = xasprintf("%s.disk", k6), *lock5 = xasprintf("%s.lock", k5),
                            *tmp9 = xasprintf("%s-0123456789abcdef.qcow2.tmp", k9),
                            *tmp10 = xasprintf("%s.tar.tmp", k10), *o1md5 = xasprintf("%s.md5", o1),
                            *o1sha = xasprintf("%s.sha256", o1), *o2md5 = xasprintf("%s.md5", o2);
        /* current version: stage 1 built long ago, stage 2 on it recently, stage 3 only outside */
        put(dir, tar0, "base tree ", 1000);
        qemu_img(dir, d1, NULL);
        entry(dir, "v2-stage1", d1);
        qemu_img(dir, d2, d1);
        entry(dir, "v2-stage2", d2);
        entry(dir, "v2-stage3", d2);
        /* the previous version, unused for a month */
        qemu_img(dir, d4, NULL);
        entry(dir, "v1-stage1", d4);
        qemu_img(dir, d5, d4);
        entry(dir, "v1-stage2", d5);
        put(dir, lock5, "", 0);
        put(dir, o1, "image ", 100);
        put(dir, o1md5, "0123  x\n", 1);
        put(dir, o1sha, "4567  x\n", 1);
        put(dir, o2, "image ", 100);
        put(dir, o2md5, "89ab  x\n", 1);
        /* unusable: an entry naming no disk, a disk whose backing file is gone */
        entry(dir, "dangling", d_missing);
        qemu_img(dir, d_missing, NULL);
        qemu_img(dir, d7, d_missing);
        _cleanup_free_ char *pm = xasprintf("%s/%s", dir, d_missing);
        assert_int_equal(unlink(pm), 0);
        /* leftovers: a killed build's disk (nobody holds its key), a build in progress, a dead writer */
        put(dir, tmp9, "half a disk", 1);
        put(dir, tmp10, "half a tar", 1);
        int building = -1;
        assert_int_equal(build_cache_lock(dir, k10, &building), 0);
        pid_t dead = fork();
        if (dead == 0) _exit(0);
        assert_int_equal(waitpid(dead, NULL, 0), dead);
        _cleanup_free_ char *tmp_out = xasprintf("%s.%d.tmp", o2, (int)dead);
        put(dir, tmp_out, "x", 1);
        /* not ours */
        put(dir, "notes.txt", "keep me", 1);
        put(dir, "abc.tar", "not a key", 1);
        put(dir, "0123.disk", "short key", 1);

        const char *old[] = { tar0, d1, e1, d4, e4, d5, e5, o1, o1md5, o1sha, NULL };
        for (size_t i = 0; old[i]; i++) age(dir, old[i], 30 * DAY);
        age(dir, d2, 2 * DAY);

        struct build_prune_report r;
        int64_t now = time(NULL);
        assert_int_equal(build_cache_prune(dir, NULL, now, 14 * DAY, 0, false, &r), 0);

        /* kept: the current chain, its old base included, and the recent output */
        const char *kept[] = { d1, e1, d2, e2, e3, o2, o2md5, tmp10, "notes.txt", "abc.tar", "0123.disk", NULL };
        for (size_t i = 0; kept[i]; i++)
                if (!exists(dir, kept[i])) fail_msg("%s was pruned", kept[i]);
        const char *gone[] = { tar0, d4, e4, d5, e5, lock5, o1, o1md5, o1sha, e6, d7, tmp9, tmp_out, NULL };
        for (size_t i = 0; gone[i]; i++)
                if (exists(dir, gone[i])) fail_msg("%s was kept", gone[i]);
        _cleanup_free_ char *still = build_cache_disk(dir, k3);
        _cleanup_free_ char *want = xasprintf("%s/%s", dir, d2);
        assert_string_equal(still, want);

        assert_true(removed(&r, tar0, BUILD_PRUNE_AGE));
        assert_true(removed(&r, d4, BUILD_PRUNE_AGE) && removed(&r, d5, BUILD_PRUNE_AGE));
        assert_true(removed(&r, o1, BUILD_PRUNE_AGE));
        assert_true(removed(&r, e6, BUILD_PRUNE_BROKEN) && removed(&r, d7, BUILD_PRUNE_BROKEN));
        assert_int_equal(r.n_removed, 6);
        assert_int_equal(r.n_garbage, 3); /* tmp9, tmp_out, lock5 */
        assert_true(r.freed > 10000 && r.total_after < r.total_before);
        assert_int_equal(r.total_before - r.total_after, r.freed); /* no hard links here */
        _cleanup_free_ char *text = build_prune_report_text(&r, now, 14 * DAY, 0, false);
        assert_non_null(strstr(text, "stage cache: pruned 6 entries and 3 leftover files, freed "));
        assert_non_null(strstr(text, "(limits: 14 days, no size limit)"));
        _cleanup_free_ char *line = xasprintf("stage cache: pruned %s (", d4);
        assert_non_null(strstr(text, line));
        assert_non_null(strstr(text, "last used 30 days ago): unused for too long"));
        build_prune_report_done(&r);
        close(building);
        rm_rf(dir);
        free(dir);
}

/* What a running build holds (shared flock) or what the caller keeps stays
 * with everything it is built on; released, it goes. A dry run removes nothing. */
static void test_prune_spares_held_and_kept_entries(void **state) {
        char *dir = mktree();
        _cleanup_free_ char *d4 = disk("v1-stage1"), *d5 = disk("v1-stage2"), *k0 = key("v1-stage0");
        _cleanup_free_ char *tar0 = xasprintf("%s.tar", k0), *p5 = xasprintf("%s/%s", dir, d5);
        qemu_img(dir, d4, NULL);
        entry(dir, "v1-stage1", d4);
        qemu_img(dir, d5, d4);
        entry(dir, "v1-stage2", d5);
        put(dir, tar0, "tree", 100);
        _cleanup_free_ char *e4 = NULL, *e5 = NULL;
        {
                _cleanup_free_ char *k4 = key("v1-stage1"), *k5 = key("v1-stage2");
                e4 = xasprintf("%s.disk", k4);
                e5 = xasprintf("%s.disk", k5);
        }
        const char *all[] = { d4, d5, e4, e5, tar0, NULL };
        for (size_t i = 0; all[i]; i++) age(dir, all[i], 30 * DAY);

        struct build_holds h = {};
        assert_int_equal(build_cache_hold(&h, p5), 0);
        const char *keep[] = { tar0, NULL };
        struct build_prune_report r;
        assert_int_equal(build_cache_prune(dir, keep, time(NULL), DAY, 1, false, &r), 0);
        assert_int_equal(r.n_removed, 0);
        assert_int_equal(r.n_pinned, 2); /* the held overlay, the kept tarball; the base stays with them */
        for (size_t i = 0; all[i]; i++) assert_true(exists(dir, all[i]));
        build_prune_report_done(&r);

        build_holds_release(&h);
        assert_int_equal(build_cache_prune(dir, keep, time(NULL), DAY, 1, true, &r), 0);
        assert_int_equal(r.n_removed, 2);
        for (size_t i = 0; all[i]; i++) assert_true(exists(dir, all[i])); /* dry run */
        _cleanup_free_ char *text = build_prune_report_text(&r, time(NULL), DAY, 1, true);
        assert_non_null(strstr(text, "stage cache: would prune 2 entries"));
        assert_non_null(strstr(text, "still above its size limit"));
        build_prune_report_done(&r);

        assert_int_equal(build_cache_prune(dir, NULL, time(NULL), DAY, 0, false, &r), 0);
        assert_int_equal(r.n_removed, 3);
        for (size_t i = 0; all[i]; i++) assert_false(exists(dir, all[i]));
        assert_int_equal(build_cache_hold(&h, p5), -ENOENT);
        assert_int_equal(h.n, 0);
        build_prune_report_done(&r);
        rm_rf(dir);
        free(dir);
}

/* The size limit takes the least recently used entries and stops once the cache fits. */
static void test_prune_directory_by_size_least_recently_used_first(void **state) {
        char *dir = mktree();
        char *tars[3];
        for (int i = 0; i < 3; i++) {
                _cleanup_free_ char *label = xasprintf("tree%d", i), *k = key(label);
                tars[i] = xasprintf("%s.tar", k);
                put(dir, tars[i], "0123456789abcdef", 65536); /* 1 MiB */
                age(dir, tars[i], (3 - i) * 3600);            /* tree0 the oldest */
        }
        struct build_prune_report r;
        assert_int_equal(build_cache_prune(dir, NULL, time(NULL), 0, 0, true, &r), 0);
        uint64_t total = r.total_before;
        assert_true(total >= 3 << 20);
        build_prune_report_done(&r);
        assert_int_equal(build_cache_prune(dir, NULL, time(NULL), 0, total - (512 << 10), false, &r), 0);
        assert_int_equal(r.n_removed, 1);
        assert_true(removed(&r, tars[0], BUILD_PRUNE_SIZE));
        assert_false(exists(dir, tars[0]));
        assert_true(exists(dir, tars[1]) && exists(dir, tars[2]));
        build_prune_report_done(&r);
        /* a use (a cache hit) makes the oldest the newest */
        build_cache_touch(dir, tars[1]);
        assert_int_equal(build_cache_prune(dir, NULL, time(NULL), 0, 3 << 19, false, &r), 0);
        assert_true(exists(dir, tars[1]) && !exists(dir, tars[2]));
        build_prune_report_done(&r);
        for (int i = 0; i < 3; i++) free(tars[i]);
        rm_rf(dir);
        free(dir);
}

/* A build waiting for a key's lock while the pruner removes the lock file
 * ends up holding the file that has the name, not the removed one (or two
 * builds could hold "the" lock at once). */
static void test_lock_taken_after_the_pruner_removed_the_file_is_the_named_one(void **state) {
        char *dir = mktree();
        _cleanup_free_ char *k = key("contended"), *p = build_cache_path(dir, k, ".lock");
        int held = -1;
        assert_int_equal(build_cache_lock(dir, k, &held), 0);
        pid_t child = fork();
        if (child == 0) {
                /* the pruner: removes the file it holds, then lets go */
                usleep(300 * 1000);
                _exit(unlink(p) == 0 ? 0 : 1);
        }
        close(held); /* the child's copy keeps the lock until it exits */
        int fd = -1;
        assert_int_equal(build_cache_lock(dir, k, &fd), 0);
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        struct stat a, b;
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(stat(p, &b), 0);
        assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
        close(fd);
        rm_rf(dir);
        free(dir);
}

/* After a build (its entries kept) a prune with tight limits removes the
 * older version only: the next build of the same inputs is all cache hits. */
static void test_build_then_prune_keeps_what_the_next_build_needs(void **state) {
        char *dir = mktree();
        struct build_stage st[4] = {};
        for (int i = 0; i < 4; i++) {
                _cleanup_free_ char *label = xasprintf("now-stage%d", i), *k = key(label);
                memcpy(st[i].key, k, SHA256_HEX_SIZE);
        }
        st[0].root = true;
        struct build_plan plan = { .stages = st, .n_stages = 4 };
        _cleanup_free_ char *tar = xasprintf("%s.tar", st[0].key);
        put(dir, tar, "tree", 100);
        _cleanup_free_ char *d1 = build_cache_new_disk_name(st[1].key), *d3 = build_cache_new_disk_name(st[3].key);
        qemu_img(dir, d1, NULL);
        assert_int_equal(build_cache_publish(dir, st[1].key, d1), 0);
        assert_int_equal(build_cache_publish(dir, st[2].key, d1), 0);
        qemu_img(dir, d3, d1);
        assert_int_equal(build_cache_publish(dir, st[3].key, d3), 0);
        /* the previous version, not used since it was built */
        _cleanup_free_ char *o1 = disk("old-stage1"), *o2 = disk("old-stage2");
        qemu_img(dir, o1, NULL);
        entry(dir, "old-stage1", o1);
        qemu_img(dir, o2, o1);
        entry(dir, "old-stage2", o2);
        age(dir, o1, 3600);
        age(dir, o2, 3600);
        assert_int_equal(build_cache_first_missing(dir, &plan), 4);

        /* what dib_main keeps: every stage's entry */
        char *keep[5] = {};
        for (int i = 0; i < 4; i++) keep[i] = xasprintf("%s%s", st[i].key, i == 0 ? ".tar" : ".disk");
        struct build_prune_report r;
        assert_int_equal(build_cache_prune(dir, (const char *const *)keep, time(NULL), 60, 1, false, &r), 0);
        assert_int_equal(r.n_removed, 2);
        assert_false(exists(dir, o1) || exists(dir, o2));
        assert_int_equal(build_cache_first_missing(dir, &plan), 4);
        assert_true(exists(dir, tar));
        build_prune_report_done(&r);
        for (int i = 0; i < 4; i++) free(keep[i]);
        rm_rf(dir);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decide_age_counts_use_of_what_is_built_on_an_item),
                cmocka_unit_test(test_decide_pinned_keeps_its_chain),
                cmocka_unit_test(test_decide_size_lru_leaves_first_until_it_fits),
                cmocka_unit_test(test_decide_broken_and_cyclic_items_go),
                cmocka_unit_test(test_limits_syntax_defaults_and_environment),
                cmocka_unit_test(test_prune_directory_by_age_with_real_qcow2_chains),
                cmocka_unit_test(test_prune_spares_held_and_kept_entries),
                cmocka_unit_test(test_prune_directory_by_size_least_recently_used_first),
                cmocka_unit_test(test_lock_taken_after_the_pruner_removed_the_file_is_the_named_one),
                cmocka_unit_test(test_build_then_prune_keeps_what_the_next_build_needs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
