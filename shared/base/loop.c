/* loop.c — see loop.h.
 *
 * DESIGN: one epoll instance; every event source is a struct loop_io whose
 * pointer is the epoll_event data. Removing a watch unregisters it at once but
 * only frees it after the current batch of epoll events has been dispatched
 * (the "graveyard"), so a callback may remove any watch, its own included,
 * without a later event in the same batch touching freed memory.
 * Timers live in a binary min-heap ordered by (deadline, sequence number):
 * O(log n) add/cancel, equal deadlines fire in creation order. A timer
 * (re)armed while timers are being dispatched never fires in that same pass,
 * so a callback re-arming itself at 0 ms cannot starve I/O.
 * Signals come through one signalfd, cross-thread calls through an eventfd
 * plus a mutex-protected FIFO, child exits through pidfds. */
#include "loop.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

#define LOOP_MAX_EVENTS 64
#define LOOP_NSIG 65

struct loop_io {
        struct loop *loop;
        int fd;
        uint32_t events;
        loop_io_fn cb;
        void *ud;
        bool dead;
        struct loop_io *prev, *next;
};

struct loop_timer {
        struct loop *loop;
        uint64_t deadline;
        uint64_t period;
        uint64_t seq;
        size_t idx; /* position in the heap, HEAP_NONE when not armed */
        loop_timer_fn cb;
        void *ud;
        bool repeat;
        bool in_cb;
        bool cancelled;
        bool rearmed;
};
#define HEAP_NONE ((size_t)-1)

struct loop_prepare {
        struct loop *loop;
        loop_prepare_fn cb;
        void *ud;
        bool dead;
        struct loop_prepare *next;
};

struct loop_signal {
        struct loop *loop;
        int signo;
        loop_signal_fn cb;
        void *ud;
};

struct loop_child {
        struct loop *loop;
        pid_t pid;
        int pidfd;
        struct loop_io *io;
        loop_child_fn cb;
        void *ud;
        struct loop_child *prev, *next;
};

struct post {
        loop_post_fn fn;
        void *ud;
        struct post *next;
};

struct loop {
        int epfd;
        bool exiting;
        int exit_code;

        struct loop_io *ios;       /* live watches */
        struct loop_io *graveyard; /* removed, freed after the batch */

        struct loop_timer **heap;
        size_t nheap, heap_alloc;
        uint64_t seq;

        struct loop_prepare *prepares;
        bool in_prepare;

        int sigfd;
        struct loop_io *sig_io;
        sigset_t sigmask;
        struct loop_signal *sigs[LOOP_NSIG];

        int postfd;
        struct loop_io *post_io;
        pthread_mutex_t post_lock;
        struct post *post_head, *post_tail;

        struct loop_child *children;
};

uint64_t loop_now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------------------------------ I/O */

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_io_fn cb, void *ud, struct loop_io **ret_io) {
        struct loop_io *io = xnew(struct loop_io, 1);
        *io = (struct loop_io){ .loop = loop, .fd = fd, .events = events, .cb = cb, .ud = ud };
        struct epoll_event ev = { .events = events, .data.ptr = io };
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = negative_errno();
                free(io);
                return r;
        }
        io->next = loop->ios;
        if (loop->ios) loop->ios->prev = io;
        loop->ios = io;
        if (ret_io) *ret_io = io;
        return 0;
}

int loop_io_set_events(struct loop_io *io, uint32_t events) {
        if (io->dead) return -ESTALE;
        struct epoll_event ev = { .events = events, .data.ptr = io };
        if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) return negative_errno();
        io->events = events;
        return 0;
}

void loop_io_remove(struct loop_io *io) {
        if (!io || io->dead) return;
        struct loop *loop = io->loop;
        /* Fails harmlessly with EBADF when the owner closed the fd first. */
        (void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        io->dead = true;
        if (io->prev) io->prev->next = io->next;
        else loop->ios = io->next;
        if (io->next) io->next->prev = io->prev;
        io->prev = NULL;
        io->next = loop->graveyard;
        loop->graveyard = io;
}

static void free_graveyard(struct loop *loop) {
        while (loop->graveyard) {
                struct loop_io *io = loop->graveyard;
                loop->graveyard = io->next;
                free(io);
        }
}

/* --------------------------------------------------------------- timers */

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b) {
        return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(struct loop *loop, size_t i, struct loop_timer *t) {
        loop->heap[i] = t;
        t->idx = i;
}

static void heap_up(struct loop *loop, size_t i) {
        struct loop_timer *t = loop->heap[i];
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (!timer_before(t, loop->heap[p])) break;
                heap_set(loop, i, loop->heap[p]);
                i = p;
        }
        heap_set(loop, i, t);
}

static void heap_down(struct loop *loop, size_t i) {
        struct loop_timer *t = loop->heap[i];
        for (;;) {
                size_t l = 2 * i + 1, m = i;
                const struct loop_timer *best = t;
                if (l < loop->nheap && timer_before(loop->heap[l], best)) m = l, best = loop->heap[l];
                if (l + 1 < loop->nheap && timer_before(loop->heap[l + 1], best)) m = l + 1;
                if (m == i) break;
                heap_set(loop, i, loop->heap[m]);
                i = m;
        }
        heap_set(loop, i, t);
}

static void heap_insert(struct loop *loop, struct loop_timer *t) {
        if (loop->nheap == loop->heap_alloc) {
                loop->heap_alloc = loop->heap_alloc ? loop->heap_alloc * 2 : 64;
                loop->heap = xrealloc(loop->heap, loop->heap_alloc * sizeof *loop->heap);
        }
        t->seq = loop->seq++;
        heap_set(loop, loop->nheap++, t);
        heap_up(loop, t->idx);
}

static void heap_remove(struct loop *loop, struct loop_timer *t) {
        size_t i = t->idx;
        if (i == HEAP_NONE) return;
        t->idx = HEAP_NONE;
        loop->nheap--;
        if (i == loop->nheap) return;
        heap_set(loop, i, loop->heap[loop->nheap]);
        heap_down(loop, i);
        heap_up(loop, loop->heap[i]->idx);
}

struct loop_timer *loop_add_timer(struct loop *loop, uint64_t ms, bool repeat, loop_timer_fn cb, void *ud) {
        struct loop_timer *t = xnew(struct loop_timer, 1);
        *t = (struct loop_timer){
                .loop = loop, .cb = cb, .ud = ud, .repeat = repeat, .idx = HEAP_NONE,
                /* A 0 ms period would re-fire forever within one pass. */
                .period = repeat ? MAX(ms, 1u) : ms,
                .deadline = loop_now_ms() + ms,
        };
        heap_insert(loop, t);
        return t;
}

void loop_timer_reschedule(struct loop_timer *t, uint64_t ms) {
        heap_remove(t->loop, t);
        t->deadline = loop_now_ms() + ms;
        if (t->repeat) t->period = MAX(ms, 1u);
        if (t->in_cb) t->rearmed = true;
        heap_insert(t->loop, t);
}

void loop_timer_cancel(struct loop_timer *t) {
        if (!t) return;
        heap_remove(t->loop, t);
        if (t->in_cb)
                t->cancelled = true; /* freed when its callback returns */
        else
                free(t);
}

static void run_timers(struct loop *loop) {
        uint64_t now = loop_now_ms();
        uint64_t seq_limit = loop->seq;
        while (loop->nheap > 0 && !loop->exiting) {
                struct loop_timer *t = loop->heap[0];
                if (t->deadline > now || t->seq >= seq_limit) break;
                heap_remove(loop, t);
                t->in_cb = true;
                t->rearmed = false;
                t->cb(loop, t, t->ud);
                t->in_cb = false;
                if (t->cancelled)
                        free(t);
                else if (t->rearmed)
                        ; /* already back in the heap */
                else if (t->repeat) {
                        t->deadline = now + t->period;
                        heap_insert(loop, t);
                } else
                        free(t);
        }
}

static int next_timeout(struct loop *loop) {
        if (loop->exiting) return 0;
        if (loop->nheap == 0) return -1;
        uint64_t now = loop_now_ms(), d = loop->heap[0]->deadline;
        if (d <= now) return 0;
        return (int)MIN(d - now, (uint64_t)INT32_MAX);
}

/* -------------------------------------------------------------- prepare */

struct loop_prepare *loop_add_prepare(struct loop *loop, loop_prepare_fn cb, void *ud) {
        struct loop_prepare *p = xnew(struct loop_prepare, 1);
        *p = (struct loop_prepare){ .loop = loop, .cb = cb, .ud = ud };
        /* Append so hooks run in registration order. */
        struct loop_prepare **pp = &loop->prepares;
        while (*pp) pp = &(*pp)->next;
        *pp = p;
        return p;
}

static void prepare_sweep(struct loop *loop) {
        struct loop_prepare **pp = &loop->prepares;
        while (*pp) {
                struct loop_prepare *p = *pp;
                if (p->dead) {
                        *pp = p->next;
                        free(p);
                } else
                        pp = &p->next;
        }
}

void loop_prepare_remove(struct loop_prepare *p) {
        if (!p) return;
        p->dead = true;
        if (!p->loop->in_prepare) prepare_sweep(p->loop);
}

static void run_prepares(struct loop *loop) {
        loop->in_prepare = true;
        for (struct loop_prepare *p = loop->prepares; p; p = p->next)
                if (!p->dead) p->cb(loop, p->ud);
        loop->in_prepare = false;
        prepare_sweep(loop);
}

/* -------------------------------------------------------------- signals */

static void on_signalfd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct signalfd_siginfo si;
        for (;;) {
                ssize_t n = read(fd, &si, sizeof si);
                if (n != (ssize_t)sizeof si) break; /* EAGAIN: drained */
                if (si.ssi_signo < LOOP_NSIG && loop->sigs[si.ssi_signo]) {
                        struct loop_signal *s = loop->sigs[si.ssi_signo];
                        s->cb(loop, (int)si.ssi_signo, s->ud);
                }
        }
}

int loop_add_signal(struct loop *loop, int signo, loop_signal_fn cb, void *ud, struct loop_signal **ret_sig) {
        if (signo <= 0 || signo >= LOOP_NSIG || signo == SIGKILL || signo == SIGSTOP) return -EINVAL;
        if (loop->sigs[signo]) return -EEXIST;

        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, signo);
        int r = pthread_sigmask(SIG_BLOCK, &one, NULL);
        if (r != 0) return -r;
        sigaddset(&loop->sigmask, signo);
        int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd < 0) return negative_errno();
        if (loop->sigfd < 0) {
                loop->sigfd = fd;
                r = loop_add_fd(loop, fd, EPOLLIN, on_signalfd, NULL, &loop->sig_io);
                if (r < 0) {
                        close(fd);
                        loop->sigfd = -1;
                        return r;
                }
        }
        struct loop_signal *s = xnew(struct loop_signal, 1);
        *s = (struct loop_signal){ .loop = loop, .signo = signo, .cb = cb, .ud = ud };
        loop->sigs[signo] = s;
        if (ret_sig) *ret_sig = s;
        return 0;
}

void loop_signal_remove(struct loop_signal *s) {
        if (!s) return;
        s->loop->sigs[s->signo] = NULL;
        free(s);
}

/* ----------------------------------------------------------------- post */

static void on_post(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        uint64_t v;
        if (read(fd, &v, sizeof v) < 0) { /* EAGAIN: a racing batch took it */ }
        pthread_mutex_lock(&loop->post_lock);
        struct post *p = loop->post_head;
        loop->post_head = loop->post_tail = NULL;
        pthread_mutex_unlock(&loop->post_lock);
        while (p) {
                struct post *next = p->next;
                p->fn(p->ud);
                free(p);
                p = next;
        }
}

void loop_post(struct loop *loop, loop_post_fn fn, void *ud) {
        struct post *p = xnew(struct post, 1);
        *p = (struct post){ .fn = fn, .ud = ud };
        pthread_mutex_lock(&loop->post_lock);
        bool was_empty = !loop->post_head;
        if (loop->post_tail) loop->post_tail->next = p;
        else loop->post_head = p;
        loop->post_tail = p;
        pthread_mutex_unlock(&loop->post_lock);
        if (was_empty) {
                /* Only the first post of a batch needs to wake the loop. */
                uint64_t one = 1;
                if (write(loop->postfd, &one, sizeof one) < 0) { /* counter saturated: already readable */ }
        }
}

/* --------------------------------------------------------------- children */

static void child_unlink(struct loop_child *c) {
        struct loop *loop = c->loop;
        if (c->prev) c->prev->next = c->next;
        else loop->children = c->next;
        if (c->next) c->next->prev = c->prev;
        loop_io_remove(c->io);
        close(c->pidfd);
}

static void on_pidfd(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud) {
        struct loop_child *c = ud;
        siginfo_t si = { 0 };
        if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG) < 0) {
                if (errno != ECHILD) return;
                si.si_code = CLD_EXITED; /* someone else reaped it: report what we can */
                si.si_status = 255;
                si.si_pid = c->pid;
        }
        if (si.si_pid == 0) return; /* spurious */
        loop_child_fn cb = c->cb;
        void *cud = c->ud;
        pid_t pid = c->pid;
        child_unlink(c);
        free(c);
        cb(loop, pid, si.si_code, si.si_status, cud);
}

int loop_add_child(struct loop *loop, pid_t pid, loop_child_fn cb, void *ud, struct loop_child **ret_child) {
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0) return negative_errno();
        struct loop_child *c = xnew(struct loop_child, 1);
        *c = (struct loop_child){ .loop = loop, .pid = pid, .pidfd = fd, .cb = cb, .ud = ud };
        int r = loop_add_fd(loop, fd, EPOLLIN, on_pidfd, c, &c->io);
        if (r < 0) {
                close(fd);
                free(c);
                return r;
        }
        c->next = loop->children;
        if (loop->children) loop->children->prev = c;
        loop->children = c;
        if (ret_child) *ret_child = c;
        return 0;
}

void loop_child_remove(struct loop_child *c) {
        if (!c) return;
        child_unlink(c);
        free(c);
}

/* ------------------------------------------------------------------ loop */

int loop_new(struct loop **ret_loop) {
        struct loop *loop = xnew(struct loop, 1);
        loop->sigfd = -1;
        loop->postfd = -1;
        sigemptyset(&loop->sigmask);
        pthread_mutex_init(&loop->post_lock, NULL);
        loop->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (loop->epfd < 0) {
                int r = negative_errno();
                loop_free(loop);
                return r;
        }
        loop->postfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (loop->postfd < 0) {
                int r = negative_errno();
                loop_free(loop);
                return r;
        }
        int r = loop_add_fd(loop, loop->postfd, EPOLLIN, on_post, NULL, &loop->post_io);
        if (r < 0) {
                loop_free(loop);
                return r;
        }
        *ret_loop = loop;
        return 0;
}

void loop_free(struct loop *loop) {
        if (!loop) return;
        while (loop->children) loop_child_remove(loop->children);
        while (loop->ios) loop_io_remove(loop->ios);
        free_graveyard(loop);
        for (size_t i = 0; i < loop->nheap; i++) free(loop->heap[i]);
        free(loop->heap);
        while (loop->prepares) {
                struct loop_prepare *p = loop->prepares;
                loop->prepares = p->next;
                free(p);
        }
        for (size_t i = 0; i < LOOP_NSIG; i++) free(loop->sigs[i]);
        while (loop->post_head) {
                struct post *p = loop->post_head;
                loop->post_head = p->next;
                free(p);
        }
        pthread_mutex_destroy(&loop->post_lock);
        if (loop->sigfd >= 0) close(loop->sigfd);
        if (loop->postfd >= 0) close(loop->postfd);
        if (loop->epfd >= 0) close(loop->epfd);
        free(loop);
}

void loop_exit(struct loop *loop, int code) {
        loop->exiting = true;
        loop->exit_code = code;
}

int loop_run(struct loop *loop) {
        struct epoll_event evs[LOOP_MAX_EVENTS];
        loop->exiting = false;
        while (!loop->exiting) {
                run_prepares(loop);
                int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, next_timeout(loop));
                if (n < 0) {
                        if (errno == EINTR) continue;
                        return log_debug_errno(errno, "loop: epoll_wait: %m");
                }
                for (int i = 0; i < n; i++) {
                        struct loop_io *io = evs[i].data.ptr;
                        if (io->dead) continue;
                        io->cb(loop, io, io->fd, evs[i].events, io->ud);
                }
                free_graveyard(loop);
                run_timers(loop);
        }
        return loop->exit_code;
}
