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
        { "config-validate", ctl_config_validate, "",
          "validate the configuration file; exit 0 if valid, else print every problem and exit 1" },
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
                fprintf(f, "  %-18s %s\n", commands[i].name, commands[i].help);
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
                optind = 1;
                return commands[i].run(&ctl, sub_argc, sub_argv);
        }
        fprintf(stderr, "poolctl: unknown command '%s' (see poolctl --help)\n", name);
        return 2;
}
