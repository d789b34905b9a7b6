/* bw_plan.h — the builder's pure decisions (no I/O, no ZooKeeper), so they can
 * be unit-tested: the disk-image-create command line and environment, when an
 * image needs a build, which READY builds/uploads retention keeps, the cloud
 * name of an upload, and which images-dir files belong to which build.
 * Every function is pure; any thread may call it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The dib-cmd that means "our own built-in image builder". */
#define BW_PLAN_BUILTIN_DIB "disk-image-create"

/* Split S into words like Python's shlex.split for the subset Nodepool's
 * dib-cmd uses: blanks separate, '...' and "..." quote, backslash escapes
 * outside single quotes. Returns 0 and a NULL-terminated vector
 * (model_strv_free) or -EINVAL on an unterminated quote. */
int bw_plan_split_words(const char *s, char ***ret);

/* What a build runs. */
struct bw_plan_build {
        const char *dib_cmd;            /* config `dib-cmd` ("disk-image-create" + args allowed) */
        const char *self_exe;           /* our own executable, for the built-in */
        const char *pkg_dir;            /* what "%p" in dib-cmd expands to */
        char *const *formats;           /* NULL-terminated, not empty */
        const char *output_base;        /* <images-dir>/<image>-<build id> */
        char *const *elements;          /* NULL-terminated; each entry may hold several words */
};

/* Nodepool's argv: <cmd...> -x -t <fmts sorted, comma-joined> --checksum
 * --no-tmpfs [--qemu-img-options compat=0.10 if qcow2] -o <output_base>
 * <elements...>. When the first word of dib_cmd is "disk-image-create" it
 * becomes self_exe followed by "disk-image-create". 0 and a NULL-terminated
 * vector (model_strv_free), -EINVAL on a bad dib-cmd or no formats. */
int bw_plan_build_argv(const struct bw_plan_build *p, char ***ret);

/* The variables a build adds to the daemon's environment, as "K=V" strings in
 * the order they apply (later wins): DIB_RELEASE (when release is set),
 * DIB_IMAGE_NAME, DIB_IMAGE_FILENAME, ELEMENTS_PATH (when elements_dir is
 * set), DIB_DEV_USER_USERNAME=username unless env_vars sets it, then every
 * env-vars entry (env_keys[i]=env_values[i], n_env of them). Never fails. */
char **bw_plan_build_env(const char *image, const char *release, const char *output_base, const char *elements_dir,
                         const char *username, char *const *env_keys, char *const *env_values, size_t n_env);

/* Does an image need a scheduled build? have_ready: a READY build exists;
 * ready_time its state_time, ready_formats its formats (NULL-terminated);
 * needed the formats the image needs. True when there is no READY build, it
 * is rebuild_age seconds old or older, or it lacks a needed format. */
bool bw_plan_needs_build(bool have_ready, double ready_time, char *const *ready_formats, char *const *needed,
                         long long rebuild_age, double now);

/* Retention: among N items with state_time times[i] and ready[i], set keep[i]
 * for the `count` newest READY ones (ties: the later index wins). */
void bw_plan_keep_newest(const double *times, const bool *ready, size_t n, size_t count, bool *keep);

/* Cloud image name from image-name-format (NULL: "{image_name}-{timestamp}"):
 * "{image_name}" and "{timestamp}" are replaced, "{{"/"}}" are literal braces.
 * -EINVAL for any other {field} (Python's format would raise KeyError). */
int bw_plan_image_name(const char *format, const char *image_name, long long timestamp, char **ret);

/* If FILE (a name in images-dir) is an output of a build, i.e.
 * "<image>-<build id>" followed by nothing or ".<anything>" where build id is
 * 32 lowercase hex digits or 10 decimal digits, return true and malloc'd
 * *ret_image / *ret_build_id. builder_id.txt and the like return false. */
bool bw_plan_parse_output(const char *file, char **ret_image, char **ret_build_id);

/* Whether FILE is the build log "<image>-<build id>.log" of IMAGE. */
bool bw_plan_is_log_of(const char *file, const char *image);

/* The name in build-log-dir of the boot check log of an upload (bw_verify.c):
 * "<image>-<build id>.verify-<provider>-<upload id>.log". Malloc'd. */
char *bw_plan_verify_log_name(const char *image, const char *build_id, const char *provider, const char *upload_id);
/* Whether FILE (a name in build-log-dir) is such a log, or the known_hosts a
 * check writes next to it ("<log>.known_hosts"). Build logs are not. */
bool bw_plan_is_verify_log(const char *file);

/* Log retention: of N logs with modification times mtimes[], set drop[i] for
 * all but the `keep` newest (keep < 1 counts as 1; keep_all: drop none). */
void bw_plan_prune_logs(const double *mtimes, size_t n, long long keep, bool keep_all, bool *drop);

/* ---- back-off of an image whose builds keep failing ---- */

/* The wait after the Nth failed build in a row (N >= 1): FIRST_MS doubled
 * N-1 times, at most MAX_MS (never below FIRST_MS). 0 for N = 0. */
uint64_t bw_plan_retry_delay_ms(uint64_t failures, uint64_t first_ms, uint64_t max_ms);

/* An image whose newest finished (READY or FAILED) build failed. */
struct bw_plan_failure {
        uint64_t failures;      /* failed builds in a row, the newest included (>= 1) */
        double failed_time;     /* that build's state_time */
        double retry_time;      /* when the next build may start */
};

/* The failure state from the newest finished build: FAILED says whether it
 * failed; FAILURES and RETRY_TIME are its poold_failures/poold_retry_time
 * (-1/NAN when absent: a failed record written by Nodepool, or by the
 * cleanup of an interrupted build, counts as one failure whose wait started
 * at STATE_TIME). False (and *ret untouched) when it did not fail, or
 * when poold_failures is 0 (a build the builder stopped, not one its image
 * failed, after no failure). */
bool bw_plan_failure_of(bool failed, double state_time, long long failures, double retry_time, uint64_t first_ms,
                        uint64_t max_ms, struct bw_plan_failure *ret);

/* Whether the next build of a failing image must wait at NOW: until
 * f->retry_time, unless a request-build was made (REQUEST_TIME, seconds)
 * after the last failure, which resets the back-off. */
bool bw_plan_backing_off(const struct bw_plan_failure *f, bool requested, double request_time, double now);

/* "0.3 s", "45 s", "2 min", "1.5 h": a wait for logs. Malloc'd. */
char *bw_plan_duration_text(uint64_t ms);
