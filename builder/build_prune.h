/* build_prune.h — keeping the stage cache (layout in build.h) within an age
 * and a size.
 *
 * Use is recorded in file times: publishing makes a fresh file, and every
 * cache hit touches the entry's file (build_cache_touch), so an entry's
 * last use is the newest modification time among its files. A build holds
 * a shared flock(2) on every cache file it reads (build_cache_hold) for as
 * long as it runs, and the exclusive per-key lock while it makes an entry;
 * the pruner only removes what it can lock exclusively without waiting.
 *
 * Single-threaded; any process may prune while builds run. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- the decision (pure) ---------------------------------------------------- */

/* One removable unit: the root tarball, a disk with the entries naming it,
 * a converted output with its digests, or an entry naming no usable disk. */
struct build_prune_item {
        uint64_t bytes;    /* space its files take (st_blocks * 512) */
        int64_t last_use;  /* Unix seconds */
        ssize_t parent;    /* index of the item it cannot be used without (a disk's backing disk), or -1 */
        bool pinned;       /* in use or to be kept: it and everything it needs stay */
        bool broken;       /* unusable (a backing file is missing): removed whatever the limits */
};

enum build_prune_verdict {
        BUILD_PRUNE_KEEP,
        BUILD_PRUNE_BROKEN,
        BUILD_PRUNE_AGE,
        BUILD_PRUNE_SIZE,
        _BUILD_PRUNE_VERDICT_MAX,
        _BUILD_PRUNE_VERDICT_INVALID = -EINVAL,
};

/* "kept", "unusable", "unused for too long", "over the size limit"; NULL out of range. */
const char *build_prune_verdict_to_string(enum build_prune_verdict v);

/* Decide which of ITEMS[0..n) go. An item counts as used when it or
 * anything built on it was used, and as pinned when it or anything built on
 * it is pinned; removing an item removes everything built on it. In order:
 * broken items go; items unused for more than MAX_AGE seconds go (0: no age
 * limit); then, while TOTAL (bytes of the whole cache) minus what goes is
 * above MAX_SIZE (0: no size limit), the least recently used item nothing
 * else is built on goes. Pinned items never go. Writes ret[0..n). Items
 * whose parent links form a cycle are treated as broken. */
void build_prune_decide(const struct build_prune_item *items, size_t n, uint64_t total, int64_t now,
                        int64_t max_age, uint64_t max_size, enum build_prune_verdict *ret);

/* ---- limits ----------------------------------------------------------------- */

#define BUILD_PRUNE_DEFAULT_MAX_AGE (14 * 24 * 3600)          /* 14 days */
#define BUILD_PRUNE_DEFAULT_MAX_SIZE (20ULL * 1024 * 1024 * 1024) /* 20 GiB */

/* A duration: NUMBER followed by s, m, h or d (no unit: days); "0" = no
 * limit. 0 and *ret seconds, or -EINVAL. */
int build_prune_parse_age(const char *s, int64_t *ret);
/* A size: NUMBER followed by K, M, G or T (powers of 1024, optionally with
 * "iB" or "B"), or B for bytes (no unit: GiB); "0" = no limit. 0 and *ret
 * bytes, or -EINVAL. */
int build_prune_parse_size(const char *s, uint64_t *ret);
/* The limits from POOLD_STAGE_CACHE_MAX_AGE and POOLD_STAGE_CACHE_MAX_SIZE,
 * the defaults where unset. -EINVAL with *errmsg (malloc'd) naming a
 * variable that does not parse. */
int build_prune_limits_from_env(int64_t *ret_max_age, uint64_t *ret_max_size, char **errmsg);
/* "1.5 GiB", "320 MiB", "12 KiB", "0 B". Malloc'd. */
char *build_prune_format_size(uint64_t bytes);
/* "14 days", "3 h", "25 min", "40 s". Malloc'd. */
char *build_prune_format_age(int64_t seconds);

/* ---- pruning a directory ---------------------------------------------------- */

struct build_prune_removed {
        char *name;        /* the item's main file name */
        uint64_t bytes;
        int64_t last_use;
        enum build_prune_verdict why;
};

struct build_prune_report {
        uint64_t total_before, total_after; /* bytes of the cache's own files */
        uint64_t freed;    /* bytes actually returned to the filesystem (files with no other link) */
        size_t n_items;    /* items seen */
        size_t n_pinned;   /* items in use by a build or in KEEP (what they need stays too) */
        struct build_prune_removed *removed;
        size_t n_removed;
        size_t n_garbage;  /* leftover temporary and lock files removed */
};

/* Prune cache directory DIR: only files whose names follow the cache layout
 * are looked at, everything else is left alone (and not counted). KEEP
 * (NULL-terminated file names in DIR, or NULL) are pinned, as is every item
 * some build holds (build_cache_hold, build_cache_lock). Leftover temporary
 * files of builds that are gone and lock files of keys with no entry left
 * are removed too. With DRY_RUN nothing is removed and the report says what
 * would be. NOW is Unix seconds. 0 and *ret (free with
 * build_prune_report_done()), or -errno when DIR cannot be read; a file
 * that cannot be removed is skipped (and its item counted as kept). */
int build_cache_prune(const char *dir, const char *const *keep, int64_t now, int64_t max_age, uint64_t max_size,
                      bool dry_run, struct build_prune_report *ret);
void build_prune_report_done(struct build_prune_report *r);
/* The report as lines for a build log ("stage cache: pruned ..."), one per
 * removed item and a summary with the limits. Malloc'd. */
char *build_prune_report_text(const struct build_prune_report *r, int64_t now, int64_t max_age, uint64_t max_size,
                              bool dry_run);

/* `poold-builder prune-stage-cache [--max-age AGE] [--max-size SIZE]
 * [--dry-run] [DIR]`: argv[0] is "prune-stage-cache". Exit code. */
int build_prune_main(int argc, char **argv);
