/* keyscan.h — Nodepool's nodescan (protocol.md §4.2 "Launch") on the event loop.
 *
 * One scan checks one host:port: TCP connect (non-blocking, each try at most
 * 10 s, retried every second on ECONNREFUSED/EHOSTUNREACH/ENETUNREACH/ETIMEDOUT
 * and on a connection closed before any byte, as a booting VM or a slirp port
 * forward gives), then for key-gathering connection types the SSH banner
 * ("SSH-2.0-…"/"SSH-1.99-…", bounded read), then the host keys through
 * `ssh-keyscan -t ed25519,ecdsa,rsa` run with cmd.h. Nothing blocks the loop:
 * names are resolved with getaddrinfo_a() and polled from a timer.
 *
 * `timeout_ms` bounds connect + banner. The key collection that follows a
 * banner gets max(remaining, 3 s), so a host that answered just before the
 * deadline is not lost to arithmetic; ssh-keyscan is always killed in time.
 *
 * Whether to scan at all (host-key-checking: false skips it) is the caller's
 * decision. Everything here runs on the loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "macro.h"

struct keyscan;

/* Bounds on what a remote party can make us hold. */
#define KEYSCAN_BANNER_MAX 8192          /* bytes read while looking for the banner */
#define KEYSCAN_OUTPUT_MAX (64 * 1024)   /* ssh-keyscan stdout/stderr kept */
#define KEYSCAN_CONNECT_TRY_MS 10000     /* one connect attempt */
#define KEYSCAN_RETRY_MS 1000            /* pause between attempts */

/* Called once on the loop thread when the scan ends (never from keyscan_start()).
 * error: 0, or -ETIMEDOUT (nothing answered in time), -EPROTO (something
 * answered that is not SSH, or no host key was found), another -errno from
 * connect/resolution/ssh-keyscan. keys: on success a NULL-terminated list of
 * "<keytype> <base64>" in the order of keyscan_parse(), empty for a port check;
 * the callback owns it (free with keyscan_strv_free()); NULL on failure.
 * msg: a short human reason, valid during the call only. The scan is freed
 * right after the callback returns: do not keyscan_cancel() it. */
typedef void (*keyscan_done_fn)(int error, char **keys, const char *msg, void *ud);

/* Start scanning host (name or IP literal, copied) at port (1..65535).
 * connection_type NULL or "ssh"/"network_cli" collects host keys, anything
 * else (winrm…) only checks that the port accepts. timeout_ms > 0.
 * Returns 0 and *ret_scan (optional; owned by the loop side until cb runs),
 * or -EINVAL on bad arguments; cb is then never called. Loop thread only. */
int keyscan_start(struct loop *loop, const char *host, int port, uint64_t timeout_ms,
                  const char *connection_type, keyscan_done_fn cb, void *ud,
                  struct keyscan **ret_scan) _warn_unused_result_;

/* Stop a scan whose callback has not run yet: closes the socket, kills and
 * reaps ssh-keyscan, frees everything; cb is not called. NULL is a no-op.
 * Loop thread only, also from inside other callbacks. */
void keyscan_cancel(struct keyscan *scan);

/* True when connection_type collects host keys (NULL, "ssh", "network_cli"). */
bool keyscan_gathers_keys(const char *connection_type);

/* Parse ssh-keyscan stdout: lines "<host> <keytype> <base64>" (host may be
 * "[addr]:port"); '#' comments, blank and malformed lines are skipped,
 * duplicates dropped. Returns the number of keys (≥ 0) and *ret_keys, a
 * NULL-terminated list of "<keytype> <base64>" sorted ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521, ssh-rsa, then others in input order.
 * Pure; any thread. */
int keyscan_parse(const char *text, char ***ret_keys);

/* Look at what a server sent so far (len bytes, need not be NUL-terminated):
 * 1 when a complete SSH-2.0 (or 1.99) identification line is there, 0 when
 * more input is needed, -EPROTO when it cannot be SSH (another "SSH-"
 * version, a NUL byte, a line over 255 bytes, more than 16 pre-banner lines,
 * or len > KEYSCAN_BANNER_MAX). RFC 4253 §4.2 allows other lines before the
 * identification; they are skipped. Pure; any thread. */
int keyscan_banner_check(const char *buf, size_t len);

/* True for the connect errors a booting host gives, which are retried. */
bool keyscan_error_is_retryable(int error);

void keyscan_strv_free(char **keys);   /* NULL is a no-op */

/* known_hosts lines for HOST:PORT from KEYS ("<type> <base64>", NULL-terminated,
 * NULL ok): "[host]:port key" unless PORT is 22. A key with a line break is
 * dropped (it would forge entries). Caller frees. */
char *keyscan_known_hosts_text(const char *host, int port, char *const *keys);
