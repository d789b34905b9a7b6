/* poolctl — Nodepool's `nodepool` CLI for poold: same subcommands, same columns. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "log.h"

#ifndef POOLD_VERSION
#define POOLD_VERSION "0.1.0"
#endif

static const struct ctl_command commands[] = {
        { "list", ctl_list, "[--detail]", "list nodes (--detail: every column)" },
        { "delete", ctl_delete, "ID [--now]",
          "mark a node for deletion (--now: delete its server and record at once)" },
        { "hold", ctl_hold, "ID", "hold a node (keep it; Zuul will not use it)" },
        { "info", ctl_info, "PROVIDER", "show a provider's image uploads and nodes in ZooKeeper" },
        { "erase", ctl_erase, "PROVIDER [--force]", "erase a provider's uploads and nodes from ZooKeeper" },
        { "request-list", ctl_request_list, "", "list node requests" },
        { "dib-image-list", ctl_dib_image_list, "", "list diskimage builds" },
        { "image-list", ctl_image_list, "", "list image uploads" },
        { "alien-image-list", ctl_alien_image_list, "[PROVIDER]",
          "list images in the clouds with our upload tags but no upload record in ZooKeeper" },
        { "image-status", ctl_image_status, "", "show each image's pause flag and build request" },
        { "image-build", ctl_image_build, "IMAGE", "request a build of a diskimage" },
        { "image-delete", ctl_image_delete, "--provider P --image I --build-id B --upload-id U",
          "mark an image upload for deletion" },
        { "dib-image-delete", ctl_dib_image_delete, "IMAGE-BUILD_ID", "mark a diskimage build for deletion" },
        { "image-pause", ctl_image_pause, "IMAGE", "pause building and uploading an image" },
        { "image-unpause", ctl_image_unpause, "IMAGE", "resume building and uploading an image" },
        { "export-image-data", ctl_export_image_data, "PATH", "save image build/upload records to a file" },
        { "import-image-data", ctl_import_image_data, "PATH", "restore image records saved by export-image-data" },
        { "config-validate", ctl_config_validate, "",
          "validate the configuration file: print every error and warning; exit 1 on errors, else 0" },
};

static void usage(FILE *f) {
        fprintf(f,
                "usage: poolctl [-c CONFIG] [-s SECURE] [--json] [--debug] COMMAND [ARGS]\n"
                "\n"
                "Inspect and manage a poold (Nodepool-compatible) node pool.\n"
                "\n"
                "options:\n"
                "  -c, --config PATH   nodepool.yaml (default /etc/nodepool/nodepool.yaml)\n"
                "  -s, --secure PATH   secure.yaml with ZooKeeper credentials and secrets\n"
                "      --json          print JSON instead of tables\n"
                "      --debug         log debug messages to stderr\n"
                "      --version       print the version and exit\n"
                "  -h, --help          show this help\n"
                "\n"
                "commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %s%s%s\n        %s\n", commands[i].name, *commands[i].args ? " " : "",
                        commands[i].args, commands[i].help);
}

int main(int argc, char **argv) {
        struct ctl ctl = { .config_path = "/etc/nodepool/nodepool.yaml" };
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "secure", required_argument, NULL, 's' },
                { "json", no_argument, NULL, 'j' },
                { "debug", no_argument, NULL, 'd' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;
        /* "+" stops at the first non-option: the subcommand owns the rest. */
        while ((c = getopt_long(argc, argv, "+c:s:h", opts, NULL)) != -1) {
                switch (c) {
                case 'c': ctl.config_path = optarg; break;
                case 's': ctl.secure_path = optarg; break;
                case 'j': ctl.json = true; break;
                case 'd': ctl.debug = true; break;
                case 'V': printf("poolctl %s\n", POOLD_VERSION); return 0;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        log_setup("poolctl", ctl.debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING);
        if (optind >= argc) {
                usage(stderr);
                return 1; /* as nodepool: no command → help, exit 1 */
        }
        const char *name = argv[optind];
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (strcmp(commands[i].name, name) != 0) continue;
                int sub_argc = argc - optind;
                char **sub_argv = argv + optind;
                optind = 0; /* 0, not 1: glibc then re-reads the optstring (permuting again, not "+") */
                return commands[i].run(&ctl, sub_argc, sub_argv);
        }
        fprintf(stderr, "poolctl: unknown command '%s' (see poolctl --help)\n", name);
        return 2;
}
