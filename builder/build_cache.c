/* build_cache.c — the stage cache directory (layout in build.h).
 *
 * DESIGN: entries are immutable files named by the stage key, published by
 * rename(2); concurrent builds of the same stage serialise on a per-key
 * flock and the loser finds the winner's entry. Disks are qcow2 backing
 * chains inside the directory; each disk file has a unique name, so an
 * entry is usable exactly when every file of its chain is still there. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "build.h"
#include "dbuf.h"

#define CHAIN_MAX 64

char *build_cache_path(const char *dir, const char *key, const char *suffix) {
        return xasprintf("%s/%s%s", dir, key, suffix);
}

static bool is_file(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool build_cache_has_tar(const char *dir, const char *key) {
        _cleanup_free_ char *p = build_cache_path(dir, key, ".tar");
        return is_file(p);
}

static uint64_t be64(const unsigned char *p) {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

int build_qcow2_backing(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return negative_errno();
        unsigned char h[20];
        ssize_t n = pread(fd, h, sizeof h, 0);
        if (n < 0) return negative_errno();
        if (n != sizeof h || memcmp(h, "QFI\xfb", 4) != 0) return -EBADMSG;
        uint64_t off = be64(h + 8);
        uint32_t len = (uint32_t)h[16] << 24 | (uint32_t)h[17] << 16 | (uint32_t)h[18] << 8 | h[19];
        if (off == 0 || len == 0) {
                *ret = xstrdup("");
                return 0;
        }
        if (len > 1023) return -EBADMSG; /* qemu's own limit */
        char *name = xmalloc(len + 1);
        n = pread(fd, name, len, (off_t)off);
        if (n != (ssize_t)len || memchr(name, '\0', len)) {
                free(name);
                return n < 0 ? negative_errno() : -EBADMSG;
        }
        name[len] = '\0';
        *ret = name;
        return 0;
}

/* Whether the disk file (a plain name in dir) and its whole backing chain exist. */
static bool chain_ok(const char *dir, const char *name) {
        _cleanup_free_ char *cur = xstrdup(name);
        for (int depth = 0; depth < CHAIN_MAX; depth++) {
                if (!*cur || strchr(cur, '/')) return false; /* we only ever write plain names */
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, cur);
                _cleanup_free_ char *backing = NULL;
                if (!is_file(p) || build_qcow2_backing(p, &backing) < 0) return false;
                if (!*backing) return true;
                free(cur);
                cur = TAKE_PTR(backing);
        }
        return false;
}

char *build_cache_disk(const char *dir, const char *key) {
        _cleanup_free_ char *p = build_cache_path(dir, key, ".disk");
        struct dbuf b = DBUF_INIT(4096);
        if (dbuf_read_file(&b, p) < 0) {
                dbuf_free(&b);
                return NULL;
        }
        _cleanup_free_ char *name = dbuf_take(&b, NULL);
        name[strcspn(name, "\n")] = '\0';
        if (!chain_ok(dir, name)) return NULL;
        return xasprintf("%s/%s", dir, name);
}

size_t build_cache_first_missing(const char *dir, const struct build_plan *plan) {
        for (size_t i = plan->n_stages; i-- > 1;) {
                _cleanup_free_ char *d = build_cache_disk(dir, plan->stages[i].key);
                if (d) return i + 1;
        }
        if (plan->n_stages > 0 && build_cache_has_tar(dir, plan->stages[0].key)) return 1;
        return 0;
}

char *build_cache_new_disk_name(const char *key) {
        uint64_t nonce = 0;
        if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                nonce = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
        }
        return xasprintf("%s-%016llx.qcow2", key, (unsigned long long)nonce);
}

int build_cache_publish(const char *dir, const char *key, const char *disk_name) {
        _cleanup_free_ char *p = build_cache_path(dir, key, ".disk");
        _cleanup_free_ char *tmp = build_cache_path(dir, key, ".disk.tmp");
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return negative_errno();
        _cleanup_free_ char *content = xasprintf("%s\n", disk_name);
        size_t len = strlen(content);
        if (write(fd, content, len) != (ssize_t)len || fsync(fd) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        if (rename(tmp, p) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        return 0;
}

/* Whether fd is still the file at path: the pruner removes files while it
 * holds them exclusively, so a lock won after waiting may be on a file that
 * is gone. */
static bool still_there(int fd, const char *path) {
        struct stat a, b;
        return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int build_cache_lock(const char *dir, const char *key, int *ret_fd) {
        _cleanup_free_ char *p = build_cache_path(dir, key, ".lock");
        bool said = false;
        for (;;) {
                int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0) return negative_errno();
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        if (errno != EWOULDBLOCK) {
                                int r = negative_errno();
                                close(fd);
                                return r;
                        }
                        if (!said) {
                                printf("waiting for another build holding %s\n", p);
                                fflush(stdout);
                                said = true;
                        }
                        if (flock(fd, LOCK_EX) < 0) {
                                int r = negative_errno();
                                close(fd);
                                return r;
                        }
                }
                if (still_there(fd, p)) {
                        *ret_fd = fd;
                        return 0;
                }
                close(fd); /* removed by the pruner meanwhile: lock the new one */
        }
}

void build_cache_touch(const char *dir, const char *name) {
        _cleanup_free_ char *p = xasprintf("%s/%s", dir, name);
        (void)utimensat(AT_FDCWD, p, NULL, 0);
}

int build_cache_hold(struct build_holds *h, const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return negative_errno();
        if (flock(fd, LOCK_SH) < 0) {
                int r = negative_errno();
                close(fd);
                return r;
        }
        if (!still_there(fd, path)) {
                close(fd);
                return -ENOENT;
        }
        h->fds = xrealloc(h->fds, (h->n + 1) * sizeof *h->fds);
        h->fds[h->n++] = fd;
        return 0;
}

char *build_cache_hold_disk(struct build_holds *h, const char *dir, const char *key) {
        size_t mark = h->n;
        _cleanup_free_ char *disk = build_cache_disk(dir, key);
        if (!disk) return NULL;
        /* Walk the chain again, holding each file; a file pruned between the
         * two walks makes the entry unusable. */
        _cleanup_free_ char *cur = xstrdup(strrchr(disk, '/') + 1);
        for (int depth = 0; depth < CHAIN_MAX && *cur; depth++) {
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, cur);
                _cleanup_free_ char *backing = NULL;
                if (build_cache_hold(h, p) < 0 || build_qcow2_backing(p, &backing) < 0) goto fail;
                free(cur);
                cur = TAKE_PTR(backing);
        }
        if (*cur || !chain_ok(dir, strrchr(disk, '/') + 1)) goto fail;
        return TAKE_PTR(disk);
fail:
        while (h->n > mark) close(h->fds[--h->n]);
        return NULL;
}

void build_holds_release(struct build_holds *h) {
        for (size_t i = 0; i < h->n; i++) close(h->fds[i]);
        free(h->fds);
        *h = (struct build_holds){};
}

void build_cache_remove_tmp(const char *dir, const char *key) {
        DIR *d = opendir(dir);
        if (!d) return;
        size_t kl = strlen(key);
        struct dirent *de;
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (strncmp(de->d_name, key, kl) != 0 || n < 4 || strcmp(de->d_name + n - 4, ".tmp") != 0) continue;
                _cleanup_free_ char *p = xasprintf("%s/%s", dir, de->d_name);
                (void)unlink(p);
        }
        closedir(d);
}
