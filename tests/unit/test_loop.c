/* test_loop.c — the epoll event loop: timers, fds, signals, posts, children. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "alloc.h"
#include "loop.h"

static struct loop *new_loop(void) {
        struct loop *l = NULL;
        assert_int_equal(loop_new(&l), 0);
        assert_non_null(l);
        return l;
}

/* A safety net: no test may hang the suite. */
static void on_watchdog(struct loop *l, struct loop_timer *t, void *ud) { loop_exit(l, -ETIMEDOUT); }

/* ---------------------------------------------------------- timer order */

struct order {
        int seen[16];
        int n;
        int expect;
};

static void on_order(struct loop *l, struct loop_timer *t, void *ud) {
        struct order *o = *(struct order **)ud;
        o->seen[o->n++] = (int)(intptr_t)((void **)ud)[1];
        if (o->n == o->expect) loop_exit(l, 0);
}

static void test_timers_fire_in_deadline_then_creation_order(void **state) {
        struct loop *l = new_loop();
        struct order o = { .expect = 5 };
        /* (deadline ms, id): equal deadlines must fire in creation order. */
        int spec[5][2] = { { 30, 4 }, { 10, 1 }, { 20, 3 }, { 10, 2 }, { 0, 0 } };
        void *uds[5][2];
        for (int i = 0; i < 5; i++) {
                uds[i][0] = &o;
                uds[i][1] = (void *)(intptr_t)spec[i][1];
                loop_add_timer(l, (uint64_t)spec[i][0], false, on_order, uds[i]);
        }
        loop_add_timer(l, 5000, false, on_watchdog, NULL);
        uint64_t t0 = loop_now_ms();
        assert_int_equal(loop_run(l), 0);
        assert_true(loop_now_ms() - t0 >= 30);
        for (int i = 0; i < 5; i++) assert_int_equal(o.seen[i], i);
        loop_free(l);
}

/* ---------------------------------------------------------- cancel */

struct cancel_ctx {
        struct loop_timer *self, *victim;
        int self_runs, victim_runs;
};

static void on_victim(struct loop *l, struct loop_timer *t, void *ud) { ((struct cancel_ctx *)ud)->victim_runs++; }

static void on_canceller(struct loop *l, struct loop_timer *t, void *ud) {
        struct cancel_ctx *c = ud;
        c->self_runs++;
        loop_timer_cancel(c->victim); /* another, pending timer */
        loop_timer_cancel(t);         /* itself, a repeating timer, from its own callback */
}

static void on_stop(struct loop *l, struct loop_timer *t, void *ud) { loop_exit(l, 0); }

static void test_timer_cancel_inside_callback_stops_self_and_others(void **state) {
        struct loop *l = new_loop();
        struct cancel_ctx c = { 0 };
        c.self = loop_add_timer(l, 5, true, on_canceller, &c);
        c.victim = loop_add_timer(l, 20, false, on_victim, &c);
        loop_add_timer(l, 80, false, on_stop, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(c.self_runs, 1);
        assert_int_equal(c.victim_runs, 0);
        loop_free(l);
}

static void on_count(struct loop *l, struct loop_timer *t, void *ud) { (*(int *)ud)++; }

static void test_timer_reschedule_moves_deadline_and_repeat_repeats(void **state) {
        struct loop *l = new_loop();
        int moved = 0, rep = 0;
        struct loop_timer *m = loop_add_timer(l, 10, false, on_count, &moved);
        loop_timer_reschedule(m, 1000); /* pushed past the stop timer: must not fire */
        struct loop_timer *r = loop_add_timer(l, 10, true, on_count, &rep);
        loop_add_timer(l, 105, false, on_stop, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(moved, 0);
        assert_true(rep >= 5 && rep <= 10);
        loop_timer_cancel(m);
        loop_timer_cancel(r);
        loop_free(l);
}

/* ---------------------------------------------------------- many timers */

#define NTIMERS 10000

struct many {
        uint64_t max_lo_fired;
        uint64_t lo[NTIMERS], hi[NTIMERS]; /* bounds on each timer's real deadline */
        int fired[NTIMERS];
        int nfired, out_of_order, early;
        struct loop_timer *t[NTIMERS];
};

static struct many *many_g; /* test-local: callbacks need the array base */

static void on_many(struct loop *l, struct loop_timer *t, void *ud) {
        struct many *m = many_g;
        int i = (int)(intptr_t)ud;
        /* Out of order: an earlier timer certainly had a later deadline than this one. */
        if (m->hi[i] < m->max_lo_fired) m->out_of_order++;
        if (loop_now_ms() < m->lo[i]) m->early++;
        m->max_lo_fired = MAX(m->max_lo_fired, m->lo[i]);
        m->fired[i]++;
        m->nfired++;
}

static void test_ten_thousand_timers_fire_once_in_order_and_cancel_works(void **state) {
        struct loop *l = new_loop();
        struct many *m = xnew(struct many, 1);
        many_g = m;
        for (int i = 0; i < NTIMERS; i++) {
                uint64_t ms = (uint64_t)((i * 7919) % 60);
                m->lo[i] = loop_now_ms() + ms;
                m->t[i] = loop_add_timer(l, ms, false, on_many, (void *)(intptr_t)i);
                m->hi[i] = loop_now_ms() + ms;
        }
        /* Cancel every third before it can run. */
        for (int i = 0; i < NTIMERS; i += 3) loop_timer_cancel(m->t[i]);
        /* Well after the last deadline, however slow the adds were. */
        loop_add_timer(l, 100, false, on_stop, NULL);
        assert_int_equal(loop_run(l), 0);
        int expect = 0;
        for (int i = 0; i < NTIMERS; i++) {
                assert_int_equal(m->fired[i], i % 3 == 0 ? 0 : 1);
                expect += i % 3 != 0;
        }
        assert_int_equal(m->nfired, expect);
        assert_int_equal(m->out_of_order, 0);
        assert_int_equal(m->early, 0);
        loop_free(l);
        free(m);
}

/* ---------------------------------------------------------- fds */

struct pipe_ctx {
        int p[2];
        char got[16];
        int reads;
};

static void on_readable(struct loop *l, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct pipe_ctx *c = ud;
        assert_true(revents & EPOLLIN);
        ssize_t n = read(fd, c->got, sizeof c->got - 1);
        assert_true(n > 0);
        c->got[n] = '\0';
        c->reads++;
        loop_exit(l, 0);
}

static void on_write_later(struct loop *l, struct loop_timer *t, void *ud) {
        struct pipe_ctx *c = ud;
        assert_int_equal(write(c->p[1], "hello", 5), 5);
}

static void test_fd_watch_reports_pipe_readiness_only_when_readable(void **state) {
        struct loop *l = new_loop();
        struct pipe_ctx c = { 0 };
        assert_int_equal(pipe(c.p), 0);
        struct loop_io *io = NULL;
        assert_int_equal(loop_add_fd(l, c.p[0], EPOLLIN, on_readable, &c, &io), 0);
        loop_add_timer(l, 30, false, on_write_later, &c);
        struct loop_timer *wd = loop_add_timer(l, 5000, false, on_watchdog, NULL);
        uint64_t t0 = loop_now_ms();
        assert_int_equal(loop_run(l), 0);
        assert_true(loop_now_ms() - t0 >= 30); /* not readable before the write */
        assert_string_equal(c.got, "hello");
        assert_int_equal(c.reads, 1);
        /* Modify: with no events requested, the readable pipe must not fire. */
        assert_int_equal(write(c.p[1], "x", 1), 1);
        assert_int_equal(loop_io_set_events(io, 0), 0);
        loop_add_timer(l, 20, false, on_stop, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(c.reads, 1);
        loop_io_remove(io);
        loop_timer_cancel(wd);
        close(c.p[0]);
        close(c.p[1]);
        loop_free(l);
}

/* Two readable pipes in the same epoll batch: the first callback removes both
 * watches and closes the fds; the second must never run (ASan: no use after free). */
struct rm_ctx {
        int a[2], b[2];
        struct loop_io *ioa, *iob;
        int calls;
};

static void on_rm(struct loop *l, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct rm_ctx *c = ud;
        c->calls++;
        loop_io_remove(c->ioa);
        loop_io_remove(c->iob);
        c->ioa = c->iob = NULL;
        loop_exit(l, 0);
}

static void test_removing_watches_inside_callback_is_safe(void **state) {
        struct loop *l = new_loop();
        struct rm_ctx c = { 0 };
        assert_int_equal(pipe(c.a), 0);
        assert_int_equal(pipe(c.b), 0);
        assert_int_equal(write(c.a[1], "1", 1), 1);
        assert_int_equal(write(c.b[1], "2", 1), 1);
        assert_int_equal(loop_add_fd(l, c.a[0], EPOLLIN, on_rm, &c, &c.ioa), 0);
        assert_int_equal(loop_add_fd(l, c.b[0], EPOLLIN, on_rm, &c, &c.iob), 0);
        loop_add_timer(l, 5000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(c.calls, 1);
        for (int i = 0; i < 2; i++) close(c.a[i]), close(c.b[i]);
        loop_free(l);
}

/* ---------------------------------------------------------- prepare */

struct prep_ctx {
        int runs;
        struct loop_prepare *p;
};

static void on_prepare(struct loop *l, void *ud) {
        struct prep_ctx *c = ud;
        if (++c->runs == 3) loop_prepare_remove(c->p);
}

static void test_prepare_hook_runs_before_each_sleep_until_removed(void **state) {
        struct loop *l = new_loop();
        struct prep_ctx c = { 0 };
        c.p = loop_add_prepare(l, on_prepare, &c);
        int ticks = 0;
        struct loop_timer *t = loop_add_timer(l, 2, true, on_count, &ticks);
        loop_add_timer(l, 60, false, on_stop, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(c.runs, 3); /* ran on the first iterations, then removed itself */
        assert_true(ticks >= 5);
        loop_timer_cancel(t);
        loop_free(l);
}

/* ---------------------------------------------------------- post */

#define POST_THREADS 4
#define POST_PER_THREAD 25000

struct post_ctx {
        struct loop *loop;
        pthread_t loop_thread;
        unsigned char seen[POST_THREADS * POST_PER_THREAD];
        int last[POST_THREADS];
        int total, dup, wrong_thread, reordered;
};

struct post_arg {
        struct post_ctx *c;
        int thread;
};

static struct post_ctx *post_g;

static void on_post(void *ud) {
        struct post_ctx *c = post_g;
        int idx = (int)(intptr_t)ud;
        int th = idx / POST_PER_THREAD;
        if (!pthread_equal(pthread_self(), c->loop_thread)) c->wrong_thread++;
        if (c->seen[idx]++) c->dup++;
        if (idx % POST_PER_THREAD != c->last[th] + 1) c->reordered++;
        c->last[th] = idx % POST_PER_THREAD;
        if (++c->total == POST_THREADS * POST_PER_THREAD) loop_exit(c->loop, 0);
}

static void *poster(void *p) {
        struct post_arg *a = p;
        for (int i = 0; i < POST_PER_THREAD; i++)
                loop_post(a->c->loop, on_post, (void *)(intptr_t)(a->thread * POST_PER_THREAD + i));
        return NULL;
}

static void test_post_from_four_threads_delivers_each_call_once_in_order(void **state) {
        struct post_ctx *c = xnew(struct post_ctx, 1);
        post_g = c;
        c->loop = new_loop();
        c->loop_thread = pthread_self();
        for (int i = 0; i < POST_THREADS; i++) c->last[i] = -1;
        pthread_t th[POST_THREADS];
        struct post_arg args[POST_THREADS];
        for (int i = 0; i < POST_THREADS; i++) {
                args[i] = (struct post_arg){ c, i };
                assert_int_equal(pthread_create(&th[i], NULL, poster, &args[i]), 0);
        }
        loop_add_timer(c->loop, 20000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(c->loop), 0);
        for (int i = 0; i < POST_THREADS; i++) pthread_join(th[i], NULL);
        assert_int_equal(c->total, POST_THREADS * POST_PER_THREAD);
        assert_int_equal(c->dup, 0);
        assert_int_equal(c->wrong_thread, 0);
        assert_int_equal(c->reordered, 0);
        for (int i = 0; i < POST_THREADS * POST_PER_THREAD; i++) assert_int_equal(c->seen[i], 1);
        loop_free(c->loop);
        free(c);
}

/* ---------------------------------------------------------- signals */

static void on_sigusr1(struct loop *l, int signo, void *ud) {
        (*(int *)ud)++;
        loop_exit(l, signo);
}

static void on_raise(struct loop *l, struct loop_timer *t, void *ud) { raise(SIGUSR1); }

static void test_signal_delivered_through_signalfd_after_raise(void **state) {
        struct loop *l = new_loop();
        int got = 0;
        struct loop_signal *s = NULL;
        assert_int_equal(loop_add_signal(l, SIGUSR1, on_sigusr1, &got, &s), 0);
        assert_int_equal(loop_add_signal(l, SIGUSR1, on_sigusr1, &got, NULL), -EEXIST);
        /* SIGUSR1's default action would kill us: only the block makes this survive. */
        loop_add_timer(l, 10, false, on_raise, NULL);
        loop_add_timer(l, 5000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(l), SIGUSR1);
        assert_int_equal(got, 1);
        loop_signal_remove(s);
        loop_free(l);
}

/* ---------------------------------------------------------- children */

struct child_ctx {
        pid_t pid;
        int code, status, calls;
};

static void on_child(struct loop *l, pid_t pid, int how, int status, void *ud) {
        struct child_ctx *c = ud;
        assert_int_equal(pid, c->pid);
        c->code = how;
        c->status = status;
        c->calls++;
        loop_exit(l, 0);
}

static void test_child_watch_reports_exit_status_and_reaps(void **state) {
        struct loop *l = new_loop();
        struct child_ctx c = { 0 };
        c.pid = fork();
        assert_true(c.pid >= 0);
        if (c.pid == 0) {
                usleep(20000);
                _exit(7);
        }
        assert_int_equal(loop_add_child(l, c.pid, on_child, &c, NULL), 0);
        loop_add_timer(l, 5000, false, on_watchdog, NULL);
        assert_int_equal(loop_run(l), 0);
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.code, CLD_EXITED);
        assert_int_equal(c.status, 7);
        /* Reaped by the loop: nothing left to wait for. */
        assert_int_equal(waitpid(c.pid, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        loop_free(l);
}

static void on_exit_posted(void *ud) { loop_exit(ud, 42); }

static void test_loop_exit_code_returned_by_run(void **state) {
        struct loop *l = new_loop();
        loop_post(l, on_exit_posted, l);
        assert_int_equal(loop_run(l), 42);
        /* Posted but never run: loop_free must not leak it. */
        loop_post(l, on_exit_posted, l);
        loop_free(l);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_timers_fire_in_deadline_then_creation_order),
                cmocka_unit_test(test_timer_cancel_inside_callback_stops_self_and_others),
                cmocka_unit_test(test_timer_reschedule_moves_deadline_and_repeat_repeats),
                cmocka_unit_test(test_ten_thousand_timers_fire_once_in_order_and_cancel_works),
                cmocka_unit_test(test_fd_watch_reports_pipe_readiness_only_when_readable),
                cmocka_unit_test(test_removing_watches_inside_callback_is_safe),
                cmocka_unit_test(test_prepare_hook_runs_before_each_sleep_until_removed),
                cmocka_unit_test(test_post_from_four_threads_delivers_each_call_once_in_order),
                cmocka_unit_test(test_signal_delivered_through_signalfd_after_raise),
                cmocka_unit_test(test_child_watch_reports_exit_status_and_reaps),
                cmocka_unit_test(test_loop_exit_code_returned_by_run),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
