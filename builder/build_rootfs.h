/* build_rootfs.h — the first stage's disk, filled on the host.
 *
 * The base tree (root.d's tarball) goes into the image with mke2fs -d on the
 * host instead of a tar-in through the libguestfs appliance: when KVM does not
 * work the appliance is emulated and copied the tree file by file for about a
 * minute. This module lays out the raw disk: a DOS partition table with one
 * bootable Linux partition from 1 MiB to the end (the gap holds GRUB's core
 * image, installed by the vm element's finalise.d). */
#pragma once

#include <stdint.h>

/* Where the partition starts, in bytes. */
#define BUILD_ROOTFS_PART_OFFSET UINT64_C(1048576)

/* Write the partition table into the first sector of fd, a raw disk of size
 * bytes (a whole number of 512-byte sectors, at least 2 MiB, at most 2 TiB).
 * disk_id is the MBR's disk signature. Returns 0, -EINVAL for a size the
 * layout cannot hold, or the write's -errno. */
int build_rootfs_write_mbr(int fd, uint64_t size, uint32_t disk_id);
