/* kvm_probe.c — boot a kernel under KVM to learn whether KVM works.
 *
 * DESIGN: the decision must come from running a guest to completion, not
 * from the device node (see kvm_probe.h). We boot the newest /boot/vmlinuz-*
 * with no initrd and no root, "panic=-1" and -no-reboot: a kernel that runs
 * under KVM reaches "VFS: Unable to mount root fs", panics, reboots and QEMU
 * exits 0. "-cpu host" is what libguestfs uses under KVM and what our libvirt
 * domains use under KVM, so one run speaks for both. Any other outcome (abort,
 * timeout, no panic line) means TCG. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd.h"
#include "kvm_probe.h"
#include "log.h"
#include "macro.h"

#define QEMU "qemu-system-x86_64"

/* The newest /boot/vmlinuz-* (by name; Debian installs one per ABI). */
static char *find_kernel(void) {
        DIR *d = opendir("/boot");
        if (!d) return NULL;
        char *best = NULL;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strncmp(de->d_name, "vmlinuz-", 8) != 0) continue;
                if (!best || strverscmp(de->d_name, best) > 0) {
                        free(best);
                        best = xstrdup(de->d_name);
                }
        }
        closedir(d);
        if (!best) return NULL;
        char *path = xasprintf("/boot/%s", best);
        free(best);
        return path;
}

/* The QEMU binary the child's clean PATH (cmd.h) would run. */
static char *find_qemu(void) {
        static const char *const dirs[] = { "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                                            "/sbin", "/bin", NULL };
        for (size_t i = 0; dirs[i]; i++) {
                char *p = xasprintf("%s/" QEMU, dirs[i]);
                if (access(p, X_OK) == 0) return p;
                free(p);
        }
        return NULL;
}

/* What the cached answer depends on: this boot, this QEMU, this kernel. */
static char *cache_key(const char *qemu, const char *kernel) {
        char boot_id[64] = "";
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        if (f) {
                if (!fgets(boot_id, sizeof boot_id, f)) boot_id[0] = '\0';
                fclose(f);
                boot_id[strcspn(boot_id, "\n")] = '\0';
        }
        struct stat sq = { 0 }, sk = { 0 };
        (void)stat(qemu, &sq);
        (void)stat(kernel, &sk);
        return xasprintf("%s %s:%lld:%lld %s:%lld", boot_id, qemu, (long long)sq.st_ino, (long long)sq.st_mtime,
                         kernel, (long long)sk.st_mtime);
}

/* 0 and the cached answer when the cache holds one for KEY, else -ENOENT. */
static int cache_read(const char *key, bool *ret_usable, char **ret_reason) {
        FILE *f = fopen(KVM_PROBE_CACHE, "re");
        if (!f) return -ENOENT;
        char line[1024], verdict[16], reason[1024];
        int r = -ENOENT;
        if (fgets(line, sizeof line, f) && fgets(verdict, sizeof verdict, f) && fgets(reason, sizeof reason, f)) {
                line[strcspn(line, "\n")] = verdict[strcspn(verdict, "\n")] = reason[strcspn(reason, "\n")] = '\0';
                if (strcmp(line, key) == 0 && (strcmp(verdict, "kvm") == 0 || strcmp(verdict, "tcg") == 0)) {
                        *ret_usable = strcmp(verdict, "kvm") == 0;
                        *ret_reason = xasprintf("%s (probed earlier this boot)", reason);
                        r = 0;
                }
        }
        fclose(f);
        return r;
}

/* Best effort: an unwritable /run only costs a probe per start. */
static void cache_write(const char *key, bool usable, const char *reason) {
        (void)mkdir("/run/poold", 0755);
        _cleanup_free_ char *tmp = xasprintf("%s.%d", KVM_PROBE_CACHE, (int)getpid());
        FILE *f = fopen(tmp, "wxe");
        if (!f) return;
        fprintf(f, "%s\n%s\n%s\n", key, usable ? "kvm" : "tcg", reason);
        if (fclose(f) != 0 || rename(tmp, KVM_PROBE_CACHE) < 0) (void)unlink(tmp);
}

/* QEMU's own error for the reason: its first "error" line, else its last line. */
static char *qemu_error_line(const char *s) {
        const char *e = strstr(s, "error:");
        if (e) {
                while (e > s && e[-1] != '\n') e--;
                return xstrndup(e, strcspn(e, "\n"));
        }
        const char *end = s + strlen(s);
        while (end > s && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
        const char *start = end;
        while (start > s && start[-1] != '\n') start--;
        return xstrndup(start, (size_t)(end - start));
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_probe(const char *kernel, bool *ret_usable, char **ret_reason) {
        _cleanup_(cmd_freep) struct cmd *c = cmd_new(QEMU);
        cmd_args(c, "-machine", "accel=kvm", "-cpu", "host", "-m", "128", "-display", "none", "-nodefaults",
                 "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=1",
                 NULL);
        cmd_capture_output(c, 256 * 1024);
        cmd_set_timeout(c, KVM_PROBE_TIMEOUT_MS);
        cmd_set_kill_grace(c, 1000);
        struct cmd_status st;
        double t0 = now_s();
        int r = cmd_run(c, &st);
        if (r < 0) {
                *ret_usable = false;
                *ret_reason = xasprintf("cannot run %s: %s", QEMU, strerror(-r));
                return r;
        }
        double dt = now_s() - t0;
        bool panicked = strstr(dbuf_str(cmd_stdout(c)), "Kernel panic") != NULL;
        if (cmd_status_success(&st) && panicked) {
                *ret_usable = true;
                *ret_reason = xasprintf("a kernel booted under KVM in %.1f s", dt);
                return 0;
        }
        _cleanup_free_ char *err = qemu_error_line(dbuf_str(cmd_stderr(c)));
        *ret_usable = false;
        if (st.outcome == CMD_TIMED_OUT)
                *ret_reason = xasprintf("a kernel did not boot under KVM within %d s%s%s", KVM_PROBE_TIMEOUT_MS / 1000,
                                        *err ? ": " : "", err);
        else if (st.outcome == CMD_SIGNALED)
                *ret_reason = xasprintf("QEMU under KVM was killed by signal %d%s%s", st.code, *err ? ": " : "", err);
        else
                *ret_reason = xasprintf("QEMU under KVM exited with %d%s%s%s", st.code,
                                        panicked ? "" : " before the kernel finished booting", *err ? ": " : "", err);
        return 0;
}

int kvm_probe(bool *ret_usable, char **ret_reason) {
        *ret_usable = false;
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                int e = errno;
                *ret_reason = xasprintf("cannot open /dev/kvm: %s", strerror(e));
                return 0;
        }
        close(fd);
        _cleanup_free_ char *qemu = find_qemu();
        if (!qemu) {
                *ret_reason = xstrdup(QEMU " is not installed");
                return -ENOENT;
        }
        _cleanup_free_ char *kernel = find_kernel();
        if (!kernel) {
                *ret_reason = xstrdup("no /boot/vmlinuz-* to boot a KVM probe with");
                return -ENOENT;
        }
        _cleanup_free_ char *key = cache_key(qemu, kernel);
        if (cache_read(key, ret_usable, ret_reason) == 0) return 0;
        int r = run_probe(kernel, ret_usable, ret_reason);
        if (r < 0) return r;
        cache_write(key, *ret_usable, *ret_reason);
        log_debug("kvm probe: %s: %s", *ret_usable ? "kvm" : "tcg", *ret_reason);
        return 0;
}
