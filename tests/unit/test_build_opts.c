/* test_build_opts.c — `poold-builder disk-image-create`'s command line, output
 * names and checksum lines (builder/build_opts.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "build.h"

static int parse(struct build_opts *o, char **err, ...) {
        char *argv[32];
        int argc = 0;
        va_list ap;
        va_start(ap, err);
        argv[argc++] = (char *)"disk-image-create";
        for (char *a; (a = va_arg(ap, char *));)
                argv[argc++] = a;
        va_end(ap);
        argv[argc] = NULL;
        *err = NULL;
        return build_opts_parse(argc, argv, o, err);
}

/* Nodepool's exact invocation parses: -x, formats in order and deduplicated,
 * --checksum, --no-tmpfs, --qemu-img-options, -o, elements in order. */
static void test_opts_nodepool_command_line(void **state) {
        struct build_opts o;
        char *err;
        assert_int_equal(parse(&o, &err, "-x", "-t", "qcow2,raw,qcow2", "--checksum", "--no-tmpfs", "--qemu-img-options",
                               "compat=0.10", "-o", "/opt/images/img-0000000001", "debian-minimal", "vm", NULL),
                         0);
        assert_null(err);
        assert_true(o.trace);
        assert_true(o.checksum);
        assert_true(o.no_tmpfs);
        assert_int_equal(o.n_formats, 2);
        assert_int_equal(o.formats[0], BUILD_FORMAT_QCOW2);
        assert_int_equal(o.formats[1], BUILD_FORMAT_RAW);
        assert_string_equal(o.qemu_img_options, "compat=0.10");
        assert_string_equal(o.output_base, "/opt/images/img-0000000001");
        assert_string_equal(o.elements[0], "debian-minimal");
        assert_string_equal(o.elements[1], "vm");
        assert_null(o.elements[2]);
        build_opts_done(&o);
}

/* Defaults: qcow2, output "image"; options may follow elements; -t may repeat. */
static void test_opts_defaults_and_permutation(void **state) {
        struct build_opts o;
        char *err;
        assert_int_equal(parse(&o, &err, "debian-minimal", NULL), 0);
        assert_int_equal(o.n_formats, 1);
        assert_int_equal(o.formats[0], BUILD_FORMAT_QCOW2);
        assert_string_equal(o.output_base, "image");
        assert_false(o.trace || o.checksum);
        build_opts_done(&o);

        assert_int_equal(parse(&o, &err, "a", "-t", "vhd", "b", "-t", "raw", "-o", "out", NULL), 0);
        assert_int_equal(o.n_formats, 2);
        assert_int_equal(o.formats[0], BUILD_FORMAT_VHD);
        assert_int_equal(o.formats[1], BUILD_FORMAT_RAW);
        assert_string_equal(o.elements[0], "a");
        assert_string_equal(o.elements[1], "b");
        build_opts_done(&o);
}

/* Like DIB, "-o x.qcow2 -t qcow2" writes x.qcow2, not x.qcow2.qcow2; other suffixes stay. */
static void test_opts_output_base_strips_requested_extension(void **state) {
        struct build_opts o;
        char *err;
        assert_int_equal(parse(&o, &err, "-t", "raw,qcow2", "-o", "/x/img.qcow2", "e", NULL), 0);
        assert_string_equal(o.output_base, "/x/img");
        build_opts_done(&o);
        assert_int_equal(parse(&o, &err, "-o", "/x/img.raw", "e", NULL), 0); /* raw not requested */
        assert_string_equal(o.output_base, "/x/img.raw");
        build_opts_done(&o);
        assert_int_equal(parse(&o, &err, "-o", ".qcow2", "e", NULL), 0); /* nothing left: kept */
        assert_string_equal(o.output_base, ".qcow2");
        build_opts_done(&o);
}

/* Errors name the problem: unsupported format, architecture, unknown option,
 * missing argument, no element. --help needs no element. */
static void test_opts_errors(void **state) {
        struct build_opts o;
        char *err;
        assert_int_equal(parse(&o, &err, "-t", "qcow2,squashfs", "e", NULL), -EINVAL);
        assert_non_null(strstr(err, "squashfs"));
        free(err);
        assert_int_equal(parse(&o, &err, "-a", "arm64", "e", NULL), -EINVAL);
        assert_non_null(strstr(err, "arm64"));
        free(err);
        assert_int_equal(parse(&o, &err, "--bogus", "e", NULL), -EINVAL);
        assert_non_null(strstr(err, "--bogus"));
        free(err);
        assert_int_equal(parse(&o, &err, "-Q", "e", NULL), -EINVAL);
        assert_non_null(strstr(err, "-Q"));
        free(err);
        assert_int_equal(parse(&o, &err, "e", "-o", NULL), -EINVAL);
        assert_non_null(strstr(err, "needs an argument"));
        free(err);
        assert_int_equal(parse(&o, &err, "-t", "qcow2", NULL), -EINVAL);
        assert_non_null(strstr(err, "no element"));
        free(err);
        assert_int_equal(parse(&o, &err, "--help", NULL), 0);
        assert_true(o.help);
        build_opts_done(&o);
        assert_int_equal(parse(&o, &err, "-a", "amd64", "-n", "--image-size", "3.5", "e", NULL), 0);
        assert_string_equal(o.image_size, "3.5");
        build_opts_done(&o);
}

/* Format names round-trip; output paths are base + "." + extension. */
static void test_format_names_and_output_paths(void **state) {
        for (int f = 0; f < _BUILD_FORMAT_MAX; f++)
                assert_int_equal(build_format_from_string(build_format_to_string(f)), f);
        assert_int_equal(build_format_from_string("vpc"), _BUILD_FORMAT_INVALID);
        assert_null(build_format_to_string(_BUILD_FORMAT_MAX));
        _cleanup_free_ char *a = build_output_path("/opt/img-1", BUILD_FORMAT_VHD);
        _cleanup_free_ char *b = build_output_path("img", BUILD_FORMAT_QCOW2);
        assert_string_equal(a, "/opt/img-1.vhd");
        assert_string_equal(b, "img.qcow2");
}

/* Checksum lines are what md5sum/sha256sum print when run in the output
 * directory: digest, two spaces, file name; checked by running sha256sum -c. */
static void test_checksum_line_format_verifies_with_sha256sum(void **state) {
        char dir[] = "/tmp/test_build_optsXXXXXX";
        assert_non_null(mkdtemp(dir));
        _cleanup_free_ char *file = xasprintf("%s/img.raw", dir);
        FILE *f = fopen(file, "w");
        assert_non_null(f);
        fputs("abc", f);
        fclose(f);
        /* sha256("abc") from FIPS 180-2 */
        const char *hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        _cleanup_free_ char *line = build_checksum_line(hex, file);
        assert_string_equal(line, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  img.raw\n");
        _cleanup_free_ char *sumf = xasprintf("%s.sha256", file);
        f = fopen(sumf, "w");
        fputs(line, f);
        fclose(f);
        _cleanup_free_ char *cmd = xasprintf("cd %s && sha256sum --status -c img.raw.sha256 2>/dev/null", dir);
        assert_int_equal(system(cmd), 0);
        /* a wrong digest fails the same check, so the check above can fail */
        _cleanup_free_ char *bad = build_checksum_line("0000000000000000000000000000000000000000000000000000000000000000", file);
        f = fopen(sumf, "w");
        fputs(bad, f);
        fclose(f);
        assert_int_not_equal(system(cmd), 0);
        _cleanup_free_ char *rm = xasprintf("rm -rf %s", dir);
        assert_int_equal(system(rm), 0);

        assert_null(build_checksum_line("ABC", "x"));
        assert_null(build_checksum_line("", "x"));
        assert_null(build_checksum_line("12 34", "x"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_opts_nodepool_command_line),
                cmocka_unit_test(test_opts_defaults_and_permutation),
                cmocka_unit_test(test_opts_output_base_strips_requested_extension),
                cmocka_unit_test(test_opts_errors),
                cmocka_unit_test(test_format_names_and_output_paths),
                cmocka_unit_test(test_checksum_line_format_verifies_with_sha256sum),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
