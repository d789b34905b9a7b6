/* build_rootfs.c — see build_rootfs.h. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "build_rootfs.h"
#include "macro.h"

#define SECTOR 512u

static void put_le32(unsigned char *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (unsigned char)(v >> (8 * i));
}

int build_rootfs_write_mbr(int fd, uint64_t size, uint32_t disk_id) {
        if (size % SECTOR || size < 2 * BUILD_ROOTFS_PART_OFFSET || size / SECTOR > UINT32_MAX) return -EINVAL;
        unsigned char mbr[SECTOR] = { 0 };
        uint32_t start = (uint32_t)(BUILD_ROOTFS_PART_OFFSET / SECTOR);
        uint32_t count = (uint32_t)(size / SECTOR) - start;
        put_le32(mbr + 440, disk_id);
        unsigned char *e = mbr + 446;   /* the first of four 16-byte entries */
        e[0] = 0x80;                    /* bootable */
        /* CHS fields unused: LBA-only values, as parted and sfdisk write for large disks. */
        e[1] = 0xfe, e[2] = 0xff, e[3] = 0xff;
        e[4] = 0x83;                    /* Linux */
        e[5] = 0xfe, e[6] = 0xff, e[7] = 0xff;
        put_le32(e + 8, start);
        put_le32(e + 12, count);
        mbr[510] = 0x55, mbr[511] = 0xaa;
        ssize_t n = pwrite(fd, mbr, sizeof mbr, 0);
        if (n < 0) return negative_errno();
        return n == (ssize_t)sizeof mbr ? 0 : -EIO;
}
