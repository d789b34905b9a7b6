/* ctl_data.c — `poolctl export-image-data` / `import-image-data`: save the
 * build, upload and pause znodes as {znode_path: data_string} and recreate
 * them (protocol.md §1.6), e.g. to move a builder's state to a new
 * ZooKeeper cluster.
 *
 * DESIGN. Upload ids are sequence numbers of their parent; a restored upload
 * dir starts its counter at 0 and the builder's next upload would collide
 * with (or sort below) an imported id. So before restoring, import creates
 * and deletes dummy sequence children until the parent's counter is past
 * the highest imported id, as Nodepool's importImageData does. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "json_util.h"
#include "ctl.h"
#include "log.h"
#include "model_image.h"
#include "nodepool_zk.h"
#include "zk.h"

/* An import file is ours or an operator's, but still bounded. */
#define IMPORT_MAX (256u * 1024 * 1024)
/* Enough for any real counter; a hostile "9999999999" must not loop for hours. */
#define SEQUENCE_BUMP_MAX 1000000

static int path_arg(int argc, char **argv, const char *name, const char **ret) {
        static const struct option opts[] = { {} };
        if (getopt_long(argc, argv, "", opts, NULL) != -1) return ctl_usage(name, "PATH", NULL);
        if (argc - optind != 1) return ctl_usage(name, "PATH", "expected one file path");
        *ret = argv[optind];
        return 0;
}

/* Add PATH → DATA (as a JSON string; invalid UTF-8 cannot be exported). */
static int add_entry(json_t *obj, const char *path, const char *data, size_t len) {
        json_t *v = json_stringn(data ? data : "", data ? len : 0);
        if (!v) {
                fprintf(stderr, "poolctl: %s is not UTF-8 text; not exported\n", path);
                return -EINVAL;
        }
        json_object_set_new(obj, path, v);
        return 0;
}

int ctl_export_image_data(struct ctl *ctl, int argc, char **argv) {
        const char *file = NULL;
        int u = path_arg(argc, argv, "export-image-data", &file);
        if (u) return u;
        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;
        struct npzk_images t = {};
        int r = ctl_images_load(zk, &t);
        if (r < 0) {
                fprintf(stderr, "poolctl: cannot read " NPZK_IMAGES ": %s\n", strerror(-r));
                return 1;
        }
        int ret = 0;
        json_t *obj = json_object();
        if (!obj) abort();
        for (size_t i = 0; i < t.n; i++) {
                struct npzk_image *im = &t.images[i];
                if (im->paused) {
                        _cleanup_free_ char *p = npzk_image_pause_path(im->name);
                        add_entry(obj, p, "", 0);
                }
                for (size_t j = 0; j < im->n; j++) {
                        struct npzk_build *b = &im->builds[j];
                        if (!b->data) continue; /* vanished while reading */
                        if (add_entry(obj, b->path, b->data, b->len) < 0) ret = 1;
                        for (size_t p = 0; p < b->n; p++)
                                for (size_t k = 0; k < b->provs[p].n; k++) {
                                        struct npzk_upload *up = &b->provs[p].ups[k];
                                        if (!up->data) continue;
                                        if (add_entry(obj, up->path, up->data, up->len) < 0) ret = 1;
                                }
                }
        }
        npzk_images_done(&t);

        char *s = json_dumps(obj, JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
        json_decref(obj);
        if (!s) abort();
        /* The records are not secret, but Nodepool writes the file 0600; so do we. */
        _cleanup_close_ int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                fprintf(stderr, "poolctl: cannot open %s: %m\n", file);
                free(s);
                return 1;
        }
        size_t len = strlen(s), off = 0;
        while (off < len) {
                ssize_t n = write(fd, s + off, len - off);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) {
                        fprintf(stderr, "poolctl: cannot write %s: %m\n", file);
                        free(s);
                        return 1;
                }
                off += (size_t)n;
        }
        free(s);
        if (close(TAKE_FD(fd)) < 0) {
                fprintf(stderr, "poolctl: cannot write %s: %m\n", file);
                return 1;
        }
        return ret;
}

/* Sequence number at the end of a created path ".../0000000042"; -1 if none. */
static long long trailing_seq(const char *path) {
        const char *slash = strrchr(path, '/');
        const char *s = slash ? slash + 1 : path;
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || *end) return -1;
        return v;
}

/* Push DIR's sequence counter past HIGHEST with throw-away children. */
static int bump_sequence(struct zk *zk, const char *dir, long long highest) {
        _cleanup_free_ char *prefix = xasprintf("%s/", dir);
        for (int i = 0; i < SEQUENCE_BUMP_MAX; i++) {
                _cleanup_free_ char *created = NULL;
                int r = zk_create(zk, prefix, NULL, 0, ZK_SEQUENCE | ZK_MAKEPATH, &created);
                if (r == -EEXIST) continue; /* the dummy hit an imported id: the counter moved on anyway */
                if (r < 0) return r;
                long long seq = trailing_seq(created);
                r = zk_delete(zk, created, -1);
                if (r < 0 && r != -ENOENT) return r;
                if (seq < 0 || seq >= highest) return 0;
        }
        return -ERANGE;
}

int ctl_import_image_data(struct ctl *ctl, int argc, char **argv) {
        const char *file = NULL;
        int u = path_arg(argc, argv, "import-image-data", &file);
        if (u) return u;

        json_error_t jerr;
        _cleanup_(json_util_decrefp) json_t *obj = NULL;
        struct stat st;
        if (stat(file, &st) < 0) {
                fprintf(stderr, "poolctl: cannot read %s: %m\n", file);
                return 1;
        }
        if ((unsigned long long)st.st_size > IMPORT_MAX) {
                fprintf(stderr, "poolctl: %s is too large\n", file);
                return 1;
        }
        obj = json_load_file(file, 0, &jerr);
        if (!obj || !json_is_object(obj)) {
                fprintf(stderr, "poolctl: %s: not a JSON object of znode paths: %s (line %d)\n", file,
                        obj ? "wrong type" : jerr.text, obj ? 0 : jerr.line);
                return 1;
        }
        /* Check everything before writing anything. */
        const char *path;
        json_t *v;
        json_object_foreach(obj, path, v) {
                struct npzk_path p;
                bool ok = json_is_string(v) && npzk_path_parse(path, &p) == 0;
                if (ok) {
                        ok = npzk_kind_in_image_tree(p.kind);
                        npzk_path_done(&p);
                }
                if (!ok) {
                        fprintf(stderr, "poolctl: %s: entry %s is not an image record\n", file, path);
                        return 1;
                }
        }

        _cleanup_(config_freep) struct config *cfg = NULL;
        _cleanup_(zk_freep) struct zk *zk = NULL;
        if (ctl_open(ctl, &cfg, &zk) < 0) return 1;

        /* Highest upload id per upload dir. */
        _cleanup_(json_util_decrefp) json_t *highest = json_object();
        json_object_foreach(obj, path, v) {
                struct npzk_path ref;
                if (npzk_path_parse(path, &ref) < 0) continue;
                long long seq = ref.kind == NPZK_UPLOAD ? trailing_seq(ref.upload_id) : -1;
                _cleanup_free_ char *dir = seq >= 0 ? npzk_uploads_path(ref.image, ref.build_id, ref.provider) : NULL;
                npzk_path_done(&ref);
                if (seq < 0) continue;
                json_t *cur = json_object_get(highest, dir);
                if (!cur || json_integer_value(cur) < seq) json_object_set_new(highest, dir, json_integer(seq));
        }
        json_object_foreach(highest, path, v) {
                int r = bump_sequence(zk, path, (long long)json_integer_value(v));
                if (r < 0) {
                        fprintf(stderr, "poolctl: cannot advance the sequence counter of %s: %s\n", path,
                                strerror(-r));
                        return 1;
                }
        }

        int ret = 0;
        json_object_foreach(obj, path, v) {
                const char *data = json_string_value(v);
                size_t len = json_string_length(v);
                int r = zk_create(zk, path, data, len, ZK_MAKEPATH, NULL);
                if (r == -EEXIST) r = zk_set(zk, path, data, len, -1, NULL);
                if (r < 0) {
                        fprintf(stderr, "poolctl: cannot restore %s: %s\n", path, strerror(-r));
                        ret = 1;
                }
        }
        return ret;
}
