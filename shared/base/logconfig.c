/* logconfig.c — see logconfig.h.
 *
 * DESIGN: recognising the two formats Nodepool's -l accepts is enough; we do
 * not emulate Python's logging. fileConfig (INI) has [loggers]/[handlers]
 * sections and handlers whose class ends in FileHandler take the file name as
 * the first element of args= (or filename= in kwargs=). dictConfig (YAML) has
 * a top-level version: and handlers:, with filename: in a file handler. A
 * line scan reads both; the first file name wins. */
#include "logconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "macro.h"

#define LOGCONFIG_READ_MAX (256 * 1024) /* a logging config is small; a log file may be huge */

static char *trim(char *s) {
        while (*s == ' ' || *s == '\t') s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
        *e = '\0';
        return s;
}

/* The first quoted string in S ('...' or "..."), or NULL. */
static char *first_quoted(const char *s) {
        const char *a = strpbrk(s, "'\"");
        if (!a) return NULL;
        const char *b = strchr(a + 1, *a);
        return b ? xstrndup(a + 1, (size_t)(b - a - 1)) : NULL;
}

/* fileConfig INI: 1 and *ret_file (maybe NULL) when TEXT is one, else 0. */
static int parse_ini(char *text, char **ret_file) {
        bool is_logging = false, in_handler = false, file_class = false;
        char *args = NULL, *file = NULL;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *l = trim(line);
                if (*l == '#' || *l == ';' || !*l) continue;
                if (*l == '[') {
                        if (in_handler && file_class && args && !file) file = first_quoted(args);
                        is_logging = is_logging || strcmp(l, "[loggers]") == 0 || strcmp(l, "[handlers]") == 0;
                        in_handler = strncmp(l, "[handler_", 9) == 0;
                        file_class = false;
                        args = NULL;
                        continue;
                }
                if (!in_handler) continue;
                char *eq = strchr(l, '=');
                if (!eq) continue;
                *eq = '\0';
                char *k = trim(l), *v = trim(eq + 1);
                if (strcmp(k, "class") == 0) {
                        size_t n = strlen(v);
                        file_class = n >= 11 && strcmp(v + n - 11, "FileHandler") == 0;
                } else if (strcmp(k, "args") == 0)
                        args = v;
                else if (strcmp(k, "kwargs") == 0 && strstr(v, "filename")) {
                        char *f = strstr(v, "filename");
                        char *colon = strchr(f, ':');
                        if (colon) args = colon + 1;
                }
        }
        if (in_handler && file_class && args && !file) file = first_quoted(args);
        if (!is_logging) {
                free(file);
                return 0;
        }
        *ret_file = file;
        return 1;
}

/* dictConfig YAML: 1 and *ret_file (maybe NULL) when TEXT is one, else 0. */
static int parse_dict(char *text, char **ret_file) {
        bool version = false, handlers = false;
        char *file = NULL;
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (strncmp(line, "version:", 8) == 0) version = true;
                if (strncmp(line, "handlers:", 9) == 0) handlers = true;
                char *l = trim(line);
                if (!file && strncmp(l, "filename:", 9) == 0) {
                        char *v = trim(l + 9);
                        file = (*v == '\'' || *v == '"') ? first_quoted(v) : xstrdup(v);
                }
        }
        if (!(version && handlers)) {
                free(file);
                return 0;
        }
        *ret_file = file;
        return 1;
}

int logconfig_resolve(const char *path, char **ret_logfile, char **ret_note) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno != ENOENT) return -errno;
                *ret_logfile = xstrdup(path); /* a new log file */
                *ret_note = NULL;
                return 0;
        }
        _cleanup_free_ char *buf = xmalloc(LOGCONFIG_READ_MAX + 1);
        size_t len = 0;
        for (;;) {
                ssize_t n = read(fd, buf + len, LOGCONFIG_READ_MAX - len);
                if (n < 0) {
                        if (errno == EINTR) continue;
                        return -errno;
                }
                if (n == 0 || (len += (size_t)n) == LOGCONFIG_READ_MAX) break;
        }
        buf[len] = '\0';
        _cleanup_free_ char *copy = xstrdup(buf);
        char *file = NULL;
        const char *kind = NULL;
        if (parse_ini(buf, &file))
                kind = "fileConfig";
        else if (parse_dict(copy, &file))
                kind = "dictConfig";
        if (!kind) {
                *ret_logfile = xstrdup(path); /* our own log file: append */
                *ret_note = NULL;
                return 0;
        }
        *ret_note = file ? xasprintf("%s is a Python logging configuration (%s, Nodepool's -l): logging to its "
                                     "file handler's %s; the configuration is left untouched", path, kind, file)
                         : xasprintf("%s is a Python logging configuration (%s, Nodepool's -l) without a file "
                                     "handler: logging to stderr; the configuration is left untouched", path, kind);
        *ret_logfile = file;
        return 0;
}
