/* test_element.c — the builder's diskimage-builder engine: element search and
 * dependency resolution, hook assembly and ordering, package-installs
 * squashing, the hook environment, and stage cache keys.
 *
 * Fixture trees live in tests/unit/data/elements/{site,shipped}; "site" plays
 * the config's elements-dir and "shipped" poold's own elements/. Tests that
 * modify files build a private tree under a mkdtemp() directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "dib_element.h"
#include "dib_hooks.h"
#include "dib_pkginstalls.h"
#include "macro.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *fixture(const char *sub) {
        const char *src = getenv("POOLD_SRCDIR");
        return xasprintf("%s/tests/unit/data/elements/%s", src && *src ? src : ".", sub);
}

static char *real(const char *p) {
        char *r = realpath(p, NULL);
        assert_non_null(r);
        return r;
}

/* Resolve names (NULL-terminated) on the given dirs; returns r and fills *set / *err. */
static int resolve(const char *const *dirs, const char *const *names, unsigned flags, struct dib_element_set **set,
                   char **err) {
        char **path = xnew(char *, dib_strv_length(dirs) + 1);
        for (size_t i = 0; dirs[i]; i++)
                path[i] = fixture(dirs[i]);
        *set = NULL;
        *err = NULL;
        int r = dib_elements_resolve((const char *const *)path, names, flags, set, err);
        dib_strv_free(path);
        return r;
}

static const char *const SITE_SHIPPED[] = { "site", "shipped", NULL };
static const char *const SHIPPED[] = { "shipped", NULL };

static void assert_names(const struct dib_element_set *set, const char *const *want) {
        assert_int_equal(set->n_elements, dib_strv_length(want));
        for (size_t i = 0; want[i]; i++)
                assert_string_equal(set->elements[i].name, want[i]);
}

static bool strv_has_substr(char *const *l, const char *needle) {
        for (size_t i = 0; l && l[i]; i++)
                if (strstr(l[i], needle))
                        return true;
        return false;
}

static void write_file(const char *root, const char *rel, const char *content, mode_t mode) {
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

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(p);
}

static void rm_rf(const char *dir) { assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0); }

/* Order names as `LC_ALL=C sort -n` does, by running it. */
static char **gnu_sort_n(const char *const *names) {
        char tmpl[] = "/tmp/test_element_sortXXXXXX";
        int fd = mkstemp(tmpl);
        assert_true(fd >= 0);
        FILE *f = fdopen(fd, "w");
        for (size_t i = 0; names[i]; i++)
                fprintf(f, "%s\n", names[i]);
        fclose(f);
        _cleanup_free_ char *cmd = xasprintf("LC_ALL=C sort -n %s", tmpl);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char **out = xnew(char *, dib_strv_length(names) + 1);
        char line[256];
        size_t n = 0;
        while (fgets(line, sizeof(line), p) && n < dib_strv_length(names)) {
                line[strcspn(line, "\n")] = '\0';
                out[n++] = xstrdup(line);
        }
        assert_int_equal(pclose(p), 0);
        unlink(tmpl);
        assert_int_equal(n, dib_strv_length(names));
        return out;
}

static int cmp_sort_n(const void *a, const void *b) {
        return dib_sort_n_compare(*(char *const *)a, *(char *const *)b);
}

/* ---- resolution ------------------------------------------------------------- */

/* BFS over element-deps (comments, blanks and whitespace ignored), with a
 * vm <-> block-dev cycle visited once; IMAGE_ELEMENT in discovery order and
 * IMAGE_ELEMENT_YAML sorted by name with real paths. */
static void test_resolve_deps_bfs_cycle_and_exports(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "ubuntu-minimal", NULL };

        assert_int_equal(resolve(SITE_SHIPPED, names, DIB_RESOLVE_REQUIRE_OS, &set, &err), 0);
        assert_null(err);
        assert_names(set, (const char *const[]){ "ubuntu-minimal", "vm", "sysprep", "common", "block-dev", NULL });
        assert_string_equal(set->image_element, "ubuntu-minimal vm sysprep common block-dev");
        assert_true(dib_strv_contains((const char *const *)set->provided, "operating-system"));

        _cleanup_free_ char *site = fixture("site"), *shipped = fixture("shipped");
        _cleanup_free_ char *rs = real(site), *rh = real(shipped);
        _cleanup_free_ char *yaml =
                xasprintf("block-dev: %s/block-dev\ncommon: %s/common\nsysprep: %s/sysprep\n"
                          "ubuntu-minimal: %s/ubuntu-minimal\nvm: %s/vm\n",
                          rh, rs, rh, rh, rh);
        assert_string_equal(set->image_element_yaml, yaml);
        const struct dib_element *vm = dib_element_set_get(set, "vm");
        assert_non_null(vm);
        assert_string_equal(vm->deps[0], "block-dev");
        assert_null(vm->deps[1]);
        const struct dib_element *os = dib_element_set_get(set, "ubuntu-minimal");
        assert_string_equal(os->deps[0], "vm");
        assert_string_equal(os->deps[1], "sysprep");
        assert_string_equal(os->deps[2], "common");
        assert_null(os->deps[3]);
        assert_null(dib_element_set_get(set, "fake-vm"));
        dib_element_set_free(set);
}

/* An element provided by another (vm by fake-vm) is dropped, and its deps
 * are never expanded. */
static void test_resolve_provided_element_dropped(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "fake-vm", "ubuntu-minimal", NULL };

        assert_int_equal(resolve(SITE_SHIPPED, names, 0, &set, &err), 0);
        assert_names(set, (const char *const[]){ "fake-vm", "ubuntu-minimal", "sysprep", "common", NULL });
        assert_null(dib_element_set_get(set, "vm"));
        assert_null(dib_element_set_get(set, "block-dev"));
        assert_true(dib_strv_contains((const char *const *)set->provided, "vm"));
        dib_element_set_free(set);
}

/* Two elements providing the same name is an error naming both. */
static void test_resolve_provided_twice_is_error(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "os-a", "os-b", NULL };

        assert_int_equal(resolve(SHIPPED, names, 0, &set, &err), -EEXIST);
        assert_null(set);
        assert_string_equal(err, "'foo' is provided by both 'os-a' and 'os-b'");
        free(err);
}

/* Listing an element that another listed element provides is an error. */
static void test_resolve_user_listed_but_provided_is_error(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "fake-vm", "vm", "ubuntu-minimal", NULL };

        assert_int_equal(resolve(SITE_SHIPPED, names, 0, &set, &err), -EEXIST);
        assert_null(set);
        assert_string_equal(err, "element 'vm' is listed in the diskimage but already provided by 'fake-vm'");
        free(err);
}

/* A missing dependency is reported with the chain that required it and the
 * search path; a missing user-listed element says so. */
static void test_resolve_missing_element_reports_chain(void **state) {
        struct dib_element_set *set;
        char *err;
        _cleanup_free_ char *site = fixture("site"), *shipped = fixture("shipped");

        assert_int_equal(resolve(SITE_SHIPPED, (const char *const[]){ "mybase", NULL }, 0, &set, &err), -ENOENT);
        _cleanup_free_ char *want = xasprintf(
                "element 'vm-missing' (required by 'ubuntu-broken' <- 'mybase') not found in ELEMENTS_PATH=%s:%s",
                site, shipped);
        assert_string_equal(err, want);
        free(err);

        assert_int_equal(resolve(SITE_SHIPPED, (const char *const[]){ "nope", NULL }, 0, &set, &err), -ENOENT);
        _cleanup_free_ char *want2 =
                xasprintf("element 'nope' (listed in the diskimage) not found in ELEMENTS_PATH=%s:%s", site, shipped);
        assert_string_equal(err, want2);
        free(err);
}

/* DIB_RESOLVE_REQUIRE_OS rejects a set where nothing provides operating-system. */
static void test_resolve_require_os_flag(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "noos", NULL };

        assert_int_equal(resolve(SHIPPED, names, DIB_RESOLVE_REQUIRE_OS, &set, &err), -ENOMSG);
        assert_non_null(strstr(err, "operating-system"));
        free(err);
        assert_int_equal(resolve(SHIPPED, names, 0, &set, &err), 0);
        assert_names(set, (const char *const[]){ "noos", NULL });
        dib_element_set_free(set);
}

/* Earlier search directories override later ones: site/common (no deps)
 * hides shipped/common (whose dep does not exist), and swapping the order
 * picks the shipped copy. */
static void test_elements_dir_override_order(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "common", NULL };

        assert_int_equal(resolve(SITE_SHIPPED, names, 0, &set, &err), 0);
        _cleanup_free_ char *site = fixture("site/common");
        _cleanup_free_ char *rs = real(site);
        assert_string_equal(set->elements[0].path, rs);
        assert_null(set->elements[0].deps[0]);
        dib_element_set_free(set);

        assert_int_equal(resolve((const char *const[]){ "shipped", "site", NULL }, names, 0, &set, &err), -ENOENT);
        assert_non_null(strstr(err, "element 'only-in-shadowed-common' (required by 'common')"));
        free(err);

        _cleanup_free_ char *sdir = fixture("site"), *hdir = fixture("shipped");
        char *found = NULL;
        assert_int_equal(dib_element_find((const char *const[]){ hdir, sdir, NULL }, "common", &found), 0);
        _cleanup_free_ char *hcommon = fixture("shipped/common");
        _cleanup_free_ char *rh = real(hcommon);
        assert_string_equal(found, rh);
        free(found);
        assert_int_equal(dib_element_find((const char *const[]){ hdir, NULL }, "mybase", &found), -ENOENT);
}

/* The config's colon list is split (empty entries dropped) and the shipped
 * directory appended last. */
static void test_search_path_split(void **state) {
        char **l = dib_element_search_path("/etc/a::/b:", "/usr/share/poold/elements");
        assert_int_equal(dib_strv_length((const char *const *)l), 3);
        assert_string_equal(l[0], "/etc/a");
        assert_string_equal(l[1], "/b");
        assert_string_equal(l[2], "/usr/share/poold/elements");
        dib_strv_free(l);
        l = dib_element_search_path(NULL, "/s");
        assert_int_equal(dib_strv_length((const char *const *)l), 1);
        assert_string_equal(l[0], "/s");
        dib_strv_free(l);
}

/* A search path entry that is not a directory, and names that would escape
 * the search directory, are refused. */
static void test_resolve_bad_path_and_names(void **state) {
        struct dib_element_set *set = NULL;
        char *err = NULL;

        assert_int_equal(dib_elements_resolve((const char *const[]){ "/nonexistent-poold-dir", NULL },
                                              (const char *const[]){ "x", NULL }, 0, &set, &err),
                         -ENOENT);
        assert_string_equal(err, "ELEMENTS_PATH entry '/nonexistent-poold-dir' is not a directory");
        free(err);
        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "../shipped/vm", NULL }, 0, &set, &err), -EINVAL);
        free(err);
        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "..", NULL }, 0, &set, &err), -EINVAL);
        free(err);
}

/* A name listed twice (parent chains append elements) counts once instead of
 * tripping the provided-twice rule. */
static void test_resolve_duplicate_user_element_counts_once(void **state) {
        struct dib_element_set *set;
        char *err;
        const char *const names[] = { "ubuntu-minimal", "vm", "ubuntu-minimal", NULL };

        assert_int_equal(resolve(SITE_SHIPPED, names, DIB_RESOLVE_REQUIRE_OS, &set, &err), 0);
        assert_names(set, (const char *const[]){ "ubuntu-minimal", "vm", "sysprep", "common", "block-dev", NULL });
        dib_element_set_free(set);
}

/* ---- hooks ------------------------------------------------------------------ */

static struct dib_hooks *collect_ab(struct dib_element_set **ret_set) {
        struct dib_element_set *set;
        struct dib_hooks *h = NULL;
        char *err;
        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "hooks-a", "hooks-b", NULL }, 0, &set, &err), 0);
        assert_int_equal(dib_hooks_collect(set, &h, &err), 0);
        *ret_set = set;
        return h;
}

/* sort -n semantics: no number sorts as 0, numbers compare numerically
 * ("9-bar" before "10-foo"), ties by bytes ("README" before "bar",
 * "01-x" before "1-x"), '-' makes a negative number, '.' a fraction. */
static void test_sort_n_compare_semantics(void **state) {
        assert_true(dib_sort_n_compare("bar", "9-bar") < 0);
        assert_true(dib_sort_n_compare("9-bar", "10-foo") < 0);
        assert_true(dib_sort_n_compare("10-foo", "9-bar") > 0);
        assert_true(dib_sort_n_compare("10-aaa", "10-foo") < 0);
        assert_true(dib_sort_n_compare("README", "bar") < 0);
        assert_true(dib_sort_n_compare("01-x", "1-x") < 0);
        assert_true(dib_sort_n_compare("-5-x", "bar") < 0);
        assert_true(dib_sort_n_compare("1-x", "1.5-x") < 0);
        assert_true(dib_sort_n_compare("1.5-x", "2-x") < 0);
        assert_true(dib_sort_n_compare("100-last", "99-x") > 0);
        assert_int_equal(dib_sort_n_compare("10-foo", "10-foo"), 0);
}

/* Our order equals GNU `LC_ALL=C sort -n` on names built to hit every branch. */
static void test_sort_n_matches_gnu_sort(void **state) {
        const char *const names[] = { "10-foo", "9-bar", "bar", "README", "-5-neg", "-05-neg", "-x", "0", "00",
                                      "000-z", "1.5-frac", "1.50-frac", "1.05-frac", ".5-dot", "-.5-negdot",
                                      "100-last", "10-aaa", "010-zero-pad", "1", "1-a", "1_b", "9", "-10", "-9",
                                      "20.1.3-ver", "20.1-ver", "_x", "Z", "a", "99999999999999999999-big", NULL };
        size_t n = dib_strv_length(names);
        char **gnu = gnu_sort_n(names);
        const char **ours = xnew(const char *, n + 1);
        memcpy(ours, names, n * sizeof(char *));
        qsort(ours, n, sizeof(char *), cmp_sort_n);
        for (size_t i = 0; i < n; i++)
                assert_string_equal(ours[i], gnu[i]);
        free(ours);
        dib_strv_free(gnu);
}

/* Scripts of one phase from several elements are merged and ordered by
 * sort -n; each carries its absolute path and element; the full file list
 * also keeps the files that will not run; a symlinked script is followed. */
static void test_hooks_phase_order_sort_n(void **state) {
        struct dib_element_set *set;
        struct dib_hooks *h = collect_ab(&set);
        const struct dib_phase_hooks *in = &h->phase[DIB_PHASE_INSTALL];
        static const char *const want[] = { "bar", "05-first", "9-bar", "10-aaa", "10-foo", "30-link", "100-last" };
        static const char *const want_el[] = { "hooks-a", "hooks-b", "hooks-a", "hooks-b",
                                               "hooks-a", "hooks-b", "hooks-b" };

        assert_int_equal(in->n_scripts, ELEMENTSOF(want));
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                assert_string_equal(in->scripts[i]->name, want[i]);
                assert_string_equal(in->scripts[i]->element, want_el[i]);
                const struct dib_element *e = dib_element_set_get(set, want_el[i]);
                _cleanup_free_ char *p = xasprintf("%s/install.d/%s", e->path, want[i]);
                assert_string_equal(in->scripts[i]->path, p);
                assert_true(in->scripts[i]->path[0] == '/');
                assert_true(S_ISREG(in->scripts[i]->mode));
        }

        static const char *const want_files[] = { "README", "bar", "05-first", "9-bar", "10-aaa", "10-foo",
                                                  "30-link", "50-notexec", "60-bad.name", "100-last" };
        assert_int_equal(in->n_files, ELEMENTSOF(want_files));
        const char **names = xnew(const char *, in->n_files + 1);
        for (size_t i = 0; i < in->n_files; i++) {
                assert_string_equal(in->files[i].name, want_files[i]);
                names[i] = in->files[i].name;
        }
        /* and that is exactly what GNU sort -n says */
        char **gnu = gnu_sort_n(names);
        for (size_t i = 0; i < in->n_files; i++)
                assert_string_equal(gnu[i], want_files[i]);
        dib_strv_free(gnu);
        free(names);

        assert_int_equal(h->phase[DIB_PHASE_ROOT].n_scripts, 1);
        assert_string_equal(h->phase[DIB_PHASE_ROOT].scripts[0]->name, "10-root");
        assert_int_equal(h->phase[DIB_PHASE_PRE_INSTALL].n_scripts, 1);
        assert_string_equal(h->phase[DIB_PHASE_PRE_INSTALL].scripts[0]->element, "hooks-b");
        assert_int_equal(h->phase[DIB_PHASE_POST_ROOT].n_scripts, 1);
        assert_int_equal(h->phase[DIB_PHASE_FINALISE].n_scripts, 1);
        assert_int_equal(h->phase[DIB_PHASE_CLEANUP].n_scripts, 0);
        assert_int_equal(h->phase[DIB_PHASE_BLOCK_DEVICE].n_files, 0);
        dib_hooks_free(h);
        dib_element_set_free(set);
}

/* The same file name in one phase from two elements is fatal, naming both. */
static void test_hooks_duplicate_name_across_elements_fatal(void **state) {
        struct dib_element_set *set;
        struct dib_hooks *h = NULL;
        char *err;

        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "dup-a", "dup-b", NULL }, 0, &set, &err), 0);
        assert_int_equal(dib_hooks_collect(set, &h, &err), -EEXIST);
        assert_null(h);
        assert_string_equal(err, "duplicate hook install.d/50-same in elements 'dup-a' and 'dup-b'");
        free(err);
        dib_element_set_free(set);
}

/* Files DIB silently ignores (not executable, bad name, dangling symlink) are
 * skipped and listed as warnings. */
static void test_hooks_nonexecutable_skipped_with_warning(void **state) {
        struct dib_element_set *set;
        struct dib_hooks *h = collect_ab(&set);

        assert_true(strv_has_substr(h->warnings, "install.d/50-notexec in element 'hooks-a' is not executable"));
        assert_true(strv_has_substr(h->warnings, "install.d/README in element 'hooks-a' is not executable"));
        assert_true(strv_has_substr(h->warnings, "install.d/60-bad.name in element 'hooks-a': name does not match"));
        assert_true(strv_has_substr(h->warnings, "install.d/00-dangling in element 'hooks-b' is a dangling symlink"));
        assert_int_equal(dib_strv_length((const char *const *)h->warnings), 4);
        for (size_t i = 0; i < h->phase[DIB_PHASE_INSTALL].n_scripts; i++) {
                assert_string_not_equal(h->phase[DIB_PHASE_INSTALL].scripts[i]->name, "50-notexec");
                assert_string_not_equal(h->phase[DIB_PHASE_INSTALL].scripts[i]->name, "60-bad.name");
        }
        dib_hooks_free(h);
        dib_element_set_free(set);
}

/* environment.d files are sourced whether executable or not and may contain
 * dots; top-level files and other subdirectories are recorded; tests/ is not. */
static void test_hooks_environment_top_files_other_dirs(void **state) {
        struct dib_element_set *set;
        struct dib_hooks *h = collect_ab(&set);
        const struct dib_phase_hooks *env = &h->phase[DIB_PHASE_ENVIRONMENT];

        assert_int_equal(env->n_scripts, 2);
        assert_string_equal(env->scripts[0]->name, "05-b-env");
        assert_string_equal(env->scripts[1]->name, "10-a-env.bash");

        assert_int_equal(h->n_top_files, 3);
        assert_string_equal(h->top_files[0].name, "README");
        assert_string_equal(h->top_files[1].name, "package-installs.yaml");
        assert_string_equal(h->top_files[1].element, "hooks-a");
        assert_string_equal(h->top_files[2].name, "package-installs.json");
        assert_string_equal(h->top_files[2].element, "hooks-b");

        assert_int_equal(h->n_other_dirs, 2);
        assert_string_equal(h->other_dirs[0].name, "bin");
        assert_string_equal(h->other_dirs[1].name, "lib");
        dib_hooks_free(h);
        dib_element_set_free(set);
}

/* Phases are classified as DIB runs them: chroot phases inside, the rest on
 * the host; names round-trip; out-of-range values are rejected. */
static void test_phase_inside_outside_classification(void **state) {
        static const struct {
                enum dib_phase p;
                const char *name;
                enum dib_phase_where w;
        } t[] = {
                { DIB_PHASE_ROOT, "root.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_EXTRA_DATA, "extra-data.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_PRE_INSTALL, "pre-install.d", DIB_WHERE_INSIDE },
                { DIB_PHASE_INSTALL, "install.d", DIB_WHERE_INSIDE },
                { DIB_PHASE_POST_INSTALL, "post-install.d", DIB_WHERE_INSIDE },
                { DIB_PHASE_POST_ROOT, "post-root.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_BLOCK_DEVICE, "block-device.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_PRE_FINALISE, "pre-finalise.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_FINALISE, "finalise.d", DIB_WHERE_INSIDE },
                { DIB_PHASE_CLEANUP, "cleanup.d", DIB_WHERE_OUTSIDE },
                { DIB_PHASE_ENVIRONMENT, "environment.d", DIB_WHERE_SOURCED },
        };
        assert_int_equal(ELEMENTSOF(t), _DIB_PHASE_MAX);
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                assert_string_equal(dib_phase_to_string(t[i].p), t[i].name);
                assert_int_equal(dib_phase_from_string(t[i].name), t[i].p);
                assert_int_equal(dib_phase_where(t[i].p), t[i].w);
        }
        assert_string_equal(dib_phase_where_to_string(DIB_WHERE_INSIDE), "inside");
        assert_string_equal(dib_phase_where_to_string(DIB_WHERE_OUTSIDE), "outside");
        assert_int_equal(dib_phase_from_string("install"), _DIB_PHASE_INVALID);
        assert_int_equal(dib_phase_where(_DIB_PHASE_MAX), _DIB_WHERE_INVALID);
        assert_null(dib_phase_to_string(_DIB_PHASE_INVALID));
}

/* ---- package-installs ------------------------------------------------------- */

static void assert_pkgs(const struct dib_pkg *v, size_t n, const char *const *want) {
        assert_int_equal(n, dib_strv_length(want));
        for (size_t i = 0; i < n; i++)
                assert_string_equal(v[i].name, want[i]);
}

/* Squash on amd64 with DIB_FEATURE=on, DIB_RELEASE=jammy: phase, build-only,
 * uninstall, arch/not-arch, when (single, list, per-entry list), installtype
 * (default and per element) and dib_python_version all applied. */
static void test_pkginstalls_squash_when_arch_phase_uninstall(void **state) {
        struct dib_element_set *set;
        struct dib_pkginstalls *p = NULL;
        char *err = NULL;
        const char *const envp[] = { "DIB_FEATURE=on", "DIB_RELEASE=jammy", "DIB_DEFAULT_INSTALLTYPE=package",
                                     "DIB_INSTALLTYPE_hooks_b=source", "DIB_PYTHON_VERSION=3", NULL };
        struct dib_pkg_env env = { .arch = "amd64", .envp = envp };

        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "hooks-a", "hooks-b", NULL }, 0, &set, &err), 0);
        assert_int_equal(dib_pkginstalls_squash(set, &env, &p, &err), 0);
        assert_null(err);

        assert_int_equal(p->n_phases, 3);
        assert_string_equal(p->phases[0].phase, "install.d");
        assert_string_equal(p->phases[1].phase, "pre-install.d");
        assert_string_equal(p->phases[2].phase, "post-install.d");

        const struct dib_pkg_phase *in = dib_pkginstalls_phase(p, "install.d");
        assert_pkgs(in->install, in->n_install,
                    (const char *const[]){ "curl", "vim", "build-essential", "grub-efi-amd64", "syslinux",
                                           "python3-dev", "tcpdump", "from-package", "py3only", "jq", "hooks-b-src",
                                           NULL });
        assert_string_equal(in->install[0].element, "hooks-a");
        assert_string_equal(in->install[9].element, "hooks-b");
        assert_pkgs(in->uninstall, in->n_uninstall, (const char *const[]){ "build-essential", NULL });

        const struct dib_pkg_phase *pre = dib_pkginstalls_phase(p, "pre-install.d");
        assert_pkgs(pre->install, pre->n_install, (const char *const[]){ "gcc", NULL });
        assert_int_equal(pre->n_uninstall, 0);

        const struct dib_pkg_phase *post = dib_pkginstalls_phase(p, "post-install.d");
        assert_int_equal(post->n_install, 0);
        assert_pkgs(post->uninstall, post->n_uninstall, (const char *const[]){ "old-tool", NULL });
        assert_null(dib_pkginstalls_phase(p, "finalise.d"));
        dib_pkginstalls_free(p);
        dib_element_set_free(set);
}

/* The same files on arm64 with the feature off, release focal and no
 * installtype settings select the other branches. */
static void test_pkginstalls_other_arch_and_env(void **state) {
        struct dib_element_set *set;
        struct dib_pkginstalls *p = NULL;
        char *err = NULL;
        const char *const envp[] = { "DIB_FEATURE=off", "DIB_RELEASE=focal", NULL };
        struct dib_pkg_env env = { .arch = "arm64", .envp = envp };

        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "hooks-a", "hooks-b", NULL }, 0, &set, &err), 0);
        assert_int_equal(dib_pkginstalls_squash(set, &env, &p, &err), 0);
        const struct dib_pkg_phase *in = dib_pkginstalls_phase(p, "install.d");
        /* installtype defaults to "source" (package-installs-squash), python version unset */
        assert_pkgs(in->install, in->n_install,
                    (const char *const[]){ "curl", "vim", "build-essential", "grub-efi-arm64", "shim", "from-source",
                                           "jq", "hooks-b-src", NULL });
        const struct dib_pkg_phase *post = dib_pkginstalls_phase(p, "post-install.d");
        assert_pkgs(post->install, post->n_install, (const char *const[]){ "tcpdump", NULL });
        assert_pkgs(post->uninstall, post->n_uninstall, (const char *const[]){ "old-tool", NULL });
        dib_pkginstalls_free(p);
        dib_element_set_free(set);
}

/* Parse one temporary file; returns r, fills *err. */
static int parse_text(const char *text, const char *const *envp, char **path_out, char **err) {
        char tmpl[] = "/tmp/test_element_pkgXXXXXX";
        int fd = mkstemp(tmpl);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        struct dib_pkginstalls acc = {};
        struct dib_pkg_env env = { .arch = "amd64", .envp = envp };
        *err = NULL;
        int r = dib_pkginstalls_parse_file(tmpl, "el", &env, &acc, err);
        dib_pkginstalls_done(&acc);
        unlink(tmpl);
        *path_out = xstrdup(tmpl);
        return r;
}

/* Bad YAML and wrong shapes are reported as file:line:column. */
static void test_pkginstalls_bad_yaml_reports_position(void **state) {
        char *path, *err;

        assert_int_equal(parse_text("curl:\n  phase: [install.d\nvim:\n", NULL, &path, &err), -EBADMSG);
        _cleanup_free_ char *prefix = xasprintf("%s:", path);
        assert_true(strncmp(err, prefix, strlen(prefix)) == 0);
        unsigned line, col;
        assert_int_equal(sscanf(err + strlen(prefix), "%u:%u:", &line, &col), 2);
        assert_true(line >= 2 && line <= 4);
        free(err);
        free(path);

        assert_int_equal(parse_text("# comment\n- curl\n- vim\n", NULL, &path, &err), -EBADMSG);
        _cleanup_free_ char *want = xasprintf("%s:2:1: expected a mapping of package names", path);
        assert_string_equal(err, want);
        free(err);
        free(path);

        assert_int_equal(parse_text("curl:\n  phase: install.d\nvim: 3\n", NULL, &path, &err), -EBADMSG);
        _cleanup_free_ char *want2 =
                xasprintf("%s:3:6: package 'vim': expected null, a mapping or a list of mappings", path);
        assert_string_equal(err, want2);
        free(err);
        free(path);

        assert_int_equal(parse_text("a:\n---\nb:\n", NULL, &path, &err), -EBADMSG);
        assert_non_null(strstr(err, "single document"));
        free(err);
        free(path);
}

/* when: on an unset variable, a malformed when:, and arch with not-arch are errors. */
static void test_pkginstalls_when_and_arch_errors(void **state) {
        char *path, *err;

        assert_int_equal(parse_text("curl:\n  when: DIB_NOT_SET = 1\n", NULL, &path, &err), -ENOKEY);
        assert_non_null(strstr(err, "when: variable 'DIB_NOT_SET' is not set"));
        free(err);
        free(path);

        const char *const envp[] = { "X=1", NULL };
        assert_int_equal(parse_text("curl:\n  when: X == 1\n", envp, &path, &err), 0); /* '=' then val "= 1" */
        free(path);
        assert_int_equal(parse_text("curl:\n  when: X < 1\n", envp, &path, &err), -EINVAL);
        assert_non_null(strstr(err, "malformed when: statement 'X < 1'"));
        free(err);
        free(path);

        assert_int_equal(parse_text("curl:\n  arch: amd64\n  not-arch: arm64\n", NULL, &path, &err), -EINVAL);
        assert_non_null(strstr(err, "both arch and not-arch"));
        free(err);
        free(path);
}

/* ---- environment ------------------------------------------------------------ */

static struct dib_element_set *small_set(void) {
        struct dib_element_set *set;
        char *err;
        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "noos", NULL }, 0, &set, &err), 0);
        return set;
}

/* Defaults DIB gives hooks, derived paths, and the element exports. */
static void test_env_defaults(void **state) {
        struct dib_element_set *set = small_set();
        struct dib_env *env = NULL;
        char *err = NULL;
        struct dib_env_params p = {
                .image_name = "/var/lib/poold/images/ubuntu-jammy-0000000001",
                .diskimage_name = "ubuntu-jammy",
                .release = "jammy",
                .target_root = "/tmp/b/mnt",
                .tmp_build_dir = "/tmp/b",
                .tmp_image_dir = "/tmp/i",
                .image_types = (const char *const[]){ "qcow2", "raw", NULL },
                .elements = set,
                .host_environ = (const char *const[]){ "HOME=/home/poold", "PATH=/host/bin", NULL },
        };

        assert_int_equal(dib_env_build(&p, &env, &err), 0);
        assert_string_equal(env->keys[0], "ARCH");
        assert_string_equal(dib_env_get(env, "ARCH"), "amd64");
        assert_string_equal(dib_env_get(env, "TARGET_ROOT"), "/tmp/b/mnt");
        assert_string_equal(dib_env_get(env, "TMP_BUILD_DIR"), "/tmp/b");
        assert_string_equal(dib_env_get(env, "TMP_IMAGE_DIR"), "/tmp/i");
        assert_string_equal(dib_env_get(env, "TMP_HOOKS_PATH"), "/tmp/b/hooks");
        assert_string_equal(dib_env_get(env, "TMP_MOUNT_PATH"), "/tmp/b/mnt");
        assert_string_equal(dib_env_get(env, "IMAGE_NAME"), "/var/lib/poold/images/ubuntu-jammy-0000000001");
        assert_string_equal(dib_env_get(env, "DIB_IMAGE_NAME"), "ubuntu-jammy");
        assert_string_equal(dib_env_get(env, "IMAGE_ELEMENT"), "noos");
        assert_string_equal(dib_env_get(env, "IMAGE_ELEMENT_YAML"), set->image_element_yaml);
        assert_string_equal(dib_env_get(env, "IMAGE_TYPES"), "qcow2 raw");
        assert_string_equal(dib_env_get(env, "DIB_RELEASE"), "jammy");
        assert_string_equal(dib_env_get(env, "DIB_IMAGE_CACHE"), "/home/poold/.cache/image-create");
        assert_string_equal(dib_env_get(env, "DIB_ROOT_LABEL"), "cloudimg-rootfs");
        assert_string_equal(dib_env_get(env, "DIB_ROOT_FSTYPE"), "ext4");
        assert_string_equal(dib_env_get(env, "FS_TYPE"), "ext4");
        assert_string_equal(dib_env_get(env, "DIB_DEFAULT_INSTALLTYPE"), "package");
        assert_string_equal(dib_env_get(env, "DIB_PYTHON_EXEC"), "/usr/bin/python3");
        assert_string_equal(dib_env_get(env, "LC_ALL"), "C");
        /* the host PATH is not passed through; ours is */
        assert_string_equal(dib_env_get(env, "PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        _cleanup_free_ char *shipped = fixture("shipped");
        assert_string_equal(dib_env_get(env, "ELEMENTS_PATH"), shipped);
        assert_null(dib_env_get(env, "HOME"));

        char **envp = dib_env_to_envp(env);
        assert_int_equal(dib_strv_length((const char *const *)envp), env->n);
        assert_string_equal(envp[0], "ARCH=amd64");
        dib_strv_free(envp);
        dib_env_free(env);

        /* no release, no formats: DIB_RELEASE absent, IMAGE_TYPES=qcow2 */
        p.release = NULL;
        p.image_types = NULL;
        assert_int_equal(dib_env_build(&p, &env, &err), 0);
        assert_null(dib_env_get(env, "DIB_RELEASE"));
        assert_string_equal(dib_env_get(env, "IMAGE_TYPES"), "qcow2");
        dib_env_free(env);
        dib_element_set_free(set);
}

/* Host DIB_* pass through over defaults, env-vars override both in place,
 * but TARGET_ROOT, TMP_* and IMAGE_ELEMENT(_YAML) stay ours and are reported ignored;
 * malformed env-vars and missing required inputs are refused. */
static void test_env_override_rules(void **state) {
        struct dib_element_set *set = small_set();
        struct dib_env *env = NULL;
        char *err = NULL;
        struct dib_env_params p = {
                .image_name = "/img/x",
                .release = "jammy",
                .arch = "arm64",
                .target_root = "/b/mnt",
                .tmp_build_dir = "/b",
                .tmp_image_dir = "/i",
                .elements = set,
                .host_environ = (const char *const[]){ "DIB_ROOT_LABEL=host-label", "DIB_DEBUG_TRACE=1",
                                                       "DIB_HOST_ONLY=yes", "NOT_DIB=1", NULL },
                .env_vars = (const char *const[]){ "DIB_ROOT_LABEL=config-label", "DIB_RELEASE=noble",
                                                   "TARGET_ROOT=/evil", "TMP_HOOKS_PATH=/evil",
                                                   "IMAGE_ELEMENT=evil", "MY_VAR=a=b", "ARCH=amd64", NULL },
        };

        assert_int_equal(dib_env_build(&p, &env, &err), 0);
        assert_string_equal(dib_env_get(env, "DIB_ROOT_LABEL"), "config-label");
        assert_string_equal(dib_env_get(env, "DIB_DEBUG_TRACE"), "1");
        assert_string_equal(dib_env_get(env, "DIB_HOST_ONLY"), "yes");
        assert_null(dib_env_get(env, "NOT_DIB"));
        assert_string_equal(dib_env_get(env, "DIB_RELEASE"), "noble");
        assert_string_equal(dib_env_get(env, "MY_VAR"), "a=b");
        assert_string_equal(dib_env_get(env, "ARCH"), "amd64");
        assert_string_equal(env->keys[0], "ARCH"); /* overridden in place, order kept */
        assert_string_equal(dib_env_get(env, "TARGET_ROOT"), "/b/mnt");
        assert_string_equal(dib_env_get(env, "TMP_HOOKS_PATH"), "/b/hooks");
        assert_string_equal(dib_env_get(env, "IMAGE_ELEMENT"), "noos");
        assert_int_equal(dib_strv_length((const char *const *)env->ignored), 3);
        assert_string_equal(env->ignored[0], "TARGET_ROOT=/evil");
        for (size_t i = 0; i < env->n; i++)
                for (size_t j = i + 1; j < env->n; j++)
                        assert_string_not_equal(env->keys[i], env->keys[j]);
        dib_env_free(env);

        p.env_vars = (const char *const[]){ "1BAD=x", NULL };
        assert_int_equal(dib_env_build(&p, &env, &err), -EINVAL);
        assert_non_null(strstr(err, "1BAD=x"));
        free(err);
        p.env_vars = (const char *const[]){ "NOEQUALS", NULL };
        assert_int_equal(dib_env_build(&p, &env, &err), -EINVAL);
        free(err);
        p.env_vars = NULL;
        p.target_root = NULL;
        assert_int_equal(dib_env_build(&p, &env, &err), -EINVAL);
        assert_string_equal(err, "dib_env_build: target_root is required");
        free(err);
        dib_element_set_free(set);
}

/* ---- stage keys ------------------------------------------------------------- */

struct keytree {
        char dir[64];
        char *elements;
};

static void keytree_make(struct keytree *t) {
        strcpy(t->dir, "/tmp/test_element_keyXXXXXX");
        assert_non_null(mkdtemp(t->dir));
        t->elements = xasprintf("%s/elements", t->dir);
        write_file(t->dir, "elements/e1/root.d/10-a", "#!/bin/sh\necho a\n", 0755);
        write_file(t->dir, "elements/e1/install.d/20-b", "#!/bin/sh\necho b\n", 0755);
        write_file(t->dir, "elements/e1/environment.d/00-env", "export E=1\n", 0644);
        write_file(t->dir, "elements/e1/bin/tool", "#!/bin/sh\n", 0755);
        write_file(t->dir, "elements/e2/install.d/30-c", "#!/bin/sh\necho c\n", 0755);
        write_file(t->dir, "elements/e2/element-deps", "e1\n", 0644);
}

static void keytree_free(struct keytree *t) {
        rm_rf(t->dir);
        free(t->elements);
}

/* Collect afresh (as a new builder run would) and compute the key. */
static void key_of(struct keytree *t, const char *const *phases, const char *const *env_vars, const char *release,
                   const char *parent, char out[SHA256_HEX_SIZE]) {
        struct dib_element_set *set;
        struct dib_hooks *h;
        char *err = NULL;
        assert_int_equal(dib_elements_resolve((const char *const[]){ t->elements, NULL },
                                              (const char *const[]){ "e2", NULL }, 0, &set, &err),
                         0);
        assert_int_equal(dib_hooks_collect(set, &h, &err), 0);
        assert_int_equal(dib_stage_key(h, phases, env_vars, release, parent, out, &err), 0);
        assert_int_equal(strlen(out), 64);
        dib_hooks_free(h);
        dib_element_set_free(set);
}

static void set_file(struct keytree *t, const char *rel, const char *content) {
        _cleanup_free_ char *p = xasprintf("%s/%s", t->dir, rel);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        write_file(t->dir, rel, content, st.st_mode & 07777);
}

static const char *const ROOT_PHASE[] = { "root.d", NULL };
static const char *const INSTALL_PHASE[] = { "pre-install.d", "install.d", "post-install.d", NULL };
static const char *const ENV1[] = { "DIB_A=1", "DIB_B=2", NULL };

/* The key is stable across runs and unchanged by mtime or env-var order, but
 * changes with one byte of a script, a mode bit, an env-var, the release or
 * the parent key; a change in a later phase leaves an earlier stage's key alone. */
static void test_stage_key_inputs(void **state) {
        struct keytree t;
        char k0[SHA256_HEX_SIZE], k[SHA256_HEX_SIZE], inst0[SHA256_HEX_SIZE];
        keytree_make(&t);
        _cleanup_free_ char *script = xasprintf("%s/elements/e1/root.d/10-a", t.dir);

        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k0);
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_equal(k, k0); /* stable across runs */
        key_of(&t, INSTALL_PHASE, ENV1, "jammy", k0, inst0);
        assert_string_not_equal(inst0, k0);

        /* mtime does not matter */
        struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
        assert_int_equal(utimensat(AT_FDCWD, script, ts, 0), 0);
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_equal(k, k0);

        /* env-var order does not matter, content does */
        key_of(&t, ROOT_PHASE, (const char *const[]){ "DIB_B=2", "DIB_A=1", NULL }, "jammy", "parent0", k);
        assert_string_equal(k, k0);
        key_of(&t, ROOT_PHASE, (const char *const[]){ "DIB_A=1", "DIB_B=3", NULL }, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);
        key_of(&t, ROOT_PHASE, (const char *const[]){ "DIB_A=1", NULL }, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);

        /* release and parent key */
        key_of(&t, ROOT_PHASE, ENV1, "noble", "parent0", k);
        assert_string_not_equal(k, k0);
        key_of(&t, ROOT_PHASE, ENV1, NULL, "parent0", k);
        assert_string_not_equal(k, k0);
        char kempty[SHA256_HEX_SIZE];
        key_of(&t, ROOT_PHASE, ENV1, "", "parent0", kempty);
        assert_string_not_equal(k, kempty);
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent1", k);
        assert_string_not_equal(k, k0);

        /* one byte of a script */
        set_file(&t, "elements/e1/root.d/10-a", "#!/bin/sh\necho A\n");
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);
        set_file(&t, "elements/e1/root.d/10-a", "#!/bin/sh\necho a\n");
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_equal(k, k0); /* content, not history */

        /* a mode change */
        assert_int_equal(chmod(script, 0700), 0);
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);
        assert_int_equal(chmod(script, 0755), 0);

        /* an install.d change leaves the root.d stage alone but changes the install stage */
        set_file(&t, "elements/e2/install.d/30-c", "#!/bin/sh\necho C\n");
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_equal(k, k0);
        key_of(&t, INSTALL_PHASE, ENV1, "jammy", k0, k);
        assert_string_not_equal(k, inst0);

        /* environment.d and other subdirectories feed every stage */
        set_file(&t, "elements/e1/environment.d/00-env", "export E=2\n");
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);
        set_file(&t, "elements/e1/environment.d/00-env", "export E=1\n");
        set_file(&t, "elements/e1/bin/tool", "#!/bin/sh\nexit 0\n");
        key_of(&t, ROOT_PHASE, ENV1, "jammy", "parent0", k);
        assert_string_not_equal(k, k0);
        keytree_free(&t);
}

/* An unknown phase name is refused. */
static void test_stage_key_unknown_phase(void **state) {
        struct dib_element_set *set;
        struct dib_hooks *h;
        char *err = NULL, hex[SHA256_HEX_SIZE];

        assert_int_equal(resolve(SHIPPED, (const char *const[]){ "noos", NULL }, 0, &set, &err), 0);
        assert_int_equal(dib_hooks_collect(set, &h, &err), 0);
        assert_int_equal(dib_stage_key(h, (const char *const[]){ "install", NULL }, NULL, NULL, NULL, hex, &err),
                         -EINVAL);
        assert_string_equal(err, "unknown phase 'install'");
        free(err);
        dib_hooks_free(h);
        dib_element_set_free(set);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_resolve_deps_bfs_cycle_and_exports),
                cmocka_unit_test(test_resolve_provided_element_dropped),
                cmocka_unit_test(test_resolve_provided_twice_is_error),
                cmocka_unit_test(test_resolve_user_listed_but_provided_is_error),
                cmocka_unit_test(test_resolve_missing_element_reports_chain),
                cmocka_unit_test(test_resolve_require_os_flag),
                cmocka_unit_test(test_elements_dir_override_order),
                cmocka_unit_test(test_search_path_split),
                cmocka_unit_test(test_resolve_bad_path_and_names),
                cmocka_unit_test(test_resolve_duplicate_user_element_counts_once),
                cmocka_unit_test(test_sort_n_compare_semantics),
                cmocka_unit_test(test_sort_n_matches_gnu_sort),
                cmocka_unit_test(test_hooks_phase_order_sort_n),
                cmocka_unit_test(test_hooks_duplicate_name_across_elements_fatal),
                cmocka_unit_test(test_hooks_nonexecutable_skipped_with_warning),
                cmocka_unit_test(test_hooks_environment_top_files_other_dirs),
                cmocka_unit_test(test_phase_inside_outside_classification),
                cmocka_unit_test(test_pkginstalls_squash_when_arch_phase_uninstall),
                cmocka_unit_test(test_pkginstalls_other_arch_and_env),
                cmocka_unit_test(test_pkginstalls_bad_yaml_reports_position),
                cmocka_unit_test(test_pkginstalls_when_and_arch_errors),
                cmocka_unit_test(test_env_defaults),
                cmocka_unit_test(test_env_override_rules),
                cmocka_unit_test(test_stage_key_inputs),
                cmocka_unit_test(test_stage_key_unknown_phase),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
