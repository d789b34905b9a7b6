/* build_gfs.c — libguestfs appliance sessions for the image build.
 *
 * DESIGN: guestfs_command() only returns a command's output when it ends (and
 * fails past 4 MB), which is useless for a 5-minute apt run. Runners instead
 * write to /dev/console: the appliance's serial console reaches us as
 * GUESTFS_EVENT_APPLIANCE messages, which we split into lines and copy to
 * stdout (the build log) between the runner's begin/end markers, so the log
 * shows hook output as it happens without the appliance's boot noise. */
#include <guestfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "build_gfs.h"
#include "dbuf.h"
#include "kvm_probe.h"
#include "log.h"

struct build_gfs {
        guestfs_h *g;
        bool trace;
        bool copying;     /* between the markers */
        struct dbuf line; /* partial console line */
        char *device;
        bool mounted;
};

static void emit_line(struct build_gfs *gfs, const char *s, size_t n) {
        if (n > 0 && s[n - 1] == '\r') n--;
        if (n == strlen(BUILD_GFS_MARK_BEGIN) && memcmp(s, BUILD_GFS_MARK_BEGIN, n) == 0) {
                gfs->copying = true;
                return;
        }
        if (n == strlen(BUILD_GFS_MARK_END) && memcmp(s, BUILD_GFS_MARK_END, n) == 0) {
                gfs->copying = false;
                return;
        }
        if (!gfs->copying && !gfs->trace) return;
        /* One write per line: the daemon's log file gets whole lines. */
        _cleanup_free_ char *out = xasprintf("%s%.*s\n", gfs->copying ? "    " : "    [appliance] ", (int)n, s);
        size_t len = strlen(out);
        for (size_t off = 0; off < len;) {
                ssize_t w = write(STDOUT_FILENO, out + off, len - off);
                if (w <= 0) break;
                off += (size_t)w;
        }
}

static void on_appliance(guestfs_h *g, void *opaque, uint64_t event, int event_handle, int flags, const char *buf,
                         size_t buf_len, const uint64_t *array, size_t array_len) {
        struct build_gfs *gfs = opaque;
        for (size_t i = 0; i < buf_len; i++) {
                if (buf[i] == '\n') {
                        emit_line(gfs, gfs->line.buf ? gfs->line.buf : "", gfs->line.len);
                        dbuf_reset(&gfs->line);
                } else if (dbuf_add(&gfs->line, &buf[i], 1) < 0) {
                        /* an absurdly long line: flush what we have */
                        emit_line(gfs, gfs->line.buf, gfs->line.len);
                        dbuf_reset(&gfs->line);
                }
        }
}

static int gfs_error(struct build_gfs *gfs, const char *what, char **errmsg) {
        const char *e = guestfs_last_error(gfs->g);
        *errmsg = xasprintf("%s: %s", what, e ? e : "unknown libguestfs error");
        return -EIO;
}

void build_gfs_free(struct build_gfs *gfs) {
        if (!gfs) return;
        if (gfs->g) guestfs_close(gfs->g);
        dbuf_free(&gfs->line);
        free(gfs->device);
        free(gfs);
}

/* libguestfs uses KVM whenever /dev/kvm opens, and its appliance crashes where
 * that KVM cannot run QEMU: force TCG unless the probe booted a kernel under
 * KVM. An operator's LIBGUESTFS_BACKEND_SETTINGS wins. */
static int gfs_choose_accel(struct build_gfs *gfs) {
        if (getenv("LIBGUESTFS_BACKEND_SETTINGS")) {
                log_info("libguestfs: LIBGUESTFS_BACKEND_SETTINGS=%s set, not probing KVM",
                         getenv("LIBGUESTFS_BACKEND_SETTINGS"));
                return 0;
        }
        bool usable = false;
        _cleanup_free_ char *why = NULL;
        (void)kvm_probe(&usable, &why);
        log_info("libguestfs appliance: %s: %s", usable ? "KVM" : "TCG (software emulation)", why);
        if (usable) return 0;
        char *settings[] = { (char *)"force_tcg", NULL };
        return guestfs_set_backend_settings(gfs->g, settings) < 0 ? -EIO : 0;
}

int build_gfs_open(const char *disk_path, bool trace, struct build_gfs **ret, char **errmsg) {
        struct build_gfs *gfs = xnew(struct build_gfs, 1);
        gfs->trace = trace;
        dbuf_init(&gfs->line, 64 * 1024);
        gfs->g = guestfs_create();
        if (!gfs->g) {
                *errmsg = xasprintf("guestfs_create failed");
                build_gfs_free(gfs);
                return -EIO;
        }
        /* We report errors ourselves, once, with context. */
        guestfs_set_error_handler(gfs->g, NULL, NULL);
        if (gfs_choose_accel(gfs) < 0) {
                int e = gfs_error(gfs, "libguestfs backend settings", errmsg);
                build_gfs_free(gfs);
                return e;
        }
        if (guestfs_set_event_callback(gfs->g, on_appliance, GUESTFS_EVENT_APPLIANCE, 0, gfs) < 0 ||
            guestfs_set_network(gfs->g, 1) < 0 ||
            guestfs_add_drive_opts(gfs->g, disk_path, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "qcow2",
                                   GUESTFS_ADD_DRIVE_OPTS_CACHEMODE, "unsafe", GUESTFS_ADD_DRIVE_OPTS_DISCARD,
                                   "besteffort", -1) < 0) {
                int r = gfs_error(gfs, "libguestfs setup", errmsg);
                build_gfs_free(gfs);
                return r;
        }
        if (guestfs_launch(gfs->g) < 0) {
                int r = gfs_error(gfs, "libguestfs appliance launch", errmsg);
                build_gfs_free(gfs);
                return r;
        }
        char **devs = guestfs_list_devices(gfs->g);
        if (!devs || !devs[0]) {
                int r = gfs_error(gfs, "libguestfs list-devices", errmsg);
                if (devs) free(devs);
                build_gfs_free(gfs);
                return r;
        }
        gfs->device = devs[0];
        for (size_t i = 1; devs[i]; i++)
                free(devs[i]);
        free(devs);
        *ret = gfs;
        return 0;
}

const char *build_gfs_device(const struct build_gfs *gfs) { return gfs->device; }

static char *partition(const struct build_gfs *gfs) { return xasprintf("%s1", gfs->device); }

int build_gfs_mount_root(struct build_gfs *gfs, char **errmsg) {
        _cleanup_free_ char *part = partition(gfs);
        if (guestfs_mount(gfs->g, part, "/") < 0) return gfs_error(gfs, "mounting the root filesystem", errmsg);
        gfs->mounted = true;
        return 0;
}

int build_gfs_tar_in(struct build_gfs *gfs, const char *tar, const char *dir, char **errmsg) {
        if (guestfs_mkdir_p(gfs->g, dir) < 0) return gfs_error(gfs, dir, errmsg);
        if (guestfs_tar_in_opts(gfs->g, tar, dir, GUESTFS_TAR_IN_OPTS_XATTRS, 1, -1) < 0)
                return gfs_error(gfs, "copying files into the image", errmsg);
        return 0;
}

int build_gfs_upload(struct build_gfs *gfs, const char *local, const char *remote, char **errmsg) {
        if (guestfs_upload(gfs->g, local, remote) < 0) return gfs_error(gfs, remote, errmsg);
        return 0;
}

int build_gfs_run(struct build_gfs *gfs, const char *script, char **errmsg) {
        char *argv[] = { (char *)"/bin/bash", (char *)script, NULL };
        gfs->copying = false;
        char *out = guestfs_command(gfs->g, argv);
        /* Flush a last unterminated line. */
        if (gfs->line.len > 0) {
                emit_line(gfs, gfs->line.buf, gfs->line.len);
                dbuf_reset(&gfs->line);
        }
        gfs->copying = false;
        if (!out) return gfs_error(gfs, script, errmsg);
        /* What did not reach the console (an image without /dev) comes back here. */
        gfs->copying = true;
        for (char *p = out, *nl; *p; p = nl + 1) {
                nl = strchrnul(p, '\n');
                emit_line(gfs, p, (size_t)(nl - p));
                if (!*nl) break;
        }
        gfs->copying = false;
        free(out);
        return 0;
}

void build_gfs_rm_rf(struct build_gfs *gfs, const char *path) {
        (void)guestfs_rm_rf(gfs->g, path);
}

int build_gfs_close(struct build_gfs *gfs, char **errmsg) {
        int r = 0;
        /* Give deleted files' blocks back: the qcow2 (cache entry and outputs)
         * then holds only live data. Best effort: not every fs/qemu can. */
        if (gfs->mounted) (void)guestfs_fstrim(gfs->g, "/", -1);
        if (gfs->mounted && guestfs_umount_all(gfs->g) < 0) r = gfs_error(gfs, "unmounting the image", errmsg);
        if (r == 0 && guestfs_shutdown(gfs->g) < 0) r = gfs_error(gfs, "stopping the appliance", errmsg);
        build_gfs_free(gfs);
        return r;
}
