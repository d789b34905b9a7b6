/* remote.c — see remote.h. */
#include "remote.h"

#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "cmd.h"
#include "job.h"
#include "settings.h"

/* POSIX sh (dash, bash). fd 3 keeps the connection's stdin for the watcher
 * after the job's own stdin is /dev/null; the watcher holds neither stdout
 * nor stderr, so it never keeps the ssh channel open; it kills only while
 * the script file exists, i.e. while the job has not finished. */
char *remote_wrapper(size_t script_len) {
        return xasprintf("umask 077; "
                         "t=$(mktemp \"${TMPDIR:-/tmp}/poold-gitlab.XXXXXXXX\") || exit %d; "
                         "if ! head -c %zu >\"$t\" || [ \"$(wc -c <\"$t\")\" -ne %zu ]; then "
                         "rm -f \"$t\"; echo 'poold-gitlab-executor: the job script did not arrive whole' >&2; "
                         "exit %d; fi; "
                         "exec 3<&0 </dev/null; "
                         "setsid bash \"$t\" 3<&- & p=$!; "
                         "{ cat <&3; if [ -f \"$t\" ]; then kill -TERM -\"$p\"; fi; } >/dev/null 2>&1 & "
                         "exec 3<&-; "
                         "wait \"$p\"; rc=$?; rm -f \"$t\"; exit $rc",
                         REMOTE_SSH_FAILURE, script_len, script_len, REMOTE_SSH_FAILURE);
}

char *remote_mux_path(const char *job_dir) {
        /* ssh appends a random suffix while it creates the socket (~17 bytes). */
        char *p = job_path(job_dir, "ssh.mux");
        if (strlen(p) + 20 >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
                free(p);
                return NULL;
        }
        return p;
}

void remote_mux_stop(const char *job_dir) {
        _cleanup_free_ char *mux = remote_mux_path(job_dir);
        if (!mux || access(mux, F_OK) < 0) return;
        _cleanup_(cmd_freep) struct cmd *c = cmd_new("ssh");
        cmd_args(c, "-F", "none", "-o", "BatchMode=yes", NULL);
        cmd_argf(c, "-oControlPath=%s", mux);
        cmd_args(c, "-O", "exit", "node", NULL);
        cmd_set_timeout(c, 5000);
        struct cmd_status st;
        if (cmd_run(c, &st) < 0) return; /* gone already, or it ends within ControlPersist anyway */
}

void remote_ssh_args(struct cmd *cmd, const struct settings *s, const struct job_record *rec,
                     const char *job_dir, const char *remote_command) {
        _cleanup_free_ char *known_hosts = job_path(job_dir, "known_hosts");
        _cleanup_free_ char *mux = remote_mux_path(job_dir);
        cmd_args(cmd, "-F", "none", "-T", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", NULL);
        cmd_argf(cmd, "-oUserKnownHostsFile=%s", known_hosts);
        if (mux) {
                cmd_args(cmd, "-o", "ControlMaster=auto", "-o", "ControlPersist=60", NULL);
                cmd_argf(cmd, "-oControlPath=%s", mux);
        }
        cmd_args(cmd, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "UpdateHostKeys=no", "-o",
                 "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "PasswordAuthentication=no", NULL);
        cmd_argf(cmd, "-oConnectTimeout=%lld", (long long)s->ssh_connect_timeout);
        /* A node that vanishes (deleted, crashed) ends the stage in a minute, not never. */
        cmd_args(cmd, "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR",
                 "-i", s->ssh_key, NULL);
        cmd_argf(cmd, "-p%d", rec->connection_port);
        cmd_argf(cmd, "-l%s", rec->username);
        cmd_args(cmd, "--", rec->interface_ip, remote_command, NULL);
}
