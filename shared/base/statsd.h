/* statsd.h — a statsd client over UDP, configured as Nodepool's
 * (STATSD_HOST / STATSD_PORT; protocol.md §3.3), plus the builder's
 * Nodepool-named metrics.
 *
 * Lines are "name:value|type" (python-statsd's format: timers in
 * milliseconds with six decimals); ':', '|', '@', CR and LF in a name
 * (prefix included) are sent as '_' so a name cannot break the line syntax. Calls append to a pipeline buffer that
 * is sent as one datagram when the next line would not fit in 512 bytes
 * (python-statsd's default maxudpsize) and by statsd_flush(). Sending never
 * blocks and never fails the caller: a lost datagram is what statsd
 * accepts. Any thread may use a struct statsd (a mutex guards it); only
 * statsd_free() must not race with the other calls. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define STATSD_DEFAULT_PORT "8125"
#define STATSD_MAX_DATAGRAM 512

struct statsd;

/* A client for HOST:PORT (numeric or resolvable; PORT NULL = 8125). PREFIX
 * (NULL or "" for none) is prepended with a '.' to every name. 0 and *ret,
 * or -errno (resolution or socket failure). */
int statsd_new(const char *host, const char *port, const char *prefix, struct statsd **ret);
/* From the environment like Nodepool's stats.get_client(): enabled when
 * STATSD_HOST or STATSD_PORT is set (host defaults to localhost, port to
 * 8125); STATSD_PREFIX, which python-statsd honours, is honoured too.
 * 0 with *ret = NULL when neither is set; -errno when set but unusable. */
int statsd_new_from_env(struct statsd **ret);
/* Flush and free. NULL ok. */
void statsd_free(struct statsd *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct statsd *, statsd_free);

/* Each is a no-op when S is NULL, so callers need not check "enabled". */
void statsd_gauge(struct statsd *s, const char *name, long long value);
void statsd_incr(struct statsd *s, const char *name, long long count);
void statsd_timing(struct statsd *s, const char *name, double ms);
/* Send what is buffered. */
void statsd_flush(struct statsd *s);
/* Datagrams sent so far (tests, diagnostics). */
uint64_t statsd_sent(struct statsd *s);

/* Replace '.' and ':' with '_' as Nodepool does for requestor names (a '.'
 * is a graphite level, a ':' the statsd separator). Malloc'd. */
char *statsd_key_escape(const char *s);

/* ---- the builder's metrics, with Nodepool's names (NP:nodepool/builder.py) ---- */

/* A build of IMAGE ended with exit code RC (0 = success) after DURATION_MS:
 * gauges nodepool.dib_image_build.<image>.status.rc and .status.last_build
 * (Unix seconds), timer .status.duration. */
void statsd_builder_build(struct statsd *s, const char *image, int rc, double duration_ms);
/* poold's own (Nodepool has no such metric): the builds of IMAGE failed
 * FAILURES times in a row (0 after a success) and the builder waits until
 * NEXT_ATTEMPT (Unix seconds; 0 = no wait) before trying again: gauges
 * nodepool.dib_image_build.<image>.status.consecutive_failures and
 * .status.next_attempt. */
void statsd_builder_build_backoff(struct statsd *s, const char *image, long long failures, long long next_attempt);
/* A built file of IMAGE with extension EXT ("qcow2") uses BYTES on disk
 * (st_blocks * 512): gauge nodepool.dib_image_build.<image>.<ext>.size. */
void statsd_builder_image_size(struct statsd *s, const char *image, const char *ext, long long bytes);
/* An upload of IMAGE to PROVIDER ended after DURATION_MS: when OK, timer and
 * counter nodepool.image_update.<image>.<provider>; a failed upload sends
 * nothing, as in Nodepool (it shows in the upload state gauge). */
void statsd_builder_upload(struct statsd *s, const char *image, const char *provider, bool ok, double duration_ms);
/* Manual build requests outstanding (images with a request-build znode), as
 * Nodepool's builder cleanup worker sends them: gauge
 * nodepool.image_build_requests = N_REQUESTED, and
 * nodepool.image.<image>.image_build_requests 1 for each of the N_IMAGES
 * IMAGES whose REQUESTED[i] is set, else 0. */
void statsd_builder_build_requests(struct statsd *s, const char *const *images, const bool *requested,
                                   size_t n_images);
/* poold's own (Nodepool has no boot check): the check of an upload ended,
 * counter poold.builder.verify.<image>.<provider>.{passed,failed} and timer
 * poold.builder.verify.<image>.<provider> (its duration). */
void statsd_builder_verify(struct statsd *s, const char *image, const char *provider, bool ok, double duration_ms);
/* Gauge nodepool.builder.<host>.image.<image>.build.state (0 idle, 1 building, 3 paused). */
void statsd_builder_build_state(struct statsd *s, const char *host, const char *image, int state);
/* Gauge nodepool.builder.<host>.image.<image>.provider.<p>.upload.state (0 idle, 2 uploading, 3 paused). */
void statsd_builder_upload_state(struct statsd *s, const char *host, const char *image, const char *provider,
                                 int state);
