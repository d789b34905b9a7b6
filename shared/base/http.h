/* http.h — a small blocking HTTP client on libcurl for cloud APIs.
 *
 * One call = one request on a fresh easy handle (no shared state, so any
 * thread may call it at any time). Response bodies are capped (struct dbuf):
 * a peer sending more gets -E2BIG, never unbounded memory. Only the method,
 * the URL and the status are ever logged (debug); the token, the headers and
 * the bodies never are, since they carry credentials. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

#define HTTP_DEFAULT_MAX_RESPONSE (4u * 1024 * 1024)

struct http_request {
        const char *method;             /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" */
        const char *url;
        const char *token;              /* sent as X-Auth-Token; NULL = none */
        const char *const *headers;     /* extra "Name: value" lines, NULL-terminated; may be NULL */
        const char *body;               /* request body (may be NULL) ... */
        size_t body_len;
        const char *content_type;       /* for body/upload_path; NULL = application/json */
        const char *upload_path;        /* ... or stream this file as the body (PUT) */
        long timeout_ms;                /* whole request; 0 = 60 s */
        long connect_timeout_ms;        /* 0 = 10 s */
        size_t max_response;            /* cap on the response body; 0 = HTTP_DEFAULT_MAX_RESPONSE */
        const char *cacert;             /* CA bundle file; NULL = the system's */
        bool insecure;                  /* do not verify the peer (clouds.yaml verify: false) */
        const char *capture_header;     /* keep this response header's value (e.g. X-Subject-Token) */
};

struct http_response {
        long status;                    /* HTTP status code */
        char *body;                     /* NUL-terminated (never NULL after success) */
        size_t body_len;
        char *header;                   /* value of capture_header, or NULL */
};

/* Perform REQ. Returns 0 and fills *ret (caller calls http_response_done) when an
 * HTTP response arrived, whatever its status. Transport failures return
 * -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH (resolution), -EPROTO (TLS),
 * -E2BIG (body above the cap), -ENOENT (upload_path missing) or -EIO, and put a
 * message ("METHOD URL: reason", no secrets) in *reterr_msg (may be NULL).
 * Any thread. */
int http_request(const struct http_request *req, struct http_response *ret, char **reterr_msg);

/* Free the response's strings (NULL-safe fields; the struct is not freed). */
void http_response_done(struct http_response *r);

/* True for a status that is worth retrying (5xx) — 4xx never is. */
bool http_status_retryable(long status);
