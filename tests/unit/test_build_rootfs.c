/* test_build_rootfs.c — the first stage's partition table (builder/build_rootfs.c), read back by
 * util-linux's partx, the same parser the kernel's and GRUB's views agree with: one bootable Linux
 * partition from 1 MiB to the disk's end, and sizes the layout cannot hold refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_rootfs.h"

static int make_disk(char *path, uint64_t size) {
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        return fd;
}

/* partx's view of the table: "NR START SECTORS TYPE FLAGS" of each partition. */
static char *partx_show(const char *path) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "partx --noheadings --raw -o NR,START,SECTORS,TYPE,FLAGS %s 2>&1", path);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        static char out[4096];
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        assert_int_equal(pclose(p), 0);
        return out;
}

static void test_one_bootable_linux_partition_from_1mib_to_the_end(void **state) {
        (void)state;
        char path[] = "/tmp/test_build_rootfs.XXXXXX";
        uint64_t size = UINT64_C(2048) * 1024 * 1024;   /* the default image size, sparse */
        int fd = make_disk(path, size);
        assert_int_equal(build_rootfs_write_mbr(fd, size, 0x12345678), 0);
        close(fd);
        char *out = partx_show(path);
        /* 2048 sectors of 512 bytes = 1 MiB; the rest of the 4194304 sectors; type 0x83; boot flag 0x80 */
        assert_string_equal(out, "1 2048 4192256 0x83 0x80\n");
        unlink(path);
}

static void test_sizes_the_layout_cannot_hold_are_refused(void **state) {
        (void)state;
        char path[] = "/tmp/test_build_rootfs.XXXXXX";
        int fd = make_disk(path, 4096);
        assert_int_equal(build_rootfs_write_mbr(fd, 2 * BUILD_ROOTFS_PART_OFFSET - 512, 0), -EINVAL);  /* under 2 MiB */
        assert_int_equal(build_rootfs_write_mbr(fd, 4 * BUILD_ROOTFS_PART_OFFSET + 100, 0), -EINVAL);  /* not whole sectors */
        assert_int_equal(build_rootfs_write_mbr(fd, (UINT64_C(1) << 32) * 512 + 512, 0), -EINVAL);     /* over 2 TiB */
        /* nothing was written */
        unsigned char b[512];
        assert_int_equal(pread(fd, b, sizeof b, 0), (ssize_t)sizeof b);
        for (size_t i = 0; i < sizeof b; i++)
                assert_int_equal(b[i], 0);
        close(fd);
        unlink(path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_one_bootable_linux_partition_from_1mib_to_the_end),
                cmocka_unit_test(test_sizes_the_layout_cannot_hold_are_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
