/* job.c — see job.h. */
#include "job.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "json_util.h"
#include "keyscan.h"
#include "settings.h"

#define RECORD_NAME "node.json"
#define RECORD_MAX (64 * 1024)

static int exit_code_from_env(const char *name, int def) {
        const char *v = getenv(name);
        if (!v || !*v) return def;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || *end || x < 1 || x > 255) return def;
        return (int)x;
}

void job_exit_codes(int *ret_build_failure, int *ret_system_failure) {
        *ret_build_failure = exit_code_from_env("BUILD_FAILURE_EXIT_CODE", JOB_BUILD_FAILURE_DEFAULT);
        *ret_system_failure = exit_code_from_env("SYSTEM_FAILURE_EXIT_CODE", JOB_SYSTEM_FAILURE_DEFAULT);
}

static const char *nonempty_env(const char *name) {
        const char *v = getenv(name);
        return v && *v ? v : NULL;
}

static bool all_digits(const char *s) {
        if (!*s) return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9') return false;
        return true;
}

char *job_resolve_label(const struct settings *s, const char **ret_from) {
        const char *v = nonempty_env("POOLD_GITLAB_LABEL");
        if (v) {
                *ret_from = "the config stage (job_env)";
                return xstrdup(v);
        }
        _cleanup_free_ char *var = xasprintf("CUSTOM_ENV_%s", s->label_variable);
        v = nonempty_env(var);
        if (v) {
                *ret_from = "the job's CI/CD variable";
                return xstrdup(v);
        }
        if (s->label) {
                *ret_from = "the runner's default label";
                return xstrdup(s->label);
        }
        return NULL;
}

void job_free(struct job *j) {
        if (!j) return;
        free(j->id);
        free(j->label);
        free(j->dir);
        free(j->project);
        free(j->job_name);
        free(j->pipeline_id);
        free(j->job_url);
        free(j);
}

int job_from_env(const struct settings *s, bool need_label, struct job **ret, char **ret_error) {
        const char *id = getenv("CUSTOM_ENV_CI_JOB_ID");
        if (!id || !*id) {
                *ret_error = xstrdup("CUSTOM_ENV_CI_JOB_ID is not set: not run by GitLab Runner's custom executor?");
                return -EINVAL;
        }
        /* It names a directory: nothing but a job number may get through. */
        if (!all_digits(id) || strlen(id) > 20) {
                *ret_error = xasprintf("CUSTOM_ENV_CI_JOB_ID '%.40s' is not a job number", id);
                return -EINVAL;
        }
        _cleanup_(job_freep) struct job *j = xnew(struct job, 1);
        j->id = xstrdup(id);
        j->dir = xasprintf("%s/job-%s", s->state_dir, id);
        j->label = job_resolve_label(s, &j->label_from);
        if (!j->label && need_label) {
                *ret_error = xasprintf("no label: set the CI/CD variable %s or 'label' in %s", s->label_variable,
                                       s->path);
                return -EINVAL;
        }
        if (j->label && need_label && !settings_label_allowed(s, j->label)) {
                *ret_error = xasprintf("label '%s' (from %s) is not in this runner's allowed-labels", j->label,
                                       j->label_from);
                return -EINVAL;
        }
        j->timeout_s = s->job_timeout;
        const char *t = nonempty_env("CUSTOM_ENV_CI_JOB_TIMEOUT");
        if (t && all_digits(t) && strlen(t) < 10 && atol(t) > 0) j->timeout_s = atol(t);
        j->project = xstrdup(nonempty_env("CUSTOM_ENV_CI_PROJECT_PATH"));
        j->job_name = xstrdup(nonempty_env("CUSTOM_ENV_CI_JOB_NAME"));
        j->pipeline_id = xstrdup(nonempty_env("CUSTOM_ENV_CI_PIPELINE_ID"));
        j->job_url = xstrdup(nonempty_env("CUSTOM_ENV_CI_JOB_URL"));
        *ret = TAKE_PTR(j);
        return 0;
}

/* ------------------------------------------------------------------ files */

char *job_path(const char *dir, const char *name) { return xasprintf("%s/%s", dir, name); }

int job_state_dir_ensure(const char *state_dir) {
        _cleanup_free_ char *p = xstrdup(state_dir);
        for (char *s = p + 1; *s; s++) {
                if (*s != '/') continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST) return negative_errno();
                *s = '/';
        }
        if (mkdir(p, 0700) < 0 && errno != EEXIST) return negative_errno();
        return 0;
}

/* Write DATA to DIR/NAME through a temporary file and rename. */
static int write_atomic(const char *dir, const char *name, const char *data, size_t len) {
        _cleanup_free_ char *path = job_path(dir, name);
        _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
        _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return negative_errno();
        for (size_t off = 0; off < len;) {
                ssize_t w = write(fd, data + off, len - off);
                if (w < 0 && errno == EINTR) continue;
                if (w < 0) {
                        int r = negative_errno();
                        unlink(tmp);
                        return r;
                }
                off += (size_t)w;
        }
        if (rename(tmp, path) < 0) {
                int r = negative_errno();
                unlink(tmp);
                return r;
        }
        return 0;
}

void job_record_free(struct job_record *r) {
        if (!r) return;
        free(r->job_id);
        free(r->label);
        free(r->request_id);
        free(r->node_id);
        free(r->provider);
        free(r->interface_ip);
        free(r->username);
        free(r);
}

static void set_opt_str(json_t *o, const char *key, const char *v) {
        if (v) json_object_set_new(o, key, json_util_must(json_string(v)));
}

int job_record_write(const char *dir, const struct job_record *r) {
        _cleanup_(json_util_decrefp) json_t *o = json_util_must(json_object());
        set_opt_str(o, "job_id", r->job_id);
        set_opt_str(o, "label", r->label);
        set_opt_str(o, "request_id", r->request_id);
        set_opt_str(o, "node_id", r->node_id);
        set_opt_str(o, "provider", r->provider);
        set_opt_str(o, "interface_ip", r->interface_ip);
        if (r->connection_port) json_object_set_new(o, "connection_port", json_integer(r->connection_port));
        set_opt_str(o, "username", r->username);
        json_object_set_new(o, "holder_pid", json_integer(r->holder_pid));
        if (r->locked_time > 0) json_object_set_new(o, "locked_time", json_real(r->locked_time));
        if (r->deadline > 0) json_object_set_new(o, "deadline", json_real(r->deadline));
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        int k = json_util_dump(o, &text, &len);
        if (k < 0) return k;
        return write_atomic(dir, RECORD_NAME, text, len);
}

int job_record_read(const char *dir, struct job_record **ret) {
        _cleanup_free_ char *path = job_path(dir, RECORD_NAME);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return negative_errno();
        _cleanup_free_ char *buf = xmalloc(RECORD_MAX + 1);
        size_t len = 0;
        for (;;) {
                ssize_t k = read(fd, buf + len, RECORD_MAX - len);
                if (k < 0 && errno == EINTR) continue;
                if (k < 0) return negative_errno();
                if (k == 0) break;
                len += (size_t)k;
                if (len == RECORD_MAX) return -EFBIG;
        }
        _cleanup_(json_util_decrefp) json_t *o = NULL;
        if (json_util_parse_object(buf, len, &o, NULL) < 0) return -EINVAL;
        _cleanup_(job_record_freep) struct job_record *r = xnew(struct job_record, 1);
        int64_t port = 0, pid = 0;
        double t = 0;
        if (json_util_get_str(o, "job_id", NULL, &r->job_id, NULL) < 0 ||
            json_util_get_str(o, "label", NULL, &r->label, NULL) < 0 ||
            json_util_get_str(o, "request_id", NULL, &r->request_id, NULL) < 0 ||
            json_util_get_str(o, "node_id", NULL, &r->node_id, NULL) < 0 ||
            json_util_get_str(o, "provider", NULL, &r->provider, NULL) < 0 ||
            json_util_get_str(o, "interface_ip", NULL, &r->interface_ip, NULL) < 0 ||
            json_util_get_str(o, "username", NULL, &r->username, NULL) < 0 ||
            json_util_get_int(o, "connection_port", 0, &port, NULL) < 0 ||
            json_util_get_int(o, "holder_pid", 0, &pid, NULL) < 0)
                return -EINVAL;
        if (port < 0 || port > 65535 || pid < 0 || pid > INT_MAX) return -EINVAL;
        r->connection_port = (int)port;
        r->holder_pid = (pid_t)pid;
        if (json_util_get_time(o, "locked_time", &t, NULL) == 0 && t == t) r->locked_time = t;
        if (json_util_get_time(o, "deadline", &t, NULL) == 0 && t == t) r->deadline = t;
        *ret = TAKE_PTR(r);
        return 0;
}

int job_known_hosts_write(const char *dir, const char *ip, int port, char *const *host_keys) {
        _cleanup_free_ char *text = keyscan_known_hosts_text(ip, port, host_keys);
        return write_atomic(dir, "known_hosts", text, strlen(text));
}

static void closedirp(DIR **d) {
        if (*d) closedir(*d);
}

int job_dir_remove(const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d) return errno == ENOENT ? 0 : negative_errno();
        for (struct dirent *e; (e = readdir(d));) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                _cleanup_free_ char *p = job_path(dir, e->d_name);
                if (unlink(p) < 0 && errno != ENOENT) return negative_errno();
        }
        if (rmdir(dir) < 0 && errno != ENOENT) return negative_errno();
        return 0;
}
