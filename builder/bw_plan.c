/* bw_plan.c — see bw_plan.h. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bw_plan.h"
#include "model.h"

int bw_plan_split_words(const char *s, char ***ret) {
        char **v = model_strv_new();
        size_t cap = strlen(s) + 1;
        _cleanup_free_ char *w = xmalloc(cap);
        size_t n = 0;
        bool in_word = false;
        char quote = 0;

        for (const char *p = s;; p++) {
                char c = *p;
                if (quote) {
                        if (!c) {
                                model_strv_free(v);
                                return -EINVAL;
                        }
                        if (c == quote)
                                quote = 0;
                        else if (quote == '"' && c == '\\' && (p[1] == '"' || p[1] == '\\'))
                                w[n++] = *++p;
                        else
                                w[n++] = c;
                        continue;
                }
                if (!c || isspace((unsigned char)c)) {
                        if (in_word) {
                                w[n] = '\0';
                                model_strv_push(&v, w);
                                n = 0;
                                in_word = false;
                        }
                        if (!c) break;
                        continue;
                }
                in_word = true;
                if (c == '\'' || c == '"')
                        quote = c;
                else if (c == '\\' && p[1])
                        w[n++] = *++p;
                else
                        w[n++] = c;
        }
        *ret = v;
        return 0;
}

static char *replace_pkg_dir(const char *s, const char *pkg_dir) {
        size_t cap = strlen(s) + 1, n = 0;
        char *out = xmalloc(cap);
        for (const char *p = s; *p; p++) {
                const char *ins = NULL;
                char one[2] = { *p, 0 };
                if (p[0] == '%' && p[1] == 'p') {
                        ins = pkg_dir ? pkg_dir : "";
                        p++;
                } else
                        ins = one;
                size_t l = strlen(ins);
                if (n + l + 1 > cap) {
                        cap = (n + l + 1) * 2;
                        out = xrealloc(out, cap);
                }
                memcpy(out + n, ins, l);
                n += l;
        }
        out[n] = '\0';
        return out;
}

static int cmp_strp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

int bw_plan_build_argv(const struct bw_plan_build *p, char ***ret) {
        size_t nf = model_strv_length(p->formats);
        if (!p->dib_cmd || nf == 0 || !p->output_base) return -EINVAL;

        _cleanup_free_ char *cmdline = replace_pkg_dir(p->dib_cmd, p->pkg_dir);
        char **cmd = NULL;
        int r = bw_plan_split_words(cmdline, &cmd);
        if (r < 0) return r;
        if (!cmd[0]) {
                model_strv_free(cmd);
                return -EINVAL;
        }

        char **v = model_strv_new();
        for (size_t i = 0; cmd[i]; i++) {
                if (i == 0 && strcmp(cmd[0], BW_PLAN_BUILTIN_DIB) == 0 && p->self_exe) {
                        model_strv_push(&v, p->self_exe);
                        model_strv_push(&v, BW_PLAN_BUILTIN_DIB);
                } else
                        model_strv_push(&v, cmd[i]);
        }
        model_strv_free(cmd);

        /* Nodepool joins a set; sorted keeps the command reproducible. */
        _cleanup_free_ char **sorted = xnew(char *, nf + 1);
        memcpy(sorted, p->formats, nf * sizeof(char *));
        qsort(sorted, nf, sizeof(char *), cmp_strp);
        size_t total = 0;
        bool qcow2 = false;
        for (size_t i = 0; i < nf; i++) {
                total += strlen(sorted[i]) + 1;
                qcow2 |= strcmp(sorted[i], "qcow2") == 0;
        }
        _cleanup_free_ char *types = xmalloc(total + 1);
        types[0] = '\0';
        for (size_t i = 0; i < nf; i++) {
                if (i) strcat(types, ",");
                strcat(types, sorted[i]);
        }

        model_strv_push(&v, "-x");
        model_strv_push(&v, "-t");
        model_strv_push(&v, types);
        model_strv_push(&v, "--checksum");
        model_strv_push(&v, "--no-tmpfs");
        if (qcow2) {
                model_strv_push(&v, "--qemu-img-options");
                model_strv_push(&v, "compat=0.10");
        }
        model_strv_push(&v, "-o");
        model_strv_push(&v, p->output_base);
        /* Nodepool joins the elements with spaces and shlex-splits the whole line. */
        for (size_t i = 0; p->elements && p->elements[i]; i++) {
                char **words = NULL;
                if (bw_plan_split_words(p->elements[i], &words) < 0) {
                        model_strv_free(v);
                        return -EINVAL;
                }
                for (size_t j = 0; words[j]; j++) model_strv_push(&v, words[j]);
                model_strv_free(words);
        }
        *ret = v;
        return 0;
}

char **bw_plan_build_env(const char *image, const char *release, const char *output_base, const char *elements_dir,
                         const char *username, char *const *env_keys, char *const *env_values, size_t n_env) {
        char **v = model_strv_new();
        _cleanup_free_ char *s = NULL;
#define ADD(...)                              \
        do {                                  \
                free(s);                      \
                s = xasprintf(__VA_ARGS__);   \
                model_strv_push(&v, s);       \
        } while (0)
        if (release) ADD("DIB_RELEASE=%s", release);
        ADD("DIB_IMAGE_NAME=%s", image);
        ADD("DIB_IMAGE_FILENAME=%s", output_base);
        if (elements_dir) ADD("ELEMENTS_PATH=%s", elements_dir);
        bool user_set = false;
        for (size_t i = 0; i < n_env; i++) user_set |= strcmp(env_keys[i], "DIB_DEV_USER_USERNAME") == 0;
        if (!user_set && username) ADD("DIB_DEV_USER_USERNAME=%s", username);
        for (size_t i = 0; i < n_env; i++) ADD("%s=%s", env_keys[i], env_values[i] ? env_values[i] : "");
#undef ADD
        return v;
}

bool bw_plan_needs_build(bool have_ready, double ready_time, char *const *ready_formats, char *const *needed,
                         long long rebuild_age, double now) {
        if (!have_ready) return true;
        if (now - ready_time >= (double)rebuild_age) return true;
        for (size_t i = 0; needed && needed[i]; i++)
                if (!model_strv_contains(ready_formats, needed[i])) return true;
        return false;
}

void bw_plan_keep_newest(const double *times, const bool *ready, size_t n, size_t count, bool *keep) {
        for (size_t i = 0; i < n; i++) keep[i] = false;
        for (size_t k = 0; k < count; k++) {
                ssize_t best = -1;
                for (size_t i = 0; i < n; i++) {
                        if (!ready[i] || keep[i]) continue;
                        if (best < 0 || times[i] >= times[best]) best = (ssize_t)i;
                }
                if (best < 0) break;
                keep[best] = true;
        }
}

int bw_plan_image_name(const char *format, const char *image_name, long long timestamp, char **ret) {
        if (!format) format = "{image_name}-{timestamp}";
        char ts[32];
        snprintf(ts, sizeof ts, "%lld", timestamp);
        size_t cap = strlen(format) + strlen(image_name) * 4 + 64, n = 0;
        _cleanup_free_ char *out = xmalloc(cap);
        for (const char *p = format; *p;) {
                const char *ins;
                size_t adv;
                if (p[0] == '{' && p[1] == '{') {
                        ins = "{";
                        adv = 2;
                } else if (p[0] == '}' && p[1] == '}') {
                        ins = "}";
                        adv = 2;
                } else if (strncmp(p, "{image_name}", 12) == 0) {
                        ins = image_name;
                        adv = 12;
                } else if (strncmp(p, "{timestamp}", 11) == 0) {
                        ins = ts;
                        adv = 11;
                } else if (*p == '{' || *p == '}') {
                        return -EINVAL;
                } else {
                        ins = NULL;
                        adv = 1;
                }
                size_t l = ins ? strlen(ins) : 1;
                if (n + l + 1 > cap) {
                        cap = (n + l + 1) * 2;
                        out = xrealloc(out, cap);
                }
                if (ins)
                        memcpy(out + n, ins, l);
                else
                        out[n] = *p;
                n += l;
                p += adv;
        }
        out[n] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

static size_t build_id_len(const char *s) {
        /* Length of a build id at the start of s, followed by '\0' or '.'; 0 if none. */
        size_t hex = 0, dig = 0;
        while (s[hex] && ((s[hex] >= '0' && s[hex] <= '9') || (s[hex] >= 'a' && s[hex] <= 'f'))) hex++;
        while (s[dig] >= '0' && s[dig] <= '9') dig++;
        if (hex == 32 && (s[32] == '\0' || s[32] == '.')) return 32;
        if (dig == 10 && (s[10] == '\0' || s[10] == '.')) return 10;
        return 0;
}

bool bw_plan_parse_output(const char *file, char **ret_image, char **ret_build_id) {
        /* The image name may contain '-' and '.': try every '-' as the separator. */
        for (const char *d = strchr(file, '-'); d; d = strchr(d + 1, '-')) {
                if (d == file) continue;
                size_t l = build_id_len(d + 1);
                if (!l) continue;
                *ret_image = xstrndup(file, (size_t)(d - file));
                *ret_build_id = xstrndup(d + 1, l);
                return true;
        }
        return false;
}

bool bw_plan_is_log_of(const char *file, const char *image) {
        size_t il = strlen(image);
        if (strncmp(file, image, il) != 0 || file[il] != '-') return false;
        const char *id = file + il + 1;
        size_t l = build_id_len(id);
        return l && strcmp(id + l, ".log") == 0;
}

char *bw_plan_verify_log_name(const char *image, const char *build_id, const char *provider, const char *upload_id) {
        return xasprintf("%s-%s.verify-%s-%s.log", image, build_id, provider, upload_id);
}

static bool ends_with(const char *s, const char *suffix) {
        size_t l = strlen(s), n = strlen(suffix);
        return l >= n && strcmp(s + l - n, suffix) == 0;
}

bool bw_plan_is_verify_log(const char *file) {
        _cleanup_free_ char *im = NULL, *id = NULL;
        if (!bw_plan_parse_output(file, &im, &id)) return false;
        const char *rest = file + strlen(im) + 1 + strlen(id);
        if (strncmp(rest, ".verify-", strlen(".verify-")) != 0) return false;
        rest += strlen(".verify");
        return strlen(rest) > strlen("-.log") && (ends_with(rest, ".log") || ends_with(rest, ".log.known_hosts"));
}

void bw_plan_prune_logs(const double *mtimes, size_t n, long long keep, bool keep_all, bool *drop) {
        for (size_t i = 0; i < n; i++) drop[i] = false;
        if (keep_all) return;
        if (keep < 1) keep = 1;
        /* Drop i when at least `keep` logs are newer (ties broken by index). */
        for (size_t i = 0; i < n; i++) {
                long long newer = 0;
                for (size_t j = 0; j < n; j++)
                        if (j != i && (mtimes[j] > mtimes[i] || (mtimes[j] == mtimes[i] && j > i))) newer++;
                drop[i] = newer >= keep;
        }
}

uint64_t bw_plan_retry_delay_ms(uint64_t failures, uint64_t first_ms, uint64_t max_ms) {
        if (failures == 0) return 0;
        uint64_t d = first_ms;
        for (uint64_t i = 1; i < failures && d < max_ms; i++) d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
        return MAX(MIN(d, max_ms), first_ms);
}

bool bw_plan_failure_of(bool failed, double state_time, long long failures, double retry_time, uint64_t first_ms,
                        uint64_t max_ms, struct bw_plan_failure *ret) {
        /* poold_failures 0: a build stopped by the builder, not failed by its image. */
        if (!failed || failures == 0) return false;
        struct bw_plan_failure f = { .failures = failures >= 1 ? (uint64_t)failures : 1,
                                     .failed_time = isnan(state_time) ? 0 : state_time };
        if (!isnan(retry_time)) f.retry_time = retry_time;
        else f.retry_time = f.failed_time + (double)bw_plan_retry_delay_ms(f.failures, first_ms, max_ms) / 1000.0;
        *ret = f;
        return true;
}

bool bw_plan_backing_off(const struct bw_plan_failure *f, bool requested, double request_time, double now) {
        if (requested && request_time > f->failed_time) return false;
        return now < f->retry_time;
}

char *bw_plan_duration_text(uint64_t ms) {
        double s = (double)ms / 1000.0;
        if (s < 10) return xasprintf("%.1f s", s);
        if (s < 120) return xasprintf("%.0f s", s);
        if (s < 2 * 3600) return xasprintf("%.0f min", s / 60);
        return xasprintf("%.1f h", s / 3600);
}
