/* build_plan.c — which stages a build has, their cache keys, and the bash
 * that runs one phase.
 *
 * DESIGN: a stage ends at each inside phase with work (one libguestfs
 * appliance launch each), so a rebuild after a change reruns the first stage
 * whose inputs changed and everything after it — never the stages before.
 * Outside phases between two inside phases belong to the later stage: their
 * files reach the image when that stage's appliance copies them in. Stage 0
 * is root.d alone: the expensive base tree (debootstrap) is cached on its own.
 * Pure apart from reading element files for the keys; no logging. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "build.h"
#include "dbuf.h"

/* ---- plan ------------------------------------------------------------------ */

bool build_phase_has_work(const struct dib_hooks *hooks, const struct dib_pkginstalls *pkgs, enum dib_phase p) {
        if (p < 0 || p >= DIB_PHASE_ENVIRONMENT) return false;
        if (hooks->phase[p].n_scripts > 0) return true;
        if (dib_phase_where(p) != DIB_WHERE_INSIDE || !pkgs) return false;
        const struct dib_pkg_phase *pp = dib_pkginstalls_phase(pkgs, dib_phase_to_string(p));
        return pp && (pp->n_install > 0 || pp->n_uninstall > 0);
}

static bool top_file_in_key(const struct dib_hook *h) {
        return strncmp(h->name, "README", 6) != 0 && strcmp(h->name, "package-installs.yaml") != 0 &&
               strcmp(h->name, "package-installs.json") != 0;
}

static void fold_str(EVP_MD_CTX *c, char tag, const char *s) {
        /* tag + length prefix: no two different sequences hash the same bytes */
        char hdr[32];
        int n = snprintf(hdr, sizeof hdr, "%c%zu:", tag, strlen(s));
        digest_update(c, hdr, (size_t)n);
        digest_update(c, s, strlen(s));
}

static int stage_key(const struct dib_hooks *view, const struct dib_pkginstalls *pkgs, const struct build_stage *st,
                     const char *const *key_env, const char *release, const char *parent, char ret[SHA256_HEX_SIZE],
                     char **errmsg) {
        const char *phases[_DIB_PHASE_MAX + 1] = {};
        char base[SHA256_HEX_SIZE];
        for (size_t i = 0; i < st->n_phases; i++)
                phases[i] = dib_phase_to_string(st->phases[i]);
        int r = dib_stage_key(view, phases, key_env, release, parent, base, errmsg);
        if (r < 0) return r;

        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *c = digest_sha256_new();
        fold_str(c, 'K', base);
        for (size_t i = 0; i < st->n_phases; i++) {
                const struct dib_pkg_phase *pp = pkgs ? dib_pkginstalls_phase(pkgs, phases[i]) : NULL;
                if (!pp) continue;
                fold_str(c, 'H', phases[i]);
                for (size_t j = 0; j < pp->n_install; j++)
                        fold_str(c, 'I', pp->install[j].name);
                for (size_t j = 0; j < pp->n_uninstall; j++)
                        fold_str(c, 'U', pp->uninstall[j].name);
        }
        digest_final_hex(c, ret);
        return 0;
}

int build_plan_new(const struct dib_hooks *hooks, const struct dib_pkginstalls *pkgs, const char *const *key_env,
                   const char *release, struct build_plan **ret, char **errmsg) {
        _cleanup_free_ struct build_stage *stages = xnew(struct build_stage, _DIB_PHASE_MAX + 1);
        size_t n = 0;
        int r;

        if (hooks->phase[DIB_PHASE_ROOT].n_scripts == 0) {
                *errmsg = xasprintf("no element has a root.d script, so nothing creates the root filesystem "
                                    "(add an operating-system element such as debian-minimal)");
                return -ENOENT;
        }
        stages[n].phases[stages[n].n_phases++] = DIB_PHASE_ROOT;
        stages[n].root = true;
        n++;

        struct build_stage cur = {};
        for (enum dib_phase p = DIB_PHASE_ROOT + 1; p < DIB_PHASE_ENVIRONMENT; p++) {
                if (!build_phase_has_work(hooks, pkgs, p)) continue;
                cur.phases[cur.n_phases++] = p;
                if (dib_phase_where(p) == DIB_WHERE_INSIDE) {
                        cur.has_inside = true;
                        stages[n++] = cur;
                        cur = (struct build_stage){};
                }
        }
        /* Something must turn the root tree into a disk, even with no other phase. */
        if (cur.n_phases > 0 || n == 1) stages[n++] = cur;

        /* The key view: same hooks, minus top-level files that cannot change any stage's result. */
        struct dib_hooks view = *hooks;
        _cleanup_free_ struct dib_hook *top = xnew(struct dib_hook, hooks->n_top_files + 1);
        view.top_files = top;
        view.n_top_files = 0;
        for (size_t i = 0; i < hooks->n_top_files; i++)
                if (top_file_in_key(&hooks->top_files[i])) top[view.n_top_files++] = hooks->top_files[i];

        for (size_t i = 0; i < n; i++) {
                r = stage_key(&view, pkgs, &stages[i], key_env, release, i > 0 ? stages[i - 1].key : NULL,
                              stages[i].key, errmsg);
                if (r < 0) return r;
        }

        struct build_plan *plan = xnew(struct build_plan, 1);
        plan->stages = TAKE_PTR(stages);
        plan->n_stages = n;
        *ret = plan;
        return 0;
}

void build_plan_free(struct build_plan *plan) {
        if (!plan) return;
        free(plan->stages);
        free(plan);
}

/* ---- key environment ------------------------------------------------------- */

static const char *const key_env_excluded[] = {
        "DIB_IMAGE_NAME", "DIB_IMAGE_FILENAME", "DIB_RELEASE", "DIB_DEBUG_TRACE", "DIB_NO_TMPFS",
        "DIB_CHECKSUM",   "DIB_ARGS",           "DIB_ENV",     NULL,
};

static int cmp_strp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

#define KEY_FILE_MAX (1024 * 1024)

/* Digests of the files a value names: one absolute path, or several separated
 * by ':', each a regular file of at most KEY_FILE_MAX bytes; else NULL. */
static char *file_digests(const char *val) {
        if (val[0] != '/') return NULL;
        _cleanup_free_ char *copy = xstrdup(val);
        struct dbuf out = DBUF_INIT(SIZE_MAX);
        char *save = NULL;
        for (char *f = strtok_r(copy, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
                struct stat st;
                char hex[SHA256_HEX_SIZE];
                if (f[0] != '/' || stat(f, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX ||
                    digest_sha256_file_hex(f, hex) < 0) {
                        dbuf_free(&out);
                        return NULL;
                }
                if (dbuf_addf(&out, "%s%s", out.len ? "," : "", hex) < 0) abort();
        }
        return out.len ? dbuf_take(&out, NULL) : NULL;
}

char **build_key_env(const char *const *envp) {
        size_t n_env = dib_strv_length(envp), n = 0;
        char **l = xnew(char *, 2 * n_env + 1);

        for (size_t i = 0; i < n_env; i++) {
                const char *e = envp[i], *eq = strchr(e, '=');
                if (!eq || strncmp(e, "DIB_", 4) != 0) continue;
                _cleanup_free_ char *key = xstrndup(e, (size_t)(eq - e));
                if (dib_strv_contains(key_env_excluded, key)) continue;
                /* A file-valued variable counts by what the files hold, not
                 * where they are: the same key file in another directory
                 * (another state dir, another builder) is the same input. */
                _cleanup_free_ char *digests = file_digests(eq + 1);
                l[n++] = digests ? xasprintf("%s#sha256=%s", key, digests) : xstrdup(e);
        }
        qsort(l, n, sizeof(char *), cmp_strp);
        return l;
}

/* ---- runner script --------------------------------------------------------- */

char *build_shell_quote(const char *s) {
        struct dbuf b = DBUF_INIT(SIZE_MAX);
        int r = dbuf_adds(&b, "'");
        for (const char *p = s; r == 0 && *p; p++)
                r = *p == '\'' ? dbuf_adds(&b, "'\\''") : dbuf_add(&b, p, 1);
        if (r == 0) r = dbuf_adds(&b, "'");
        if (r < 0) abort(); /* no cap: only OOM, which dbuf already aborts on */
        return dbuf_take(&b, NULL);
}

/* Append to a runner script; the buffer has no cap, so only OOM can fail (and aborts). */
_printf_(2, 3) static void addf(struct dbuf *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *s = NULL;
        if (vasprintf(&s, fmt, ap) < 0) abort();
        va_end(ap);
        if (dbuf_adds(b, s) < 0) abort();
}

static void add_pkg_list(struct dbuf *b, const struct dib_pkg *pkgs, size_t n) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *q = build_shell_quote(pkgs[i].name);
                addf(b, " %s", q);
        }
}

static void add_package_step(struct dbuf *b, const char *phase, const struct dib_pkg_phase *pp) {
        addf(b, "echo \"poold: running %s/01-package-installs\"\n", phase);
        addf(b, "command -v apt-get >/dev/null || { echo 'poold: package-installs: no apt-get in the image "
                "(poold installs packages on Debian-family images only)'; exit 1; }\n");
        addf(b, "export DEBIAN_FRONTEND=noninteractive\n");
        addf(b, "apt_opts=(-q -y -o APT::Install-Recommends=false -o Dpkg::Options::=--force-confdef "
                "-o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io)\n");
        if (pp->n_install > 0) {
                addf(b, "compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null || apt-get \"${apt_opts[@]}\" update\n");
                addf(b, "apt-get \"${apt_opts[@]}\" install");
                add_pkg_list(b, pp->install, pp->n_install);
                addf(b, " || { rc=$?; echo \"poold: %s/01-package-installs failed with exit code $rc\"; exit $rc; }\n",
                     phase);
        }
        if (pp->n_uninstall > 0) {
                addf(b, "apt-get \"${apt_opts[@]}\" purge");
                add_pkg_list(b, pp->uninstall, pp->n_uninstall);
                addf(b, " || { rc=$?; echo \"poold: %s/01-package-installs failed with exit code $rc\"; exit $rc; }\n",
                     phase);
        }
        addf(b, "apt-get -q clean\n");
}

char *build_runner_script(const struct build_runner_params *p) {
        struct dbuf b = DBUF_INIT(SIZE_MAX);
        const char *phase = dib_phase_to_string(p->phase);
        const struct dib_phase_hooks *ph = &p->hooks->phase[p->phase];
        const struct dib_phase_hooks *envd = &p->hooks->phase[DIB_PHASE_ENVIRONMENT];
        _cleanup_free_ char *qdir = build_shell_quote(p->hooks_dir);

        addf(&b, "#!/bin/bash\n# Generated by poold-builder: runs %s like diskimage-builder's dib-run-parts.\n", phase);
        addf(&b, "set -eu\nset -o pipefail\n");
        if (p->env_file) {
                _cleanup_free_ char *q = build_shell_quote(p->env_file);
                addf(&b, "source %s\n", q);
        }
        if (p->inside)
                /* Packages must not start services in the build (DIB's policy-rc.d does the same). */
                addf(&b, "if [ ! -e /usr/sbin/policy-rc.d ]; then\n"
                         "  printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d\n"
                         "  chmod 0755 /usr/sbin/policy-rc.d\n"
                         "  trap 'rm -f /usr/sbin/policy-rc.d' EXIT\n"
                         "fi\n");
        for (size_t i = 0; i < envd->n_files; i++) {
                if (!envd->files[i].runnable) continue;
                _cleanup_free_ char *q = build_shell_quote(envd->files[i].name);
                addf(&b, "echo \"poold: sourcing environment.d/\"%s\n", q);
                addf(&b, "source %s/environment.d/%s\n", qdir, q);
        }
        if (p->trace) addf(&b, "set -x\n");

        const struct dib_pkg_phase *pp = p->inside ? p->pkgs : NULL;
        bool pkgs_done = !pp || (pp->n_install == 0 && pp->n_uninstall == 0);
        for (size_t i = 0; i <= ph->n_scripts; i++) {
                const char *name = i < ph->n_scripts ? ph->scripts[i]->name : NULL;
                if (!pkgs_done && (!name || dib_sort_n_compare("01-package-installs", name) < 0)) {
                        add_package_step(&b, phase, pp);
                        pkgs_done = true;
                }
                if (!name) break;
                _cleanup_free_ char *q = build_shell_quote(name);
                addf(&b, "echo \"poold: running %s/\"%s\n", phase, q);
                addf(&b, "t0=$SECONDS\n");
                addf(&b, "%s/%s/%s || { rc=$?; echo \"poold: %s/\"%s\" failed with exit code $rc\"; exit $rc; }\n", qdir,
                     phase, q, phase, q);
                addf(&b, "echo \"poold: %s/\"%s\" done in $((SECONDS - t0)) s\"\n", phase, q);
        }
        addf(&b, "echo \"poold: %s complete\"\n", phase);
        return dbuf_take(&b, NULL);
}
