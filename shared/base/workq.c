/* workq.c — see workq.h.
 *
 * DESIGN (after Redis bio.c): one mutex guards a FIFO of waiting jobs and a
 * list of finished ones; workers sleep on a condition variable. A finished
 * job moves to the done list and an eventfd, watched by the loop, is bumped;
 * the loop thread then runs the done callbacks in completion order.
 * The queue owns that eventfd watch rather than using loop_post(), so that
 * workq_free() can run every remaining completion itself: a posted call still
 * in the loop's queue would otherwise outlive the workq (or leak its job). */
#include "workq.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>

#include "alloc.h"
#include "log.h"

struct job {
        workq_work_fn work;
        workq_done_fn done;
        void *ud;
        int status;
        struct job *next;
};

struct jobq {
        struct job *head, *tail;
        size_t n;
};

struct workq {
        struct loop *loop;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct jobq waiting, finished;
        size_t max_queue;
        size_t outstanding; /* submitted, done_fn not yet run; loop thread only */
        bool stopping;
        pthread_t *threads;
        unsigned nthreads;
        int evfd;
        struct loop_io *io;
};

static void jobq_push(struct jobq *q, struct job *j) {
        j->next = NULL;
        if (q->tail) q->tail->next = j;
        else q->head = j;
        q->tail = j;
        q->n++;
}

static struct job *jobq_pop(struct jobq *q) {
        struct job *j = q->head;
        if (!j) return NULL;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        q->n--;
        return j;
}

static void *worker(void *p) {
        struct workq *wq = p;
        pthread_mutex_lock(&wq->lock);
        for (;;) {
                while (!wq->stopping && !wq->waiting.head) pthread_cond_wait(&wq->cond, &wq->lock);
                if (wq->stopping) break;
                struct job *j = jobq_pop(&wq->waiting);
                pthread_mutex_unlock(&wq->lock);
                j->work(j->ud);
                j->status = 0;
                pthread_mutex_lock(&wq->lock);
                jobq_push(&wq->finished, j);
                uint64_t one = 1;
                if (write(wq->evfd, &one, sizeof one) < 0) { /* counter saturated: already readable */ }
        }
        pthread_mutex_unlock(&wq->lock);
        return NULL;
}

/* Run done callbacks of finished jobs (loop thread). */
static void run_finished(struct workq *wq) {
        pthread_mutex_lock(&wq->lock);
        struct jobq q = wq->finished;
        wq->finished = (struct jobq){ 0 };
        pthread_mutex_unlock(&wq->lock);
        for (struct job *j; (j = jobq_pop(&q));) {
                wq->outstanding--;
                j->done(j->ud, j->status);
                free(j);
        }
}

static void on_event(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        uint64_t v;
        if (read(fd, &v, sizeof v) < 0) { /* EAGAIN: nothing new */ }
        run_finished(ud);
}

int workq_new(struct loop *loop, unsigned nthreads, size_t max_queue, struct workq **ret_wq) {
        if (nthreads == 0 || max_queue == 0) return -EINVAL;
        struct workq *wq = xnew(struct workq, 1);
        wq->loop = loop;
        wq->max_queue = max_queue;
        pthread_mutex_init(&wq->lock, NULL);
        pthread_cond_init(&wq->cond, NULL);
        wq->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        int r = wq->evfd < 0 ? negative_errno() : loop_add_fd(loop, wq->evfd, EPOLLIN, on_event, wq, &wq->io);
        if (r < 0) {
                workq_free(wq);
                return r;
        }
        wq->threads = xnew(pthread_t, nthreads);
        for (unsigned i = 0; i < nthreads; i++) {
                r = -pthread_create(&wq->threads[i], NULL, worker, wq);
                if (r < 0) {
                        workq_free(wq);
                        return log_debug_errno(r, "workq: pthread_create: %m");
                }
                wq->nthreads++;
        }
        *ret_wq = wq;
        return 0;
}

int workq_submit(struct workq *wq, workq_work_fn work, workq_done_fn done, void *ud) {
        pthread_mutex_lock(&wq->lock);
        if (wq->stopping || wq->waiting.n >= wq->max_queue) {
                pthread_mutex_unlock(&wq->lock);
                return -EAGAIN;
        }
        struct job *j = xnew(struct job, 1);
        *j = (struct job){ .work = work, .done = done, .ud = ud };
        jobq_push(&wq->waiting, j);
        wq->outstanding++;
        pthread_cond_signal(&wq->cond);
        pthread_mutex_unlock(&wq->lock);
        return 0;
}

size_t workq_pending(const struct workq *wq) { return wq->outstanding; }

void workq_free(struct workq *wq) {
        if (!wq) return;
        pthread_mutex_lock(&wq->lock);
        wq->stopping = true;
        struct jobq cancelled = wq->waiting;
        wq->waiting = (struct jobq){ 0 };
        pthread_cond_broadcast(&wq->cond);
        pthread_mutex_unlock(&wq->lock);

        for (unsigned i = 0; i < wq->nthreads; i++) pthread_join(wq->threads[i], NULL);
        /* Completions first (they happened first), then the cancellations, in queue order. */
        run_finished(wq);
        for (struct job *j; (j = jobq_pop(&cancelled));) {
                wq->outstanding--;
                j->done(j->ud, -ECANCELED);
                free(j);
        }
        loop_io_remove(wq->io);
        if (wq->evfd >= 0) close(wq->evfd);
        free(wq->threads);
        pthread_cond_destroy(&wq->cond);
        pthread_mutex_destroy(&wq->lock);
        free(wq);
}
