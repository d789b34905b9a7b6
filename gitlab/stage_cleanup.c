/* stage_cleanup.c — cleanup_exec: give the node back (used, unlocked).
 *
 * The runner calls cleanup after every job, also after a failed or cancelled
 * prepare. Normally the job's holder does the work; when it is gone (killed,
 * crashed, or it already gave up at the deadline) the record in the job
 * directory is enough to finish the job as Zuul would: request deleted, node
 * locked (waiting out the dead holder's session), marked used, unlocked. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "holder.h"
#include "job.h"
#include "log.h"
#include "model_node.h"
#include "poolclient.h"
#include "remote.h"
#include "settings.h"
#include "stage.h"
#include "zk.h"
#include "zk_lock.h"

/* Return the node of REC without its holder; the caller has a session. */
static int return_orphan_node(const struct settings *s, struct zk *zk, const struct job_record *rec, FILE *out) {
        _cleanup_free_ char *lock_path = npzk_node_lock_path(rec->node_id);
        _cleanup_free_ char *identifier = xasprintf("%s job %s cleanup", s->requestor, rec->job_id);
        _cleanup_(zk_lock_freep) struct zk_lock *l = NULL;
        int r = zk_lock_new(zk, lock_path, identifier, &l);
        if (r < 0) return r;
        /* A holder killed with SIGKILL keeps its lock until its session expires. */
        int wait_ms = (int)(s->lock_timeout * 1000 + s->zk_timeout * 2000);
        r = zk_lock_acquire(l, wait_ms);
        if (r < 0) {
                fprintf(out, "Cannot lock node %s within %d s: %s\n", rec->node_id, wait_ms / 1000, strerror(-r));
                return r;
        }
        _cleanup_free_ char *path = npzk_node_path(rec->node_id);
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        r = zk_get(zk, path, &data, &len, NULL);
        _cleanup_(node_freep) struct node *n = NULL;
        struct model_error err;
        if (r == -ENOENT)
                fprintf(out, "Node %s is already gone\n", rec->node_id);
        else if (r >= 0 && node_from_json(data, len, rec->node_id, &n, &err) < 0)
                fprintf(out, "Node %s has a malformed record (%s): left alone\n", rec->node_id, err.msg);
        else if (r >= 0 && !(n->allocated_to && rec->request_id && strcmp(n->allocated_to, rec->request_id) == 0))
                fprintf(out, "Node %s belongs to someone else now: left alone\n", rec->node_id);
        else if (r >= 0) {
                enum node_state before = _NODE_STATE_INVALID;
                r = pool_client_return_node(zk, rec->node_id, &before);
                if (r >= 0)
                        fprintf(out, "Node %s returned (%s%s)\n", rec->node_id, node_state_to_string(before),
                                before == NODE_STATE_IN_USE || before == NODE_STATE_READY ? " -> used" : "");
        }
        int k = zk_lock_release(l);
        return r < 0 && r != -ENOENT ? r : k;
}

static int release_without_holder(const struct settings *s, const char *job_dir, FILE *out) {
        _cleanup_(job_record_freep) struct job_record *rec = NULL;
        int r = job_record_read(job_dir, &rec);
        if (r == -ENOENT || (r >= 0 && !rec->request_id && !rec->node_id)) {
                fprintf(out, "Nothing was requested yet\n");
                return job_dir_remove(job_dir);
        }
        if (r < 0) {
                fprintf(out, "Cannot read %s/node.json: %s\n", job_dir, strerror(-r));
                return r;
        }
        _cleanup_(zk_freep) struct zk *zk = NULL;
        int timeout_ms = (int)(s->zk_timeout * 1000);
        struct zk_tls tls;
        r = zk_new(s->zk_hosts, timeout_ms, settings_zk_tls(s, &tls), &zk);
        if (r >= 0) r = zk_connect_wait(zk, timeout_ms);
        if (r < 0) {
                fprintf(out, "Cannot connect to ZooKeeper at %s: %s\n", s->zk_hosts,
                        r == -ETIMEDOUT ? "no answer" : strerror(-r));
                return r;
        }
        if (rec->request_id) {
                r = pool_client_delete_request(zk, rec->request_id);
                if (r < 0) {
                        fprintf(out, "Cannot delete node request %s: %s\n", rec->request_id, strerror(-r));
                        return r;
                }
                fprintf(out, "Node request %s deleted\n", rec->request_id);
        }
        if (rec->node_id) {
                r = return_orphan_node(s, zk, rec, out);
                if (r < 0) return r;
        }
        return job_dir_remove(job_dir);
}

int stage_release_job(const struct settings *s, const char *job_dir, FILE *out) {
        if (access(job_dir, F_OK) < 0) {
                fprintf(out, "No node request or node recorded for this job: nothing to give back\n");
                return 0;
        }
        remote_mux_stop(job_dir); /* before the node goes back: its connection ends with us */
        _cleanup_free_ char *reply = NULL;
        /* Long enough for the holder to finish a lock attempt it may be in. */
        int timeout_ms = (int)(s->lock_timeout * 1000 + s->zk_timeout * 1000 + 10000);
        int r = holder_call(job_dir, "release", timeout_ms, &reply);
        if (r >= 0) {
                fprintf(out, "poold: %s\n", reply);
                fflush(out);
                return job_dir_remove(job_dir);
        }
        if (r != -ENOENT && r != -ECONNREFUSED) {
                fprintf(out, "The job's holder did not answer: %s\n", strerror(-r));
                return r;
        }
        fprintf(out, "The job's holder process is gone; giving its request and node back directly\n");
        r = release_without_holder(s, job_dir, out);
        fflush(out);
        return r;
}

int stage_cleanup(const struct settings *s) {
        int build_failure, system_failure;
        job_exit_codes(&build_failure, &system_failure);
        _cleanup_(job_freep) struct job *j = NULL;
        _cleanup_free_ char *err = NULL;
        if (job_from_env(s, false, &j, &err) < 0) {
                fprintf(stderr, "poold-gitlab-executor: %s\n", err);
                return system_failure;
        }
        int r = stage_release_job(s, j->dir, stdout);
        if (r < 0) {
                fprintf(stderr, "poold-gitlab-executor: cleanup of job %s failed: %s\n", j->id, strerror(-r));
                return system_failure;
        }
        return 0;
}
