/* loop.h — one epoll event loop per daemon (Redis ae style).
 *
 * Everything here runs on the loop thread (the thread that calls loop_run())
 * except loop_post() and loop_now_ms(), which any thread may call.
 * Handles returned by the loop stay owned by the loop: remove them with the
 * matching _remove() or _cancel() call (safe from inside any callback, including
 * the handle's own), or let loop_free() release what is left. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/types.h>

#include "macro.h"

struct loop;
struct loop_io;
struct loop_timer;
struct loop_prepare;
struct loop_signal;
struct loop_child;

/* revents: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP as reported by epoll. */
typedef void (*loop_io_fn)(struct loop *loop, struct loop_io *io, int fd, uint32_t revents, void *ud);
typedef void (*loop_timer_fn)(struct loop *loop, struct loop_timer *t, void *ud);
typedef void (*loop_prepare_fn)(struct loop *loop, void *ud);
typedef void (*loop_signal_fn)(struct loop *loop, int signo, void *ud);
/* how: CLD_EXITED (status = exit code) or CLD_KILLED/CLD_DUMPED (status = signal), from waitid(). */
typedef void (*loop_child_fn)(struct loop *loop, pid_t pid, int how, int status, void *ud);
typedef void (*loop_post_fn)(void *ud);

/* Monotonic milliseconds (CLOCK_MONOTONIC). Any thread. */
uint64_t loop_now_ms(void);

/* Create a loop. Returns 0 and *ret_loop, or -errno (epoll/eventfd failure). */
int loop_new(struct loop **ret_loop) _warn_unused_result_;
/* Free the loop and every handle still registered. Calls posted but not yet
 * run are discarded without being called (their ud is the poster's to free).
 * Must not be called from inside a callback or while another thread may still post. */
void loop_free(struct loop *loop);
/* Dispatch events until loop_exit(); returns the code given to loop_exit(),
 * or a negative errno if epoll_wait fails. */
int loop_run(struct loop *loop);
/* Make loop_run() return code after the current iteration. Loop thread only
 * (from another thread, loop_post() a function that calls it). */
void loop_exit(struct loop *loop, int code);

/* Watch fd (not owned; the caller closes it after removing the watch) for
 * events (EPOLLIN|EPOLLOUT…, level-triggered). *ret_io optional. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_io_fn cb, void *ud,
                struct loop_io **ret_io) _warn_unused_result_;
int loop_io_set_events(struct loop_io *io, uint32_t events);
/* Stop watching and free the handle; NULL is a no-op. */
void loop_io_remove(struct loop_io *io);

/* A timer firing ms from now (then every ms if repeat). Never fails. */
struct loop_timer *loop_add_timer(struct loop *loop, uint64_t ms, bool repeat, loop_timer_fn cb, void *ud);
/* Move the deadline to ms from now (and the period, if repeating). Works from
 * inside the timer's own callback and re-arms a fired one-shot timer. */
void loop_timer_reschedule(struct loop_timer *t, uint64_t ms);
/* Cancel and free; NULL is a no-op. A one-shot timer is freed by the loop after
 * its callback returns unless the callback rescheduled it: do not cancel it after that. */
void loop_timer_cancel(struct loop_timer *t);

/* Run cb before every sleep in epoll_wait (batched flushes). */
struct loop_prepare *loop_add_prepare(struct loop *loop, loop_prepare_fn cb, void *ud);
void loop_prepare_remove(struct loop_prepare *p);

/* Deliver signo through a signalfd: blocks signo in the calling thread's mask,
 * so call it before creating threads (they inherit the mask). One handler per
 * signal (-EEXIST otherwise). After removal the signal stays blocked and is dropped. */
int loop_add_signal(struct loop *loop, int signo, loop_signal_fn cb, void *ud,
                    struct loop_signal **ret_sig) _warn_unused_result_;
void loop_signal_remove(struct loop_signal *s);

/* Call fn(ud) on the loop thread, in posting order per thread. Any thread.
 * Wakes the loop through an eventfd. Never fails. */
void loop_post(struct loop *loop, loop_post_fn fn, void *ud);

/* Watch our child pid through a pidfd; when it exits it is reaped (waitid) and
 * cb runs once; the handle is then freed by the loop. -ENOSYS without pidfd. */
int loop_add_child(struct loop *loop, pid_t pid, loop_child_fn cb, void *ud,
                   struct loop_child **ret_child) _warn_unused_result_;
/* Stop watching (the child is not reaped: the caller now must). */
void loop_child_remove(struct loop_child *c);
