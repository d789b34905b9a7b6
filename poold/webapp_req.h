/* webapp_req.h — what a web app request asks for, from its path, query
 * values and Accept header. Pure functions on strings (no socket, no
 * launcher), any thread: fuzzed by tests/fuzz/fuzz_webapp_req.c. */
#pragma once

#include <errno.h>
#include <stdbool.h>

#define WEBAPP_MAX_QUERY_VALUE 256

enum webapp_kind {
        WEBAPP_HEALTH,
        WEBAPP_READY,
        WEBAPP_PAGE,
        WEBAPP_METRICS,
        WEBAPP_LIST,
        _WEBAPP_KIND_MAX,
        _WEBAPP_KIND_INVALID = -EINVAL,
};

struct webapp_req {
        enum webapp_kind kind;
        const char *list;       /* WEBAPP_LIST: "node-list", … (static) */
        bool json;              /* ".json" suffix or Accept prefers application/json */
        char *node_id;          /* NULL when absent or empty */
        char *fields;           /* NULL when absent or empty */
        char *key;              /* the answer cache's key: everything the answer depends on */
};

/* Parse URL (the decoded path, without the query), the node_id and fields
 * query values and the Accept header (each may be NULL). Returns 0 and fills
 * *ret (free with webapp_req_done), -E2BIG when a query value is longer than
 * WEBAPP_MAX_QUERY_VALUE (→ 400), -ENOENT for an unknown path (→ 404).
 * /health and /ready ignore the query. */
int webapp_req_parse(const char *url, const char *node_id, const char *fields, const char *accept,
                     struct webapp_req *ret);
/* Free what webapp_req_parse() allocated (a zeroed struct is fine). */
void webapp_req_done(struct webapp_req *r);

/* Nodepool's content negotiation (webob best_match over text/html,
 * text/plain, application/json): true only when application/json is
 * strictly preferred. NULL or "" → false. */
bool webapp_wants_json(const char *accept);
