/* build_gfs.h — the libguestfs side of the image build: one appliance per
 * stage, in which the disk (made by build_rootfs.h or a previous stage) is
 * mounted and hooks run in the image.
 *
 * Output of scripts run with build_gfs_run() streams to the build log (the
 * appliance's serial console, between markers the runner prints); with trace
 * on, the whole appliance console is shown. Single-threaded. */
#pragma once

#include <stdbool.h>

struct build_gfs;

/* Start an appliance (network on, so apt inside reaches the mirror) with
 * disk_path (qcow2, read-write) as its only disk. Returns 0 and *ret, or
 * -EIO with *errmsg (caller frees) when libguestfs fails to launch. */
int build_gfs_open(const char *disk_path, bool trace, struct build_gfs **ret, char **errmsg);

/* Mount the image's root filesystem (first partition) at /. */
int build_gfs_mount_root(struct build_gfs *gfs, char **errmsg);

/* Unpack the host tarball tar into directory dir of the image (created). */
int build_gfs_tar_in(struct build_gfs *gfs, const char *tar, const char *dir, char **errmsg);

/* Copy the host file local to path remote in the image. */
int build_gfs_upload(struct build_gfs *gfs, const char *local, const char *remote, char **errmsg);

/* The appliance's name of the disk (e.g. "/dev/sda"), for IMAGE_BLOCK_DEVICE. Borrowed. */
const char *build_gfs_device(const struct build_gfs *gfs);

/* Run `bash script` chrooted in the image; the script's output goes to the
 * build log as it is produced (it should `exec >/dev/console 2>&1` and print
 * the markers of build_gfs_marker_*). Returns 0 when it exited 0, -EIO with
 * *errmsg otherwise. */
int build_gfs_run(struct build_gfs *gfs, const char *script, char **errmsg);

/* Lines a runner prints to start/stop copying the console to the build log. */
#define BUILD_GFS_MARK_BEGIN "@@poold-log-begin@@"
#define BUILD_GFS_MARK_END "@@poold-log-end@@"

/* Remove path (recursively) in the image; errors ignored. */
void build_gfs_rm_rf(struct build_gfs *gfs, const char *path);

/* Unmount, sync and stop the appliance, then free. Returns 0, or -EIO with
 * *errmsg when the disk could not be written back cleanly (the stage result
 * must then be thrown away). */
int build_gfs_close(struct build_gfs *gfs, char **errmsg);

/* Free without the checks of build_gfs_close() (error paths). NULL ok. */
void build_gfs_free(struct build_gfs *gfs);
