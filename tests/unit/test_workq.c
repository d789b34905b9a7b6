/* test_workq.c — the worker pool: every job once, completions on the loop thread, bounds, shutdown. */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "alloc.h"
#include "workq.h"

static void on_watchdog(struct loop *l, struct loop_timer *t, void *ud) { loop_exit(l, -ETIMEDOUT); }

/* ---------------------------------------------------------- all jobs */

#define NJOBS 2000

struct all_ctx {
        struct loop *loop;
        pthread_t loop_thread;
        atomic_int runs[NJOBS];
        atomic_int ran_on_loop_thread;
        int done[NJOBS];
        int ndone, done_off_loop, bad_status;
};

struct job_arg {
        struct all_ctx *c;
        int i;
};

static void all_work(void *ud) {
        struct job_arg *a = ud;
        if (pthread_equal(pthread_self(), a->c->loop_thread)) atomic_fetch_add(&a->c->ran_on_loop_thread, 1);
        atomic_fetch_add(&a->c->runs[a->i], 1);
}

static void all_done(void *ud, int status) {
        struct job_arg *a = ud;
        struct all_ctx *c = a->c;
        if (!pthread_equal(pthread_self(), c->loop_thread)) c->done_off_loop++;
        if (status != 0) c->bad_status++;
        c->done[a->i]++;
        if (++c->ndone == NJOBS) loop_exit(c->loop, 0);
        free(a);
}

static void test_every_job_runs_once_on_a_worker_and_completes_on_loop_thread(void **state) {
        struct all_ctx *c = xnew(struct all_ctx, 1);
        assert_int_equal(loop_new(&c->loop), 0);
        c->loop_thread = pthread_self();
        struct workq *wq = NULL;
        assert_int_equal(workq_new(c->loop, 4, NJOBS, &wq), 0);
        for (int i = 0; i < NJOBS; i++) {
                struct job_arg *a = xnew(struct job_arg, 1);
                *a = (struct job_arg){ c, i };
                assert_int_equal(workq_submit(wq, all_work, all_done, a), 0);
        }
        loop_add_timer(c->loop, 20000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(c->loop), 0);
        for (int i = 0; i < NJOBS; i++) {
                assert_int_equal(atomic_load(&c->runs[i]), 1);
                assert_int_equal(c->done[i], 1);
        }
        assert_int_equal(atomic_load(&c->ran_on_loop_thread), 0);
        assert_int_equal(c->done_off_loop, 0);
        assert_int_equal(c->bad_status, 0);
        assert_int_equal(workq_pending(wq), 0);
        workq_free(wq);
        loop_free(c->loop);
        free(c);
}

/* ---------------------------------------------------------- bound */

struct gate {
        sem_t started, release;
        atomic_int runs;
        int done_ok, done_cancelled;
        struct loop *loop;
        int expect_done;
};

static void gated_work(void *ud) {
        struct gate *g = ud;
        sem_post(&g->started);
        sem_wait(&g->release);
        atomic_fetch_add(&g->runs, 1);
}

static void quick_work(void *ud) { atomic_fetch_add(&((struct gate *)ud)->runs, 1); }

static void gate_done(void *ud, int status) {
        struct gate *g = ud;
        if (status == 0) g->done_ok++;
        else if (status == -ECANCELED) g->done_cancelled++;
        if (g->loop && g->done_ok + g->done_cancelled == g->expect_done) loop_exit(g->loop, 0);
}

static void test_queue_bound_rejects_with_eagain_then_accepts_after_drain(void **state) {
        struct loop *l = NULL;
        assert_int_equal(loop_new(&l), 0);
        struct gate g = { .loop = l, .expect_done = 4 };
        sem_init(&g.started, 0, 0);
        sem_init(&g.release, 0, 0);
        struct workq *wq = NULL;
        assert_int_equal(workq_new(l, 1, 3, &wq), 0);
        /* The only worker is busy with the gated job... */
        assert_int_equal(workq_submit(wq, gated_work, gate_done, &g), 0);
        sem_wait(&g.started);
        /* ...so exactly max_queue = 3 more can wait. */
        for (int i = 0; i < 3; i++) assert_int_equal(workq_submit(wq, quick_work, gate_done, &g), 0);
        assert_int_equal(workq_submit(wq, quick_work, gate_done, &g), -EAGAIN);
        assert_int_equal(workq_pending(wq), 4);
        sem_post(&g.release);
        loop_add_timer(l, 10000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(atomic_load(&g.runs), 4);
        assert_int_equal(g.done_ok, 4);
        /* Drained: room again. */
        g.expect_done = 5;
        assert_int_equal(workq_submit(wq, quick_work, gate_done, &g), 0);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(g.done_ok, 5);
        assert_int_equal(workq_new(l, 0, 3, &(struct workq *){ NULL }), -EINVAL);
        workq_free(wq);
        loop_free(l);
        sem_destroy(&g.started);
        sem_destroy(&g.release);
}

/* ---------------------------------------------------------- shutdown */

struct owned {
        struct gate *g;
        int *payload; /* leaks unless done_fn frees it */
};

static void owned_work(void *ud) { quick_work(((struct owned *)ud)->g); }

static void owned_done(void *ud, int status) {
        struct owned *o = ud;
        gate_done(o->g, status);
        free(o->payload);
        free(o);
}

static void *release_later(void *p) {
        usleep(50000);
        sem_post(&((struct gate *)p)->release);
        return NULL;
}

static void test_free_with_pending_jobs_cancels_them_finishes_running_and_leaks_nothing(void **state) {
        struct loop *l = NULL;
        assert_int_equal(loop_new(&l), 0);
        struct gate g = { 0 };
        sem_init(&g.started, 0, 0);
        sem_init(&g.release, 0, 0);
        struct workq *wq = NULL;
        assert_int_equal(workq_new(l, 1, 100, &wq), 0);
        assert_int_equal(workq_submit(wq, gated_work, gate_done, &g), 0);
        sem_wait(&g.started);
        for (int i = 0; i < 50; i++) {
                struct owned *o = xnew(struct owned, 1);
                o->g = &g;
                o->payload = xnew(int, 16);
                assert_int_equal(workq_submit(wq, owned_work, owned_done, o), 0);
        }
        /* The running job is released only while workq_free waits for it. */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, release_later, &g), 0);
        workq_free(wq);
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&g.runs), 1); /* only the gated job ran */
        assert_int_equal(g.done_ok, 1);
        assert_int_equal(g.done_cancelled, 50);
        loop_free(l);
        sem_destroy(&g.started);
        sem_destroy(&g.release);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_job_runs_once_on_a_worker_and_completes_on_loop_thread),
                cmocka_unit_test(test_queue_bound_rejects_with_eagain_then_accepts_after_drain),
                cmocka_unit_test(test_free_with_pending_jobs_cancels_them_finishes_running_and_leaks_nothing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
