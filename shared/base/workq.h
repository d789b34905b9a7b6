/* workq.h — a bounded pool of worker threads for blocking jobs.
 *
 * Blocking library calls (libvirt, libguestfs, hashing a file) run on one of
 * N worker threads; their completion runs on the loop thread. Jobs start in
 * FIFO order; with N > 1 they may finish in any order. The queue of jobs not
 * yet started is bounded: submitting beyond it fails with -EAGAIN, so the
 * caller decides to retry later instead of memory growing without bound.
 *
 * Thread context: workq_new/submit/free on the loop thread; work_fn on a
 * worker; done_fn on the loop thread. */
#pragma once

#include <stddef.h>

#include "loop.h"
#include "macro.h"

struct workq;

/* Runs on a worker thread; must not touch loop state. */
typedef void (*workq_work_fn)(void *ud);
/* Runs on the loop thread after work_fn returned (status 0), or when the job
 * was cancelled by workq_free() before it started (status -ECANCELED; work_fn
 * never ran). Either way it runs exactly once: free ud here. */
typedef void (*workq_done_fn)(void *ud, int status);

/* nthreads >= 1 workers, at most max_queue jobs waiting to start.
 * Returns 0 and *ret_wq, or -EINVAL/-errno (thread creation). */
int workq_new(struct loop *loop, unsigned nthreads, size_t max_queue, struct workq **ret_wq) _warn_unused_result_;
/* Queue a job. -EAGAIN when max_queue jobs already wait (nothing queued). */
int workq_submit(struct workq *wq, workq_work_fn work, workq_done_fn done, void *ud) _warn_unused_result_;
/* Jobs submitted and not yet completed (done_fn not yet run). */
size_t workq_pending(const struct workq *wq);
/* Shut down: jobs not yet started are cancelled (done_fn(ud, -ECANCELED)),
 * running jobs finish (this waits for them), then every outstanding done_fn
 * runs before workq_free returns. Nothing leaks, nothing runs afterwards.
 * Loop thread only, not from inside a done_fn of this queue. NULL is a no-op. */
void workq_free(struct workq *wq);
