/* webapp_conns.c — the web app's guard on connections that have not sent a
 * whole request yet (issue 13: a flood of partial requests kept /health
 * unanswered for minutes).
 *
 * DESIGN. MHD holds at most CONN_LIMIT connections; the rest wait in the
 * listen backlog, and a liveness probe waits behind them. Two things kept
 * dead or useless connections in the table:
 *   - MHD 0.9.75 in epoll mode takes a short read for "drained" and its
 *     sockets are edge-triggered: a connection whose request bytes and FIN
 *     were both queued before MHD read it (every connection accepted from a
 *     backlog of clients that already gave up) never sees its EOF, and sits
 *     until the 30 s idle timeout. Here every connection still waiting for
 *     its request is peeked (recv MSG_PEEK): EOF means the request can never
 *     complete.
 *   - MHD's timeout is an idle one: a client trickling a byte now and then
 *     keeps a slot forever. Here a request must be whole (line and headers)
 *     within HEADER_TIMEOUT_MS of the accept or of the previous answer
 *     (keep-alive), and within HEADER_FULL_TIMEOUT_MS while the table is
 *     full, so waiting clients get their turn within seconds.
 * Such a connection is shut down (shutdown(2), not close: the fd stays
 * MHD's); MHD sees the hang-up on its next run and frees the connection
 * through its normal path. Connections with a whole request (being answered,
 * suspended for a listing, sending) are never touched here.
 * The sweep is a pass over our list of open connections, at most every
 * SWEEP_MS (SWEEP_FULL_MS while the table is full). */
#include <errno.h>
#include <microhttpd.h>
#include <sys/socket.h>

#include "alloc.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "webapp_internal.h"

#define HEADER_TIMEOUT_MS (10 * 1000)
/* A client sends its request right after connecting: at accept it is
 * usually queued already. Only a full table (a flood) makes it this short. */
#define HEADER_FULL_TIMEOUT_MS 250
#define SWEEP_MS 500
#define SWEEP_FULL_MS 20

struct webapp_conn {
        struct MHD_Connection *conn;
        int fd;
        uint64_t since_ms;      /* accepted, or its last request answered: its next request is due from here */
        bool shut;              /* shut down by us; MHD frees it on its next run */
        struct webapp_conn *prev, *next;
};

void webapp_conn_opened(struct webapp *w, struct MHD_Connection *conn, int fd, void **socket_context) {
        struct webapp_conn *c = xnew(struct webapp_conn, 1);
        c->conn = conn;
        c->fd = fd;
        c->since_ms = loop_now_ms();
        c->next = w->conns;
        if (w->conns) w->conns->prev = c;
        w->conns = c;
        w->n_conns++;
        *socket_context = c;
}

void webapp_conn_closed(struct webapp *w, void **socket_context) {
        struct webapp_conn *c = *socket_context;
        if (!c) return;
        *socket_context = NULL;
        if (c->prev) c->prev->next = c->next;
        else w->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        w->n_conns--;
        free(c);
}

void webapp_conn_request_done(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct webapp_conn *c = ci ? ci->socket_context : NULL;
        if (c) c->since_ms = loop_now_ms();
}

/* No whole request yet: MHD has neither the headers nor an answer of its own (an error) queued. */
static bool waits_for_request(struct MHD_Connection *conn) {
        return !MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE) &&
               !MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
}

/* The client hung up (or reset) and every byte it sent has been read. */
static bool peer_gone(int fd) {
        char b;
        ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

uint64_t webapp_conns_sweep(struct webapp *w, unsigned limit) {
        if (!w->conns) return UINT64_MAX;
        bool full = w->n_conns >= limit;
        uint64_t every = full ? SWEEP_FULL_MS : SWEEP_MS, now = loop_now_ms();
        if (now - w->conns_swept_ms < every) return w->conns_swept_ms + every - now;
        w->conns_swept_ms = now;
        uint64_t timeout = full ? HEADER_FULL_TIMEOUT_MS : HEADER_TIMEOUT_MS;
        unsigned gone = 0, late = 0;
        for (struct webapp_conn *c = w->conns; c; c = c->next) {
                if (c->shut || !waits_for_request(c->conn)) continue;
                bool overdue = now - c->since_ms >= timeout;
                if (!overdue && !peer_gone(c->fd)) continue;
                (void)shutdown(c->fd, SHUT_RDWR);
                c->shut = true;
                if (overdue) late++;
                else gone++;
        }
        if (gone + late > 0)
                log_debug("web app: closing %u connections whose client left and %u without a whole request "
                          "after %.1f s (%u open)", gone, late, (double)timeout / 1000, w->n_conns);
        return every;
}
