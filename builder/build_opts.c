/* build_opts.c — the `disk-image-create` command line, output names, checksum lines.
 *
 * DESIGN: the same options diskimage-builder's disk-image-create takes and
 * Nodepool passes (-x, -t, --checksum, --no-tmpfs, --qemu-img-options, -o),
 * plus a few harmless ones DIB users type (-a amd64, -n, --image-size).
 * Pure: no I/O, no logging. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "build.h"

static const char *const format_names[_BUILD_FORMAT_MAX] = {
        [BUILD_FORMAT_QCOW2] = "qcow2",
        [BUILD_FORMAT_RAW] = "raw",
        [BUILD_FORMAT_VHD] = "vhd",
        [BUILD_FORMAT_VMDK] = "vmdk",
};

const char *build_format_to_string(enum build_format f) {
        if (f < 0 || f >= _BUILD_FORMAT_MAX) return NULL;
        return format_names[f];
}

enum build_format build_format_from_string(const char *s) {
        for (int i = 0; s && i < _BUILD_FORMAT_MAX; i++)
                if (strcmp(s, format_names[i]) == 0) return (enum build_format)i;
        return _BUILD_FORMAT_INVALID;
}

const char *build_usage(void) {
        return "usage: poold-builder disk-image-create [-x] [-t FMT[,FMT...]] [--checksum] [--no-tmpfs]\n"
               "                                        [--qemu-img-options OPTS] [--image-size GB]\n"
               "                                        -o OUTPUT_BASE ELEMENT...\n"
               "\n"
               "Build a disk image from diskimage-builder elements, like diskimage-builder's\n"
               "disk-image-create, without diskimage-builder: outside phases (root.d, extra-data.d,\n"
               "post-root.d, block-device.d, cleanup.d) run on this host, inside phases\n"
               "(pre-install.d, install.d, post-install.d, pre-finalise.d, finalise.d) run in the\n"
               "image through libguestfs. Each stage's result is cached (POOLD_STAGE_CACHE), keyed\n"
               "by everything it depends on, so an unchanged rebuild only converts the image.\n"
               "\n"
               "options:\n"
               "  -t FMT[,FMT...]        output formats: qcow2 (default), raw, vhd, vmdk\n"
               "  -o OUTPUT_BASE         write OUTPUT_BASE.<fmt> (default: image)\n"
               "  --checksum             also write OUTPUT_BASE.<fmt>.md5 and .sha256\n"
               "  --qemu-img-options O   passed as `-o O` to the qcow2 conversion\n"
               "  --image-size GB        disk size (default DIB_IMAGE_SIZE, else 2)\n"
               "  -x                     trace hooks (set -x) and show the appliance console\n"
               "  --no-tmpfs, -n         accepted for compatibility; no effect\n"
               "  -a amd64               architecture; only amd64 is supported\n"
               "  -h, --help             this help\n"
               "\n"
               "environment:\n"
               "  DIB_RELEASE            distribution release (debian-minimal: default bookworm)\n"
               "  ELEMENTS_PATH          colon-separated element directories, searched first\n"
               "  DIB_*                  passed to hooks; part of the stage cache key (except\n"
               "                         DIB_IMAGE_NAME, DIB_IMAGE_FILENAME, DIB_DEBUG_TRACE)\n"
               "  COMPRESS_IMAGE=1       compress the qcow2 output (default: not compressed)\n"
               "  POOLD_STAGE_CACHE      stage cache directory (default /var/cache/poold/stages)\n"
               "  POOLD_STAGE_CACHE_MAX_AGE, POOLD_STAGE_CACHE_MAX_SIZE\n"
               "                         at the end of the build, cache entries unused for longer\n"
               "                         than the age (default 14d), then the least recently used\n"
               "                         ones beyond the size (default 20G), are removed; 0 = no\n"
               "                         limit (see poold-builder prune-stage-cache --help)\n"
               "  POOLD_ELEMENTS_DIR     shipped elements; default, the first that exists of:\n"
               "                         <dir of this program>/../share/poold/elements (installed),\n"
               "                         <dir of this program>/../../elements (source tree build),\n"
               "                         the compile-time POOLD_ELEMENTS_DIR\n"
               "  TMPDIR                 where the work directory goes (default /var/tmp)\n";
}

static int add_formats(struct build_opts *o, const char *list, char **errmsg) {
        _cleanup_free_ char *copy = xstrdup(list);
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                enum build_format f = build_format_from_string(t);
                if (f < 0) {
                        *errmsg = xasprintf("unsupported image format '%s' (poold-builder writes qcow2, raw, vhd, vmdk)", t);
                        return -EINVAL;
                }
                bool dup = false;
                for (size_t i = 0; i < o->n_formats; i++)
                        dup = dup || o->formats[i] == f;
                if (!dup) o->formats[o->n_formats++] = f;
        }
        return 0;
}

int build_opts_parse(int argc, char **argv, struct build_opts *ret, char **errmsg) {
        enum { OPT_CHECKSUM = 256, OPT_NO_TMPFS, OPT_QEMU_IMG_OPTIONS, OPT_IMAGE_SIZE };
        static const struct option opts[] = {
                { "checksum", no_argument, NULL, OPT_CHECKSUM },
                { "no-tmpfs", no_argument, NULL, OPT_NO_TMPFS },
                { "qemu-img-options", required_argument, NULL, OPT_QEMU_IMG_OPTIONS },
                { "image-size", required_argument, NULL, OPT_IMAGE_SIZE },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct build_opts o = {};
        const char *output = "image";
        int c, r = 0;

        optind = 0; /* full reset: may be called more than once per process */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":xt:o:a:nh", opts, NULL)) != -1) {
                switch (c) {
                case 'x': o.trace = true; break;
                case 't':
                        r = add_formats(&o, optarg, errmsg);
                        if (r < 0) goto fail;
                        break;
                case 'o': output = optarg; break;
                case 'a':
                        if (strcmp(optarg, "amd64") != 0 && strcmp(optarg, "x86_64") != 0) {
                                *errmsg = xasprintf("unsupported architecture '%s' (only amd64)", optarg);
                                r = -EINVAL;
                                goto fail;
                        }
                        break;
                case 'n': break;
                case 'h': o.help = true; break;
                case OPT_CHECKSUM: o.checksum = true; break;
                case OPT_NO_TMPFS: o.no_tmpfs = true; break;
                case OPT_QEMU_IMG_OPTIONS:
                        free(o.qemu_img_options);
                        o.qemu_img_options = xstrdup(optarg);
                        break;
                case OPT_IMAGE_SIZE:
                        free(o.image_size);
                        o.image_size = xstrdup(optarg);
                        break;
                case ':':
                        *errmsg = xasprintf("option '%s' needs an argument", argv[optind - 1]);
                        r = -EINVAL;
                        goto fail;
                default:
                        if (optopt)
                                *errmsg = xasprintf("unknown option '-%c'", optopt);
                        else
                                *errmsg = xasprintf("unknown option '%s'", argv[optind - 1]);
                        r = -EINVAL;
                        goto fail;
                }
        }
        if (o.n_formats == 0) o.formats[o.n_formats++] = BUILD_FORMAT_QCOW2;
        if (!o.help && optind >= argc) {
                *errmsg = xasprintf("no element given");
                r = -EINVAL;
                goto fail;
        }
        o.elements = xnew(char *, (size_t)(argc - optind) + 1);
        for (int i = optind; i < argc; i++)
                o.elements[i - optind] = xstrdup(argv[i]);

        /* DIB strips a trailing ".<type>" from -o so "-o foo.qcow2" gives foo.qcow2, not foo.qcow2.qcow2. */
        o.output_base = xstrdup(output);
        for (size_t i = 0; i < o.n_formats; i++) {
                const char *ext = build_format_to_string(o.formats[i]);
                size_t lb = strlen(o.output_base), le = strlen(ext);
                if (lb > le + 1 && o.output_base[lb - le - 1] == '.' && strcmp(o.output_base + lb - le, ext) == 0) {
                        o.output_base[lb - le - 1] = '\0';
                        break;
                }
        }
        *ret = o;
        return 0;
fail:
        build_opts_done(&o);
        return r;
}

void build_opts_done(struct build_opts *o) {
        if (!o) return;
        free(o->qemu_img_options);
        free(o->image_size);
        free(o->output_base);
        for (size_t i = 0; o->elements && o->elements[i]; i++)
                free(o->elements[i]);
        free(o->elements);
        *o = (struct build_opts){};
}

char *build_output_path(const char *base, enum build_format f) {
        return xasprintf("%s.%s", base, build_format_to_string(f));
}

char *build_checksum_line(const char *hex, const char *path) {
        if (!hex || !*hex) return NULL;
        for (const char *p = hex; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return NULL;
        const char *slash = strrchr(path, '/');
        return xasprintf("%s  %s\n", hex, slash ? slash + 1 : path);
}
