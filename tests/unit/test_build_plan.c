/* test_build_plan.c — the image build's stage plan, stage cache keys, key
 * environment, the generated phase runner scripts (run with bash here), and
 * the stage cache's chain rules (builder/build_plan.c and build_cache.c).
 *
 * Each test builds a private element tree under a mkdtemp() directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/file.h>

#include "alloc.h"
#include "build.h"
#include "dbuf.h"

/* ---- helpers ---------------------------------------------------------------- */

static void put(const char *root, const char *rel, const char *content, mode_t mode) {
        _cleanup_free_ char *p = xasprintf("%s/%s", root, rel);
        for (char *s = strchr(p + strlen(root) + 1, '/'); s; s = strchr(s + 1, '/')) {
                *s = '\0';
                (void)mkdir(p, 0755);
                *s = '/';
        }
        FILE *f = fopen(p, "we");
        assert_non_null(f);
        fputs(content, f);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(p, mode), 0);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) { return remove(p); }
static void rm_rf(const char *dir) { assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0); }

static char *mktree(void) {
        char *d = xstrdup("/tmp/test_build_planXXXXXX");
        assert_non_null(mkdtemp(d));
        return d;
}

#define SH "#!/bin/bash\necho \"$(basename $0) ran\" >> \"$LOG\"\n"

/* Two elements: os (root.d, install.d, finalise.d, packages) and extra
 * (extra-data.d, install.d, cleanup.d). */
static void make_elements(const char *root) {
        put(root, "os/element-provides", "operating-system\n", 0644);
        put(root, "os/README.md", "the os\n", 0644);
        put(root, "os/root.d/10-root", SH, 0755);
        put(root, "os/install.d/00-before-pkgs", SH, 0755);
        put(root, "os/install.d/50-os", SH, 0755);
        put(root, "os/finalise.d/50-fin", SH, 0755);
        put(root, "os/package-installs.yaml", "pkg-a:\npkg-gone:\n  uninstall: true\n", 0644);
        put(root, "extra/extra-data.d/10-x", SH, 0755);
        put(root, "extra/install.d/20-extra", SH, 0755);
        put(root, "extra/install.d/9-extra", SH, 0755);
        put(root, "extra/cleanup.d/10-c", SH, 0755);
}

struct fixture {
        char *root;
        struct dib_element_set *set;
        struct dib_hooks *hooks;
        struct dib_pkginstalls *pkgs;
        struct build_plan *plan;
};

static void load(struct fixture *f, const char *const *key_env) {
        char *path[] = { f->root, NULL };
        const char *names[] = { "os", "extra", NULL };
        char *err = NULL;
        assert_int_equal(dib_elements_resolve((const char *const *)path, names, DIB_RESOLVE_REQUIRE_OS, &f->set, &err), 0);
        assert_int_equal(dib_hooks_collect(f->set, &f->hooks, &err), 0);
        struct dib_pkg_env pe = { .arch = "amd64" };
        assert_int_equal(dib_pkginstalls_squash(f->set, &pe, &f->pkgs, &err), 0);
        assert_int_equal(build_plan_new(f->hooks, f->pkgs, key_env, "bookworm", &f->plan, &err), 0);
        assert_null(err);
}

static void unload(struct fixture *f) {
        build_plan_free(f->plan);
        dib_pkginstalls_free(f->pkgs);
        dib_hooks_free(f->hooks);
        dib_element_set_free(f->set);
        f->plan = NULL;
        f->pkgs = NULL;
        f->hooks = NULL;
        f->set = NULL;
}

/* Keys of the plan (n <= 8). */
static size_t keys(const struct fixture *f, char out[8][SHA256_HEX_SIZE]) {
        for (size_t i = 0; i < f->plan->n_stages; i++)
                memcpy(out[i], f->plan->stages[i].key, SHA256_HEX_SIZE);
        return f->plan->n_stages;
}

/* unlink "<fmt...>" (the name is freed). */
_printf_(1, 2) static int unlinkf(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *p = NULL;
        assert_true(vasprintf(&p, fmt, ap) >= 0);
        va_end(ap);
        int r = unlink(p);
        free(p);
        return r;
}

/* ---- plan ---------------------------------------------------------------------- */

/* Stages: root.d alone; outside phases join the next inside phase; a trailing
 * outside phase is a stage of its own; empty phases belong to no stage. */
static void test_plan_groups_phases_into_stages(void **state) {
        struct fixture f = { .root = mktree() };
        make_elements(f.root);
        load(&f, NULL);
        assert_int_equal(f.plan->n_stages, 4);
        const struct build_stage *s = f.plan->stages;
        assert_true(s[0].root);
        assert_int_equal(s[0].n_phases, 1);
        assert_int_equal(s[0].phases[0], DIB_PHASE_ROOT);
        assert_int_equal(s[1].n_phases, 2);
        assert_int_equal(s[1].phases[0], DIB_PHASE_EXTRA_DATA);
        assert_int_equal(s[1].phases[1], DIB_PHASE_INSTALL);
        assert_true(s[1].has_inside);
        assert_int_equal(s[2].n_phases, 1);
        assert_int_equal(s[2].phases[0], DIB_PHASE_FINALISE);
        assert_true(s[2].has_inside);
        assert_int_equal(s[3].n_phases, 1);
        assert_int_equal(s[3].phases[0], DIB_PHASE_CLEANUP);
        assert_false(s[3].has_inside);
        for (size_t i = 0; i < 4; i++)
                for (size_t j = i + 1; j < 4; j++)
                        assert_string_not_equal(s[i].key, s[j].key);
        unload(&f);

        /* A phase with only packages is a stage: packages need the appliance. */
        put(f.root, "os/package-installs.yaml", "pkg-late:\n  phase: post-install.d\n", 0644);
        load(&f, NULL);
        assert_int_equal(f.plan->n_stages, 5);
        assert_int_equal(f.plan->stages[2].phases[0], DIB_PHASE_POST_INSTALL);
        unload(&f);
        rm_rf(f.root);
        free(f.root);
}

/* Without root.d nothing makes a root tree: a clear error. With only root.d,
 * there is still a stage that makes the disk. */
static void test_plan_needs_root_and_always_makes_a_disk(void **state) {
        char *root = mktree();
        put(root, "os/element-provides", "operating-system\n", 0644);
        put(root, "os/install.d/10-x", SH, 0755);
        char *path[] = { root, NULL };
        const char *names[] = { "os", NULL };
        struct dib_element_set *set;
        struct dib_hooks *hooks;
        struct build_plan *plan;
        char *err = NULL;
        assert_int_equal(dib_elements_resolve((const char *const *)path, names, 0, &set, &err), 0);
        assert_int_equal(dib_hooks_collect(set, &hooks, &err), 0);
        assert_int_equal(build_plan_new(hooks, NULL, NULL, NULL, &plan, &err), -ENOENT);
        assert_non_null(strstr(err, "root.d"));
        free(err);
        dib_hooks_free(hooks);
        dib_element_set_free(set);
        rm_rf(root);

        assert_int_equal(mkdir(root, 0700), 0);
        put(root, "os/root.d/10-root", SH, 0755);
        assert_int_equal(dib_elements_resolve((const char *const *)path, names, 0, &set, &err), 0);
        assert_int_equal(dib_hooks_collect(set, &hooks, &err), 0);
        assert_int_equal(build_plan_new(hooks, NULL, NULL, NULL, &plan, &err), 0);
        assert_int_equal(plan->n_stages, 2);
        assert_int_equal(plan->stages[1].n_phases, 0);
        assert_false(plan->stages[1].has_inside);
        build_plan_free(plan);
        dib_hooks_free(hooks);
        dib_element_set_free(set);
        rm_rf(root);
        free(root);
}

/* The point of the cache: a change in a late phase's file changes the keys
 * of its stage and the ones after it, never the earlier ones; a README never
 * matters; a package list only from its phase's stage on; env and release
 * change everything; the same inputs give the same keys. */
static void test_plan_keys_change_only_from_the_changed_stage(void **state) {
        struct fixture f = { .root = mktree() };
        char k0[8][SHA256_HEX_SIZE], k1[8][SHA256_HEX_SIZE];
        make_elements(f.root);
        load(&f, NULL);
        size_t n = keys(&f, k0);
        unload(&f);

        load(&f, NULL);
        keys(&f, k1);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(k0[i], k1[i]);
        unload(&f);

        put(f.root, "os/finalise.d/50-fin", SH "# changed\n", 0755);
        load(&f, NULL);
        keys(&f, k1);
        assert_string_equal(k0[0], k1[0]);
        assert_string_equal(k0[1], k1[1]);
        assert_string_not_equal(k0[2], k1[2]);
        assert_string_not_equal(k0[3], k1[3]);
        unload(&f);
        put(f.root, "os/finalise.d/50-fin", SH, 0755);

        put(f.root, "os/README.md", "rewritten\n", 0644);
        load(&f, NULL);
        keys(&f, k1);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(k0[i], k1[i]);
        unload(&f);

        put(f.root, "os/package-installs.yaml", "pkg-a:\npkg-b:\npkg-gone:\n  uninstall: true\n", 0644);
        load(&f, NULL);
        keys(&f, k1);
        assert_string_equal(k0[0], k1[0]);
        assert_string_not_equal(k0[1], k1[1]);
        assert_string_not_equal(k0[2], k1[2]);
        unload(&f);
        put(f.root, "os/package-installs.yaml", "pkg-a:\npkg-gone:\n  uninstall: true\n", 0644);

        /* a mode change of a hook (not executable: no longer runs) is a change too */
        put(f.root, "extra/cleanup.d/10-c", SH, 0644);
        put(f.root, "extra/cleanup.d/20-c", SH, 0755);
        load(&f, NULL);
        keys(&f, k1);
        assert_string_equal(k0[2], k1[2]);
        assert_string_not_equal(k0[3], k1[3]);
        unload(&f);
        put(f.root, "extra/cleanup.d/10-c", SH, 0755);
        assert_int_equal(unlinkf("%s/extra/cleanup.d/20-c", f.root), 0);

        const char *env[] = { "DIB_FOO=1", NULL };
        load(&f, env);
        keys(&f, k1);
        for (size_t i = 0; i < n; i++)
                assert_string_not_equal(k0[i], k1[i]);
        unload(&f);

        load(&f, NULL);
        keys(&f, k1);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(k0[i], k1[i]);
        unload(&f);
        rm_rf(f.root);
        free(f.root);
}

/* The stage keys name the cached stages on disk (a builder's cache directory
 * outlives an upgrade), so the digest code behind them must not change them:
 * these are the keys the hand-written SHA-256 gave for this fixture, with a
 * file-valued and a plain key variable, a release and a static/ tree. */
static void test_plan_keys_equal_keys_recorded_before_libcrypto(void **state) {
        static const char *const recorded[] = {
                "b4a1eef47b35ad56fb38b2174546cf210059c9996a3e1ee2cf43127b742e8e2c",
                "8b6450eb8c3d9bfb87a88161aae01fcfa52a481d2c2626f6bc01fccebe5b2552",
                "04e6d9e145d695d3937316c96eeea049f8a79743fb3bc06b6fcb3935e89424da",
                "79a515666e69d32f48876ebc1fedb8f468cfd27ec80e9c0c6a17fab4a7d76a88",
        };
        struct fixture f = { .root = mktree() };
        make_elements(f.root);
        put(f.root, "authorized_keys", "ssh-ed25519 AAAA one\n", 0644);
        put(f.root, "os/static/etc/motd", "hello\n", 0640); /* a tree outside the phases */
        _cleanup_free_ char *etc = xasprintf("%s/os/static/etc", f.root);
        assert_int_equal(chmod(etc, 0755), 0); /* its mode is in the key: not the umask's */
        _cleanup_free_ char *keys_var = xasprintf("DIB_DEV_USER_AUTHORIZED_KEYS=%s/authorized_keys", f.root);
        const char *envp[] = { "DIB_A=a", keys_var, NULL };
        char **key_env = build_key_env(envp);
        load(&f, (const char *const *)key_env);
        assert_int_equal(f.plan->n_stages, 4);
        for (size_t i = 0; i < 4; i++)
                assert_string_equal(f.plan->stages[i].key, recorded[i]);
        unload(&f);
        dib_strv_free(key_env);
        rm_rf(f.root);
        free(f.root);
}

/* ---- key environment --------------------------------------------------------- */

/* DIB_* only, minus per-build names; sorted; a file-valued variable (one path
 * or a colon list) counts by the digest of its content, not by its path. */
static void test_key_env_selection_and_file_content(void **state) {
        char *root = mktree();
        put(root, "keys1", "ssh-ed25519 AAAA one\n", 0644);
        put(root, "keys2", "ssh-ed25519 BBBB two\n", 0644);
        _cleanup_free_ char *one = xasprintf("DIB_DEV_USER_AUTHORIZED_KEYS=%s/keys1", root);
        _cleanup_free_ char *two = xasprintf("DIB_KEYS=%s/keys1:%s/keys2", root, root);
        const char *envp[] = { "PATH=/bin", "HOME=/root", "DIB_RELEASE=bookworm", "DIB_IMAGE_NAME=img",
                               "DIB_IMAGE_FILENAME=/opt/img-001", "DIB_DEBUG_TRACE=1", "DIB_Z=z", one, two,
                               "DIB_MISSING_FILE=/nonexistent/file", "DIB_A=a", NULL };
        char **l = build_key_env(envp);
        assert_int_equal(dib_strv_length((const char *const *)l), 5);
        assert_string_equal(l[0], "DIB_A=a");
        assert_true(strncmp(l[1], "DIB_DEV_USER_AUTHORIZED_KEYS#sha256=", 36) == 0);
        assert_int_equal(strlen(l[1]), 36 + 64);
        assert_true(strncmp(l[2], "DIB_KEYS#sha256=", 16) == 0);
        assert_int_equal(strlen(l[2]), 16 + 64 + 1 + 64);
        assert_string_equal(l[3], "DIB_MISSING_FILE=/nonexistent/file");
        assert_string_equal(l[4], "DIB_Z=z");
        _cleanup_free_ char *before = xstrdup(l[1]);
        dib_strv_free(l);

        /* The same content under another path is the same input. */
        put(root, "copy", "ssh-ed25519 AAAA one\n", 0644);
        _cleanup_free_ char *moved = xasprintf("DIB_DEV_USER_AUTHORIZED_KEYS=%s/copy", root);
        const char *envp2[] = { moved, NULL };
        l = build_key_env(envp2);
        assert_string_equal(l[0], before);
        dib_strv_free(l);

        put(root, "keys1", "ssh-ed25519 CCCC new\n", 0644);
        l = build_key_env(envp);
        assert_string_not_equal(l[1], before);
        dib_strv_free(l);
        rm_rf(root);
        free(root);
}

/* ---- runner scripts ----------------------------------------------------------- */

static char *read_all(const char *path) {
        struct dbuf b = DBUF_INIT(1 << 20);
        assert_int_equal(dbuf_read_file(&b, path), 0);
        return dbuf_take(&b, NULL);
}

/* Run the runner for install.d (outside mode, so no apt) against the merged
 * tree with bash: environment.d is sourced first (its export reaches the
 * scripts), scripts run in sort -n order, and output names each step. */
static void test_runner_runs_hooks_in_sort_n_order(void **state) {
        struct fixture f = { .root = mktree() };
        make_elements(f.root);
        put(f.root, "extra/environment.d/10-env", "export FROM_ENVD=yes\n", 0644);
        put(f.root, "extra/install.d/30-env-check", "#!/bin/bash\n[ \"$FROM_ENVD\" = yes ]\n", 0755);
        load(&f, NULL);
        /* hooks_dir layout = element directories merged, as dib_main makes it */
        _cleanup_free_ char *merged = xasprintf("%s/merged", f.root);
        _cleanup_free_ char *cp = xasprintf("mkdir %s && cp -R %s/os/. %s/extra/. %s/", merged, f.root, f.root, merged);
        assert_int_equal(system(cp), 0);
        struct build_runner_params p = {
                .phase = DIB_PHASE_INSTALL, .hooks_dir = merged, .hooks = f.hooks, .inside = false,
        };
        _cleanup_free_ char *script = build_runner_script(&p);
        _cleanup_free_ char *sp = xasprintf("%s/run.sh", f.root);
        put(f.root, "run.sh", script, 0755);
        _cleanup_free_ char *cmd = xasprintf("cd %s && LOG=%s/log bash %s > %s/out 2>&1", f.root, f.root, sp, f.root);
        assert_int_equal(system(cmd), 0);
        _cleanup_free_ char *logp = xasprintf("%s/log", f.root);
        _cleanup_free_ char *log = read_all(logp);
        assert_string_equal(log, "00-before-pkgs ran\n9-extra ran\n20-extra ran\n50-os ran\n");
        _cleanup_free_ char *outp = xasprintf("%s/out", f.root);
        _cleanup_free_ char *out = read_all(outp);
        assert_non_null(strstr(out, "poold: sourcing environment.d/10-env"));
        assert_non_null(strstr(out, "poold: running install.d/9-extra\n"));
        assert_non_null(strstr(out, "poold: install.d/50-os done in"));
        assert_non_null(strstr(out, "poold: install.d complete"));
        /* outside: no package installs */
        assert_null(strstr(script, "apt-get"));
        unload(&f);
        rm_rf(f.root);
        free(f.root);
}

/* A failing hook stops the phase with its exit code and a line naming it. */
static void test_runner_stops_at_first_failure(void **state) {
        struct fixture f = { .root = mktree() };
        make_elements(f.root);
        put(f.root, "extra/install.d/10-fails", "#!/bin/bash\nexit 7\n", 0755);
        load(&f, NULL);
        _cleanup_free_ char *merged = xasprintf("%s/merged", f.root);
        _cleanup_free_ char *cp = xasprintf("mkdir %s && cp -R %s/os/. %s/extra/. %s/", merged, f.root, f.root, merged);
        assert_int_equal(system(cp), 0);
        struct build_runner_params p = { .phase = DIB_PHASE_INSTALL, .hooks_dir = merged, .hooks = f.hooks };
        _cleanup_free_ char *script = build_runner_script(&p);
        put(f.root, "run.sh", script, 0755);
        _cleanup_free_ char *cmd = xasprintf("cd %s && LOG=%s/log bash run.sh > out 2>&1", f.root, f.root);
        int st = system(cmd);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 7);
        _cleanup_free_ char *logp = xasprintf("%s/log", f.root);
        _cleanup_free_ char *log = read_all(logp);
        assert_string_equal(log, "00-before-pkgs ran\n9-extra ran\n"); /* 20-extra, 50-os never ran */
        _cleanup_free_ char *outp = xasprintf("%s/out", f.root);
        _cleanup_free_ char *out = read_all(outp);
        assert_non_null(strstr(out, "poold: install.d/10-fails failed with exit code 7"));
        unload(&f);
        rm_rf(f.root);
        free(f.root);
}

/* Inside, packages install at the position of "01-package-installs" (after
 * 00-*, before 9-*), removals follow, names are shell-quoted, and a
 * policy-rc.d keeps services from starting. */
static void test_runner_inside_package_step_position(void **state) {
        struct fixture f = { .root = mktree() };
        make_elements(f.root);
        put(f.root, "os/package-installs.yaml", "pkg-a:\n\"we'ird\":\npkg-gone:\n  uninstall: true\n", 0644);
        load(&f, NULL);
        struct build_runner_params p = {
                .phase = DIB_PHASE_INSTALL,
                .hooks_dir = "/tmp/in_target.d",
                .hooks = f.hooks,
                .pkgs = dib_pkginstalls_phase(f.pkgs, "install.d"),
                .env_file = "/tmp/env.sh",
                .inside = true,
                .trace = true,
        };
        _cleanup_free_ char *s = build_runner_script(&p);
        const char *env = strstr(s, "source '/tmp/env.sh'");
        const char *policy = strstr(s, "/usr/sbin/policy-rc.d");
        const char *h00 = strstr(s, "running install.d/\"'00-before-pkgs'");
        const char *pk = strstr(s, "running install.d/01-package-installs");
        const char *inst = strstr(s, "install 'pkg-a' 'we'\\''ird'");
        const char *purge = strstr(s, "purge 'pkg-gone'");
        const char *h9 = strstr(s, "running install.d/\"'9-extra'");
        assert_non_null(env);
        assert_non_null(policy);
        assert_non_null(h00);
        assert_non_null(pk);
        assert_non_null(inst);
        assert_non_null(purge);
        assert_non_null(h9);
        assert_true(env < policy && h00 < pk && pk < inst && inst < purge && purge < h9);
        assert_non_null(strstr(s, "set -x\n"));
        _cleanup_free_ char *qs = build_shell_quote(s);
        _cleanup_free_ char *syntax = xasprintf("printf '%%s' %s | bash -n", qs);
        assert_int_equal(system(syntax), 0);
        unload(&f);
        rm_rf(f.root);
        free(f.root);
}

/* Quoting survives bash: every byte string comes back as it was. */
static void test_shell_quote_round_trip(void **state) {
        const char *cases[] = { "", "plain", "it's", "''", "$HOME `x` \"q\" \\ \n end", NULL };
        for (size_t i = 0; cases[i]; i++) {
                _cleanup_free_ char *q = build_shell_quote(cases[i]);
                _cleanup_free_ char *cmd = xasprintf("bash -c 'printf %%s \"$1\"' _ %s", q);
                FILE *p = popen(cmd, "r");
                assert_non_null(p);
                char buf[256] = {};
                size_t n = fread(buf, 1, sizeof buf - 1, p);
                assert_int_equal(pclose(p), 0);
                assert_int_equal(n, strlen(cases[i]));
                assert_string_equal(buf, cases[i]);
        }
}

/* ---- cache --------------------------------------------------------------------- */

/* A minimal qcow2 header (what qemu-img writes; only the fields we read). */
static void put_qcow2(const char *dir, const char *name, const char *backing) {
        unsigned char h[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 3 };
        if (backing) {
                uint32_t len = (uint32_t)strlen(backing);
                h[15] = 0x80; /* backing_file_offset = 128 */
                h[16] = (unsigned char)(len >> 24);
                h[17] = (unsigned char)(len >> 16);
                h[18] = (unsigned char)(len >> 8);
                h[19] = (unsigned char)len;
                memcpy(h + 128, backing, len);
        }
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
        fclose(f);
}

/* The header reader against a real qemu-img overlay, and against non-qcow2 data. */
static void test_qcow2_backing_from_real_qemu_img(void **state) {
        char *dir = mktree();
        _cleanup_free_ char *cmd = xasprintf("cd %s && qemu-img create -q -f qcow2 base.qcow2 16M && "
                                             "qemu-img create -q -f qcow2 -F qcow2 -b base.qcow2 top.qcow2",
                                             dir);
        assert_int_equal(system(cmd), 0);
        _cleanup_free_ char *top = xasprintf("%s/top.qcow2", dir);
        _cleanup_free_ char *base = xasprintf("%s/base.qcow2", dir);
        char *b = NULL;
        assert_int_equal(build_qcow2_backing(top, &b), 0);
        assert_string_equal(b, "base.qcow2");
        free(b);
        assert_int_equal(build_qcow2_backing(base, &b), 0);
        assert_string_equal(b, "");
        free(b);
        put(dir, "not.qcow2", "hello, this is not a disk image at all", 0644);
        _cleanup_free_ char *nq = xasprintf("%s/not.qcow2", dir);
        assert_int_equal(build_qcow2_backing(nq, &b), -EBADMSG);
        rm_rf(dir);
        free(dir);
}

/* first_missing follows the chain: a stage counts only when every disk it is
 * layered on exists; a later intact entry wins over an earlier gap only when
 * its own chain is intact; the root tarball matters only for stage 1. */
static void test_cache_first_missing_follows_backing_chain(void **state) {
        char *dir = mktree();
        struct build_stage st[4] = {};
        for (int i = 0; i < 4; i++)
                snprintf(st[i].key, sizeof st[i].key, "%064d", i);
        st[0].root = true;
        struct build_plan plan = { .stages = st, .n_stages = 4 };

        assert_int_equal(build_cache_first_missing(dir, &plan), 0);
        _cleanup_free_ char *tarname = xasprintf("%s.tar", st[0].key);
        put(dir, tarname, "tar", 0644);
        assert_int_equal(build_cache_first_missing(dir, &plan), 1);

        _cleanup_free_ char *d1 = build_cache_new_disk_name(st[1].key);
        _cleanup_free_ char *d1b = build_cache_new_disk_name(st[1].key);
        assert_string_not_equal(d1, d1b); /* rebuilt disks never reuse a name */
        put_qcow2(dir, d1, NULL);
        assert_int_equal(build_cache_publish(dir, st[1].key, d1), 0);
        assert_int_equal(build_cache_first_missing(dir, &plan), 2);

        /* stage 2 put nothing in the image: its entry names stage 1's disk */
        assert_int_equal(build_cache_publish(dir, st[2].key, d1), 0);
        _cleanup_free_ char *d3 = build_cache_new_disk_name(st[3].key);
        put_qcow2(dir, d3, d1);
        assert_int_equal(build_cache_publish(dir, st[3].key, d3), 0);
        assert_int_equal(build_cache_first_missing(dir, &plan), 4);
        _cleanup_free_ char *disk3 = build_cache_disk(dir, st[3].key);
        _cleanup_free_ char *want3 = xasprintf("%s/%s", dir, d3);
        assert_string_equal(disk3, want3);

        /* the tarball is not needed once disks exist */
        assert_int_equal(unlinkf("%s/%s.tar", dir, st[0].key), 0);
        assert_int_equal(build_cache_first_missing(dir, &plan), 4);

        /* stage 1's disk gone: 3's overlay has no base, nothing after the root is usable */
        assert_int_equal(unlinkf("%s/%s", dir, d1), 0);
        assert_null(build_cache_disk(dir, st[3].key));
        assert_int_equal(build_cache_first_missing(dir, &plan), 0);

        /* rebuilding stage 1 makes a new file: the old overlay still points at the old name */
        put_qcow2(dir, d1b, NULL);
        assert_int_equal(build_cache_publish(dir, st[1].key, d1b), 0);
        assert_int_equal(build_cache_first_missing(dir, &plan), 2);

        /* an entry naming a path outside the directory is refused */
        assert_int_equal(build_cache_publish(dir, st[2].key, "../escape.qcow2"), 0);
        assert_null(build_cache_disk(dir, st[2].key));
        rm_rf(dir);
        free(dir);
}

/* Leftovers of a killed build for one key go; other keys' files and finished entries stay. */
static void test_cache_remove_tmp_only_that_keys_temporaries(void **state) {
        char *dir = mktree();
        put(dir, "aaaa-0123.qcow2.tmp", "x", 0644);
        put(dir, "aaaa.tar.tmp", "x", 0644);
        put(dir, "aaaa.disk", "aaaa-0123.qcow2\n", 0644);
        put(dir, "aaaa-0123.qcow2", "x", 0644);
        put(dir, "bbbb-0123.qcow2.tmp", "x", 0644);
        build_cache_remove_tmp(dir, "aaaa");
        const char *gone[] = { "aaaa-0123.qcow2.tmp", "aaaa.tar.tmp", NULL };
        const char *kept[] = { "aaaa.disk", "aaaa-0123.qcow2", "bbbb-0123.qcow2.tmp", NULL };
        for (size_t i = 0; gone[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, gone[i]);
                assert_int_equal(access(p, F_OK), -1);
        }
        for (size_t i = 0; kept[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, kept[i]);
                assert_int_equal(access(p, F_OK), 0);
        }
        rm_rf(dir);
        free(dir);
}

/* The per-key lock excludes a second holder (another open file description). */
static void test_cache_lock_is_exclusive(void **state) {
        char *dir = mktree();
        int fd = -1;
        assert_int_equal(build_cache_lock(dir, "k", &fd), 0);
        _cleanup_free_ char *p = build_cache_path(dir, "k", ".lock");
        int other = open(p, O_RDWR);
        assert_true(other >= 0);
        assert_int_equal(flock(other, LOCK_EX | LOCK_NB), -1);
        assert_int_equal(errno, EWOULDBLOCK);
        close(fd);
        assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
        close(other);
        rm_rf(dir);
        free(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plan_groups_phases_into_stages),
                cmocka_unit_test(test_plan_needs_root_and_always_makes_a_disk),
                cmocka_unit_test(test_plan_keys_change_only_from_the_changed_stage),
                cmocka_unit_test(test_plan_keys_equal_keys_recorded_before_libcrypto),
                cmocka_unit_test(test_key_env_selection_and_file_content),
                cmocka_unit_test(test_runner_runs_hooks_in_sort_n_order),
                cmocka_unit_test(test_runner_stops_at_first_failure),
                cmocka_unit_test(test_runner_inside_package_step_position),
                cmocka_unit_test(test_shell_quote_round_trip),
                cmocka_unit_test(test_qcow2_backing_from_real_qemu_img),
                cmocka_unit_test(test_cache_first_missing_follows_backing_chain),
                cmocka_unit_test(test_cache_remove_tmp_only_that_keys_temporaries),
                cmocka_unit_test(test_cache_lock_is_exclusive),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
