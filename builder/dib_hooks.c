/* dib_hooks.c — hook assembly, sort -n ordering, hook environment, stage keys.
 *
 * DESIGN: rather than copying every element into $TMP_HOOKS_PATH first (as
 * DIB does) and listing the copy, we list the element directories in place
 * and keep, per phase, the merged view the copy would have had. The runner
 * then copies exactly these files. Ordering reproduces GNU sort's numeric
 * comparison (coreutils lib/strnumcmp-in.h) in the C locale: '.' decimal
 * point, no thousands separator, ties broken by a byte comparison. */
#include "dib_hooks.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "dbuf.h"
#include "log.h"
#include "macro.h"

#define DIB_TEXT_MAX (16u * 1024 * 1024)
/* Other subdirectories are walked for the cache key; deeper trees are not elements. */
#define DIB_WALK_DEPTH_MAX 32

static const char *const phase_table[_DIB_PHASE_MAX] = {
        [DIB_PHASE_ROOT] = "root.d",
        [DIB_PHASE_EXTRA_DATA] = "extra-data.d",
        [DIB_PHASE_PRE_INSTALL] = "pre-install.d",
        [DIB_PHASE_INSTALL] = "install.d",
        [DIB_PHASE_POST_INSTALL] = "post-install.d",
        [DIB_PHASE_POST_ROOT] = "post-root.d",
        [DIB_PHASE_BLOCK_DEVICE] = "block-device.d",
        [DIB_PHASE_PRE_FINALISE] = "pre-finalise.d",
        [DIB_PHASE_FINALISE] = "finalise.d",
        [DIB_PHASE_CLEANUP] = "cleanup.d",
        [DIB_PHASE_ENVIRONMENT] = "environment.d",
};

static const enum dib_phase_where where_table[_DIB_PHASE_MAX] = {
        [DIB_PHASE_ROOT] = DIB_WHERE_OUTSIDE,        [DIB_PHASE_EXTRA_DATA] = DIB_WHERE_OUTSIDE,
        [DIB_PHASE_PRE_INSTALL] = DIB_WHERE_INSIDE,  [DIB_PHASE_INSTALL] = DIB_WHERE_INSIDE,
        [DIB_PHASE_POST_INSTALL] = DIB_WHERE_INSIDE, [DIB_PHASE_POST_ROOT] = DIB_WHERE_OUTSIDE,
        [DIB_PHASE_BLOCK_DEVICE] = DIB_WHERE_OUTSIDE, [DIB_PHASE_PRE_FINALISE] = DIB_WHERE_OUTSIDE,
        [DIB_PHASE_FINALISE] = DIB_WHERE_INSIDE,     [DIB_PHASE_CLEANUP] = DIB_WHERE_OUTSIDE,
        [DIB_PHASE_ENVIRONMENT] = DIB_WHERE_SOURCED,
};

static const char *const where_names[_DIB_WHERE_MAX] = {
        [DIB_WHERE_OUTSIDE] = "outside",
        [DIB_WHERE_INSIDE] = "inside",
        [DIB_WHERE_SOURCED] = "sourced",
};

const char *dib_phase_to_string(enum dib_phase p) {
        return p >= 0 && p < _DIB_PHASE_MAX ? phase_table[p] : NULL;
}

enum dib_phase dib_phase_from_string(const char *s) {
        for (int i = 0; s && i < _DIB_PHASE_MAX; i++)
                if (strcmp(phase_table[i], s) == 0)
                        return (enum dib_phase)i;
        return _DIB_PHASE_INVALID;
}

enum dib_phase_where dib_phase_where(enum dib_phase p) {
        return p >= 0 && p < _DIB_PHASE_MAX ? where_table[p] : _DIB_WHERE_INVALID;
}

const char *dib_phase_where_to_string(enum dib_phase_where w) {
        return w >= 0 && w < _DIB_WHERE_MAX ? where_names[w] : NULL;
}

/* ---- sort -n ---------------------------------------------------------------- */

static inline bool isdig(unsigned char c) { return c >= '0' && c <= '9'; }

/* strnumcmp-in.h fraccompare(): a and b point at the decimal point or past the integer part. */
static int fraccompare(const char *a, const char *b) {
        unsigned char ta = *a, tb = *b;

        if (ta == '.' && tb == '.') {
                do {
                        ta = *++a;
                        tb = *++b;
                } while (ta == tb && isdig(ta));
                if (isdig(ta) && isdig(tb))
                        return ta - tb;
                if (isdig(ta)) {
                        while (ta == '0')
                                ta = *++a;
                        return isdig(ta);
                }
                if (isdig(tb)) {
                        while (tb == '0')
                                tb = *++b;
                        return -isdig(tb);
                }
                return 0;
        }
        if (ta == '.') {
                do
                        ta = *++a;
                while (ta == '0');
                return isdig(ta);
        }
        if (tb == '.') {
                do
                        tb = *++b;
                while (tb == '0');
                return -isdig(tb);
        }
        return 0;
}

/* strnumcmp-in.h numcompare() with decimal_point '.' and no thousands separator. */
static int numcompare(const char *a, const char *b) {
        unsigned char ta = *a, tb = *b;
        size_t log_a, log_b;
        int tmp;

        if (ta == '-') {
                do
                        ta = *++a;
                while (ta == '0');
                if (tb != '-') {
                        if (ta == '.')
                                do
                                        ta = *++a;
                                while (ta == '0');
                        if (isdig(ta))
                                return -1;
                        while (tb == '0')
                                tb = *++b;
                        if (tb == '.')
                                do
                                        tb = *++b;
                                while (tb == '0');
                        return -isdig(tb);
                }
                do
                        tb = *++b;
                while (tb == '0');
                while (ta == tb && isdig(ta)) {
                        ta = *++a;
                        tb = *++b;
                }
                if ((ta == '.' && !isdig(tb)) || (tb == '.' && !isdig(ta)))
                        return fraccompare(b, a);
                tmp = tb - ta;
                for (log_a = 0; isdig(ta); ++log_a)
                        ta = *++a;
                for (log_b = 0; isdig(tb); ++log_b)
                        tb = *++b;
                if (log_a != log_b)
                        return log_a < log_b ? 1 : -1;
                if (!log_a)
                        return 0;
                return tmp;
        }
        if (tb == '-') {
                do
                        tb = *++b;
                while (tb == '0');
                if (tb == '.')
                        do
                                tb = *++b;
                        while (tb == '0');
                if (isdig(tb))
                        return 1;
                while (ta == '0')
                        ta = *++a;
                if (ta == '.')
                        do
                                ta = *++a;
                        while (ta == '0');
                return isdig(ta);
        }
        while (ta == '0')
                ta = *++a;
        while (tb == '0')
                tb = *++b;
        while (ta == tb && isdig(ta)) {
                ta = *++a;
                tb = *++b;
        }
        if ((ta == '.' && !isdig(tb)) || (tb == '.' && !isdig(ta)))
                return fraccompare(a, b);
        tmp = ta - tb;
        for (log_a = 0; isdig(ta); ++log_a)
                ta = *++a;
        for (log_b = 0; isdig(tb); ++log_b)
                tb = *++b;
        if (log_a != log_b)
                return log_a < log_b ? -1 : 1;
        if (!log_a)
                return 0;
        return tmp;
}

int dib_sort_n_compare(const char *a, const char *b) {
        /* GNU sort skips leading blanks before the number. */
        const char *x = a, *y = b;
        while (*x == ' ' || *x == '\t')
                x++;
        while (*y == ' ' || *y == '\t')
                y++;
        int r = numcompare(x, y);
        if (r != 0)
                return r;
        r = strcmp(a, b);
        return r < 0 ? -1 : r > 0;
}

/* ---- collection ------------------------------------------------------------- */

static bool name_matches(const char *name, bool allow_dot) {
        if (!*name)
                return false;
        for (const char *c = name; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_' ||
                      *c == '-' || (allow_dot && *c == '.')))
                        return false;
        return true;
}

static void hook_done(struct dib_hook *h) {
        free(h->name);
        free(h->path);
        free(h->element);
}

static void hooks_push(struct dib_hook **v, size_t *n, struct dib_hook h) {
        *v = xrealloc(*v, (*n + 1) * sizeof(**v));
        (*v)[(*n)++] = h;
}

static void warn(struct dib_hooks *h, size_t *n_warn, char *msg) {
        h->warnings = xrealloc(h->warnings, (*n_warn + 2) * sizeof(char *));
        h->warnings[(*n_warn)++] = msg;
        h->warnings[*n_warn] = NULL;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of dir (without "." and ".."), NULL-terminated. */
static int list_dir(const char *dir, char ***ret) {
        DIR *d = opendir(dir);
        char **l = xnew(char *, 1);
        size_t n = 0;
        struct dirent *de;

        if (!d) {
                free(l);
                return negative_errno();
        }
        errno = 0;
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                l = xrealloc(l, (n + 2) * sizeof(char *));
                l[n++] = xstrdup(de->d_name);
                l[n] = NULL;
        }
        int r = errno ? -errno : 0;
        closedir(d);
        if (r < 0) {
                dib_strv_free(l);
                return r;
        }
        qsort(l, n, sizeof(char *), cmp_str);
        *ret = l;
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, dib_strv_free);

/* Record the regular files of subdirectory `sub` of element e, rejecting a
 * name another element already put there. For phases, classify runnable. */
static int collect_subdir(struct dib_hooks *h, size_t *n_warn, const struct dib_element *e, const char *sub,
                          int phase, struct dib_hook **files, size_t *n_files, char **errmsg) {
        _cleanup_free_ char *dir = xasprintf("%s/%s", e->path, sub);
        _cleanup_(dib_strv_freep) char **names = NULL;
        int r = list_dir(dir, &names);

        if (r < 0) {
                *errmsg = xasprintf("element '%s': cannot list %s: %s", e->name, dir, strerror(-r));
                return r;
        }
        for (size_t i = 0; names[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, names[i]);
                struct stat st;

                if (stat(p, &st) < 0) {
                        /* find -xtype f skips what cannot be followed; we say so */
                        if (errno == ENOENT || errno == ELOOP) {
                                warn(h, n_warn, xasprintf("%s/%s in element '%s' is a %s symlink: ignored", sub,
                                                          names[i], e->name, errno == ENOENT ? "dangling" : "looping"));
                                continue;
                        }
                        r = negative_errno();
                        *errmsg = xasprintf("element '%s': cannot stat %s: %s", e->name, p, strerror(-r));
                        return r;
                }
                if (!S_ISREG(st.st_mode)) {
                        if (phase >= 0)
                                warn(h, n_warn, xasprintf("%s/%s in element '%s' is not a regular file: ignored",
                                                          sub, names[i], e->name));
                        continue;
                }
                for (size_t j = 0; j < *n_files; j++)
                        if (strcmp((*files)[j].name, names[i]) == 0) {
                                *errmsg = xasprintf("duplicate hook %s/%s in elements '%s' and '%s'", sub,
                                                       names[i], (*files)[j].element, e->name);
                                return -EEXIST;
                        }

                bool runnable = false;
                if (phase == DIB_PHASE_ENVIRONMENT) {
                        runnable = name_matches(names[i], true);
                        if (!runnable)
                                warn(h, n_warn,
                                     xasprintf("%s/%s in element '%s': name does not match ^[0-9A-Za-z_.-]+$: "
                                               "not sourced",
                                               sub, names[i], e->name));
                } else if (phase >= 0) {
                        bool exec = (st.st_mode & 0111) != 0;
                        bool good = name_matches(names[i], false);
                        runnable = exec && good;
                        if (!exec)
                                warn(h, n_warn, xasprintf("%s/%s in element '%s' is not executable: skipped", sub,
                                                          names[i], e->name));
                        else if (!good)
                                warn(h, n_warn,
                                     xasprintf("%s/%s in element '%s': name does not match ^[0-9A-Za-z_-]+$: "
                                               "skipped",
                                               sub, names[i], e->name));
                }
                hooks_push(files, n_files,
                           (struct dib_hook){ .name = xstrdup(names[i]),
                                              .path = TAKE_PTR(p),
                                              .element = xstrdup(e->name),
                                              .mode = st.st_mode,
                                              .runnable = runnable });
        }
        return 0;
}

static int cmp_hook_sort_n(const void *a, const void *b) {
        return dib_sort_n_compare(((const struct dib_hook *)a)->name, ((const struct dib_hook *)b)->name);
}

/* Regular files of other subdirectories, only to enforce DIB's duplicate rule. */
struct other_seen {
        struct dib_hook *files;
        size_t n;
        char *sub;
};

int dib_hooks_collect(const struct dib_element_set *set, struct dib_hooks **ret, char **errmsg) {
        struct dib_hooks *h = xnew(struct dib_hooks, 1);
        struct other_seen *other = NULL;
        size_t n_other = 0, n_warn = 0;
        char *err = NULL;
        int r = 0;

        h->warnings = xnew(char *, 1);
        for (size_t i = 0; i < set->n_elements && r >= 0; i++) {
                const struct dib_element *e = &set->elements[i];
                _cleanup_(dib_strv_freep) char **names = NULL;

                r = list_dir(e->path, &names);
                if (r < 0) {
                        err = xasprintf("element '%s': cannot list %s: %s", e->name, e->path, strerror(-r));
                        break;
                }
                for (size_t j = 0; names[j] && r >= 0; j++) {
                        _cleanup_free_ char *p = xasprintf("%s/%s", e->path, names[j]);
                        struct stat st;

                        if (stat(p, &st) < 0)
                                continue; /* dangling top-level symlink: DIB's find -follow skips it too */
                        if (S_ISREG(st.st_mode)) {
                                size_t len = strlen(names[j]);
                                if (len >= 4 && strcmp(names[j] + len - 4, ".pyc") == 0)
                                        continue;
                                hooks_push(&h->top_files, &h->n_top_files,
                                           (struct dib_hook){ .name = xstrdup(names[j]),
                                                              .path = TAKE_PTR(p),
                                                              .element = xstrdup(e->name),
                                                              .mode = st.st_mode });
                                continue;
                        }
                        if (!S_ISDIR(st.st_mode) || strcmp(names[j], "tests") == 0 ||
                            strcmp(names[j], "__pycache__") == 0)
                                continue;

                        enum dib_phase ph = dib_phase_from_string(names[j]);
                        if (ph >= 0) {
                                r = collect_subdir(h, &n_warn, e, names[j], ph, &h->phase[ph].files,
                                                   &h->phase[ph].n_files, &err);
                                continue;
                        }
                        size_t k;
                        for (k = 0; k < n_other; k++)
                                if (strcmp(other[k].sub, names[j]) == 0)
                                        break;
                        if (k == n_other) {
                                other = xrealloc(other, (n_other + 1) * sizeof(*other));
                                other[n_other++] = (struct other_seen){ .sub = xstrdup(names[j]) };
                        }
                        r = collect_subdir(h, &n_warn, e, names[j], -1, &other[k].files, &other[k].n, &err);
                        hooks_push(&h->other_dirs, &h->n_other_dirs,
                                   (struct dib_hook){ .name = xstrdup(names[j]),
                                                      .path = TAKE_PTR(p),
                                                      .element = xstrdup(e->name),
                                                      .mode = st.st_mode });
                }
        }
        for (size_t k = 0; k < n_other; k++) {
                for (size_t j = 0; j < other[k].n; j++)
                        hook_done(&other[k].files[j]);
                free(other[k].files);
                free(other[k].sub);
        }
        free(other);
        if (r < 0) {
                log_debug("dib: %s", err ? err : strerror(-r));
                if (errmsg)
                        *errmsg = err ? err : xasprintf("collecting hooks failed: %s", strerror(-r));
                else
                        free(err);
                dib_hooks_free(h);
                return r;
        }

        for (int p = 0; p < _DIB_PHASE_MAX; p++) {
                struct dib_phase_hooks *ph = &h->phase[p];
                if (ph->n_files > 0)
                        qsort(ph->files, ph->n_files, sizeof(*ph->files), cmp_hook_sort_n);
                ph->scripts = xnew(const struct dib_hook *, ph->n_files + 1);
                for (size_t i = 0; i < ph->n_files; i++)
                        if (ph->files[i].runnable)
                                ph->scripts[ph->n_scripts++] = &ph->files[i];
        }
        *ret = h;
        return 0;
}

void dib_hooks_free(struct dib_hooks *h) {
        if (!h)
                return;
        for (int p = 0; p < _DIB_PHASE_MAX; p++) {
                for (size_t i = 0; i < h->phase[p].n_files; i++)
                        hook_done(&h->phase[p].files[i]);
                free(h->phase[p].files);
                free(h->phase[p].scripts);
        }
        for (size_t i = 0; i < h->n_top_files; i++)
                hook_done(&h->top_files[i]);
        free(h->top_files);
        for (size_t i = 0; i < h->n_other_dirs; i++)
                hook_done(&h->other_dirs[i]);
        free(h->other_dirs);
        dib_strv_free(h->warnings);
        free(h);
}

/* ---- environment ------------------------------------------------------------ */

static const char *const env_ours[] = { "TARGET_ROOT",   "TMP_BUILD_DIR", "TMP_IMAGE_DIR",      "TMP_HOOKS_PATH",
                                        "TMP_MOUNT_PATH", "IMAGE_ELEMENT", "IMAGE_ELEMENT_YAML", NULL };

static void env_set(struct dib_env *env, const char *key, size_t key_len, const char *value) {
        for (size_t i = 0; i < env->n; i++)
                if (strlen(env->keys[i]) == key_len && memcmp(env->keys[i], key, key_len) == 0) {
                        free(env->values[i]);
                        env->values[i] = xstrdup(value);
                        return;
                }
        env->keys = xrealloc(env->keys, (env->n + 1) * sizeof(char *));
        env->values = xrealloc(env->values, (env->n + 1) * sizeof(char *));
        env->keys[env->n] = xstrndup(key, key_len);
        env->values[env->n] = xstrdup(value);
        env->n++;
}

static void env_put(struct dib_env *env, const char *key, const char *value) {
        env_set(env, key, strlen(key), value);
}

static bool env_key_valid(const char *k, size_t len) {
        if (len == 0 || (k[0] >= '0' && k[0] <= '9'))
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
                      k[i] == '_'))
                        return false;
        return true;
}

static const char *environ_get(const char *const *envp, const char *key) {
        size_t len = strlen(key);
        for (size_t i = 0; envp && envp[i]; i++)
                if (strncmp(envp[i], key, len) == 0 && envp[i][len] == '=')
                        return envp[i] + len + 1;
        return NULL;
}

int dib_env_build(const struct dib_env_params *p, struct dib_env **ret, char **errmsg) {
        const char *missing = !p->image_name      ? "image_name"
                              : !p->target_root   ? "target_root"
                              : !p->tmp_build_dir ? "tmp_build_dir"
                              : !p->tmp_image_dir ? "tmp_image_dir"
                              : !p->elements      ? "elements"
                                                  : NULL;
        if (missing) {
                if (errmsg)
                        *errmsg = xasprintf("dib_env_build: %s is required", missing);
                return -EINVAL;
        }
        for (size_t i = 0; p->env_vars && p->env_vars[i]; i++) {
                const char *eq = strchr(p->env_vars[i], '=');
                if (!eq || !env_key_valid(p->env_vars[i], (size_t)(eq - p->env_vars[i]))) {
                        if (errmsg)
                                *errmsg = xasprintf("env-vars entry '%s' is not NAME=value with a shell "
                                                       "variable name",
                                                       p->env_vars[i]);
                        return -EINVAL;
                }
        }

        struct dib_env *env = xnew(struct dib_env, 1);
        size_t n_ignored = 0;
        env->ignored = xnew(char *, 1);

        env_put(env, "ARCH", p->arch ? p->arch : "amd64");
        env_put(env, "TARGET_ROOT", p->target_root);
        env_put(env, "TMP_BUILD_DIR", p->tmp_build_dir);
        env_put(env, "TMP_IMAGE_DIR", p->tmp_image_dir);
        {
                _cleanup_free_ char *hooks = p->tmp_hooks_path ? NULL : xasprintf("%s/hooks", p->tmp_build_dir);
                _cleanup_free_ char *mnt = p->tmp_mount_path ? NULL : xasprintf("%s/mnt", p->tmp_build_dir);
                env_put(env, "TMP_HOOKS_PATH", p->tmp_hooks_path ? p->tmp_hooks_path : hooks);
                env_put(env, "TMP_MOUNT_PATH", p->tmp_mount_path ? p->tmp_mount_path : mnt);
        }
        env_put(env, "IMAGE_NAME", p->image_name);
        if (p->diskimage_name)
                env_put(env, "DIB_IMAGE_NAME", p->diskimage_name);
        env_put(env, "IMAGE_ELEMENT", p->elements->image_element);
        env_put(env, "IMAGE_ELEMENT_YAML", p->elements->image_element_yaml);
        {
                struct dbuf b = DBUF_INIT(DIB_TEXT_MAX);
                int k = 0;
                for (size_t i = 0; p->image_types && p->image_types[i]; i++)
                        k |= dbuf_addf(&b, "%s%s", i ? " " : "", p->image_types[i]);
                if (b.len == 0)
                        k |= dbuf_adds(&b, "qcow2");
                (void)k; /* only absurd format lists reach the cap */
                env_put(env, "IMAGE_TYPES", dbuf_str(&b));
                dbuf_free(&b);
        }
        if (p->release)
                env_put(env, "DIB_RELEASE", p->release);
        {
                const char *home = environ_get(p->host_environ, "HOME");
                _cleanup_free_ char *cache =
                        p->image_cache ? NULL : xasprintf("%s/.cache/image-create", home ? home : "/root");
                env_put(env, "DIB_IMAGE_CACHE", p->image_cache ? p->image_cache : cache);
        }
        env_put(env, "DIB_ROOT_LABEL", "cloudimg-rootfs");
        env_put(env, "DIB_ROOT_FSTYPE", "ext4");
        env_put(env, "FS_TYPE", "ext4");
        env_put(env, "DIB_DEFAULT_INSTALLTYPE", "package");
        env_put(env, "DIB_PYTHON_EXEC", p->python_exec ? p->python_exec : "/usr/bin/python3");
        env_put(env, "DIB_PYTHON_VERSION", "3");
        {
                _cleanup_free_ char *ep = NULL;
                struct dbuf b = DBUF_INIT(DIB_TEXT_MAX);
                int k = 0;
                for (size_t i = 0; p->elements->search_path && p->elements->search_path[i]; i++)
                        k |= dbuf_addf(&b, "%s%s", i ? ":" : "", p->elements->search_path[i]);
                (void)k;
                ep = dbuf_take(&b, NULL);
                env_put(env, "ELEMENTS_PATH", ep);
        }
        env_put(env, "LC_ALL", "C");
        env_put(env, "PATH", p->path ? p->path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");

        for (size_t i = 0; p->host_environ && p->host_environ[i]; i++) {
                const char *kv = p->host_environ[i], *eq = strchr(kv, '=');
                if (strncmp(kv, "DIB_", 4) == 0 && eq && env_key_valid(kv, (size_t)(eq - kv)))
                        env_set(env, kv, (size_t)(eq - kv), eq + 1);
        }
        for (size_t i = 0; p->env_vars && p->env_vars[i]; i++) {
                const char *kv = p->env_vars[i], *eq = strchr(kv, '=');
                _cleanup_free_ char *key = xstrndup(kv, (size_t)(eq - kv));
                if (dib_strv_contains(env_ours, key)) {
                        env->ignored = xrealloc(env->ignored, (n_ignored + 2) * sizeof(char *));
                        env->ignored[n_ignored++] = xstrdup(kv);
                        env->ignored[n_ignored] = NULL;
                        continue;
                }
                env_put(env, key, eq + 1);
        }
        *ret = env;
        return 0;
}

const char *dib_env_get(const struct dib_env *env, const char *key) {
        for (size_t i = 0; env && i < env->n; i++)
                if (strcmp(env->keys[i], key) == 0)
                        return env->values[i];
        return NULL;
}

char **dib_env_to_envp(const struct dib_env *env) {
        char **l = xnew(char *, env->n + 1);
        for (size_t i = 0; i < env->n; i++)
                l[i] = xasprintf("%s=%s", env->keys[i], env->values[i]);
        return l;
}

void dib_env_free(struct dib_env *env) {
        if (!env)
                return;
        for (size_t i = 0; i < env->n; i++) {
                free(env->keys[i]);
                free(env->values[i]);
        }
        free(env->keys);
        free(env->values);
        dib_strv_free(env->ignored);
        free(env);
}

/* ---- stage key -------------------------------------------------------------- */

/* Length-prefixed fields, so no two different input sequences hash alike. */
static void key_field(EVP_MD_CTX *c, char tag, const void *data, size_t len) {
        uint8_t hdr[9] = { (uint8_t)tag };
        uint64_t l = len;
        for (int i = 0; i < 8; i++)
                hdr[1 + i] = (uint8_t)(l >> (56 - 8 * i));
        digest_update(c, hdr, sizeof(hdr));
        digest_update(c, data, len);
}

static void key_str(EVP_MD_CTX *c, char tag, const char *s) { key_field(c, tag, s, strlen(s)); }

/* Type and permission bits only: owner, mtime, inode stay out of the key. */
static void key_mode(EVP_MD_CTX *c, mode_t mode) {
        char m[16];
        snprintf(m, sizeof(m), "%o", (unsigned)(mode & (S_IFMT | 07777)));
        key_str(c, 'm', m);
}

static int key_file_content(EVP_MD_CTX *c, const char *path, char **errmsg) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct stat st;
        uint8_t buf[65536];
        uint64_t total = 0;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0)
                goto fail;
        key_mode(c, st.st_mode);
        /* Length-prefixed like every field; a file that changes size while
         * we read it gives no trustworthy key. */
        {
                uint8_t hdr[9] = { 'c' };
                for (int i = 0; i < 8; i++)
                        hdr[1 + i] = (uint8_t)((uint64_t)st.st_size >> (56 - 8 * i));
                digest_update(c, hdr, sizeof(hdr));
        }
        for (;;) {
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        goto fail;
                }
                if (k == 0)
                        break;
                total += (uint64_t)k;
                if (total > (uint64_t)st.st_size)
                        break;
                digest_update(c, buf, (size_t)k);
        }
        if (total != (uint64_t)st.st_size) {
                if (errmsg)
                        *errmsg = xasprintf("%s changed while it was being hashed", path);
                return -EAGAIN;
        }
        return 0;
fail:
        r = negative_errno();
        if (errmsg)
                *errmsg = xasprintf("cannot read %s: %s", path, strerror(-r));
        return r;
}

static int key_hooks(EVP_MD_CTX *c, const struct dib_hook *v, size_t n, char **errmsg) {
        for (size_t i = 0; i < n; i++) {
                key_str(c, 'n', v[i].name);
                key_str(c, 'e', v[i].element);
                int r = key_file_content(c, v[i].path, errmsg);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int key_tree(EVP_MD_CTX *c, const char *dir, unsigned depth, char **errmsg) {
        _cleanup_(dib_strv_freep) char **names = NULL;
        int r;

        if (depth > DIB_WALK_DEPTH_MAX) {
                if (errmsg)
                        *errmsg = xasprintf("%s: directory tree deeper than %d", dir, DIB_WALK_DEPTH_MAX);
                return -ELOOP;
        }
        r = list_dir(dir, &names);
        if (r < 0) {
                if (errmsg)
                        *errmsg = xasprintf("cannot list %s: %s", dir, strerror(-r));
                return r;
        }
        key_str(c, 'D', "enter");
        for (size_t i = 0; names[i]; i++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, names[i]);
                struct stat st;

                key_str(c, 'n', names[i]);
                if (lstat(p, &st) < 0) {
                        r = negative_errno();
                        if (errmsg)
                                *errmsg = xasprintf("cannot stat %s: %s", p, strerror(-r));
                        return r;
                }
                if (S_ISLNK(st.st_mode)) {
                        /* Hash the link itself: following could loop or leave the element. */
                        char target[PATH_MAX];
                        ssize_t k = readlink(p, target, sizeof(target));
                        if (k < 0)
                                return negative_errno();
                        key_mode(c, st.st_mode);
                        key_field(c, 'l', target, (size_t)k);
                } else if (S_ISDIR(st.st_mode)) {
                        key_mode(c, st.st_mode);
                        r = key_tree(c, p, depth + 1, errmsg);
                        if (r < 0)
                                return r;
                } else if (S_ISREG(st.st_mode)) {
                        r = key_file_content(c, p, errmsg);
                        if (r < 0)
                                return r;
                } else
                        key_mode(c, st.st_mode);
        }
        key_str(c, 'D', "leave");
        return 0;
}

int dib_stage_key(const struct dib_hooks *hooks, const char *const *phases, const char *const *env_vars,
                  const char *release, const char *parent_key, char ret_hex[SHA256_HEX_SIZE], char **errmsg) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = digest_sha256_new();
        size_t n_env = dib_strv_length(env_vars);
        _cleanup_free_ const char **sorted = xnew(const char *, n_env + 1);
        int r;

        for (size_t i = 0; phases && phases[i]; i++)
                if (dib_phase_from_string(phases[i]) < 0) {
                        if (errmsg)
                                *errmsg = xasprintf("unknown phase '%s'", phases[i]);
                        return -EINVAL;
                }

        key_str(c, 'V', "poold-dib-stage-v1");
        key_str(c, 'P', parent_key ? parent_key : "");
        if (release)
                key_str(c, 'R', release);
        else
                key_str(c, 'r', "");
        for (size_t i = 0; i < n_env; i++)
                sorted[i] = env_vars[i];
        qsort(sorted, n_env, sizeof(char *), cmp_str);
        for (size_t i = 0; i < n_env; i++)
                key_str(c, 'E', sorted[i]);

        for (size_t i = 0; phases && phases[i]; i++) {
                enum dib_phase ph = dib_phase_from_string(phases[i]);
                key_str(c, 'H', phases[i]);
                r = key_hooks(c, hooks->phase[ph].files, hooks->phase[ph].n_files, errmsg);
                if (r < 0)
                        return r;
        }

        key_str(c, 'H', "environment.d");
        r = key_hooks(c, hooks->phase[DIB_PHASE_ENVIRONMENT].files, hooks->phase[DIB_PHASE_ENVIRONMENT].n_files,
                      errmsg);
        if (r < 0)
                return r;
        key_str(c, 'T', "top");
        r = key_hooks(c, hooks->top_files, hooks->n_top_files, errmsg);
        if (r < 0)
                return r;
        for (size_t i = 0; i < hooks->n_other_dirs; i++) {
                key_str(c, 'O', hooks->other_dirs[i].name);
                key_str(c, 'e', hooks->other_dirs[i].element);
                r = key_tree(c, hooks->other_dirs[i].path, 0, errmsg);
                if (r < 0)
                        return r;
        }
        digest_final_hex(c, ret_hex);
        return 0;
}
