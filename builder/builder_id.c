/* builder_id.c — the builder's stable identity on disk (protocol.md §1.6). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "builder.h"
#include "model.h"

static void format_uuid(const char hex[33], char ret[static 37]) {
        /* Nodepool writes str(uuid.uuid4()): 8-4-4-4-12 with dashes. */
        snprintf(ret, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int builder_id_load(const char *images_dir, char ret_id[static 37]) {
        _cleanup_free_ char *path = xasprintf("%s/builder_id.txt", images_dir);
        char buf[64] = "";

        FILE *f = fopen(path, "re");
        if (f) {
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = '\0';
                buf[strcspn(buf, "\r\n")] = '\0';
                if (strlen(buf) == 36) {
                        memcpy(ret_id, buf, 37);
                        return 0;
                }
                return -EBADMSG; /* someone else's file: do not overwrite it */
        }
        if (errno != ENOENT) return -errno;

        char hex[33];
        int r = model_uuid4_hex(hex);
        if (r < 0) return r;
        char id[37];
        format_uuid(hex, id);

        _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return -errno;
        char line[40];
        int len = snprintf(line, sizeof line, "%s\n", id);
        if (write(fd, line, (size_t)len) != len || fsync(fd) < 0) {
                r = negative_errno();
                close(fd);
                unlink(tmp);
                return r;
        }
        close(fd);
        if (rename(tmp, path) < 0) {
                r = -errno;
                unlink(tmp);
                return r;
        }
        memcpy(ret_id, id, 37);
        return 0;
}
