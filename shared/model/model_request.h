/* model_request.h — Nodepool's NodeRequest (/nodepool/requests/<PPP>-<seq10>,
 * protocol.md §1.4) and Zuul's HoldRequest (/zuul/hold-requests/<seq10>, §1.10).
 *
 * Decoded records keep the JSON they came from (raw) so a rewrite keeps every
 * key the requestor (Zuul) wrote. Any thread may use a record it owns. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum node_request_state {
        NODE_REQUEST_STATE_REQUESTED,
        NODE_REQUEST_STATE_PENDING,
        NODE_REQUEST_STATE_FULFILLED,
        NODE_REQUEST_STATE_FAILED,
        _NODE_REQUEST_STATE_MAX,
        _NODE_REQUEST_STATE_INVALID = -EINVAL,
};

const char *node_request_state_to_string(enum node_request_state s);   /* NULL when out of range */
enum node_request_state node_request_state_from_string(const char *s); /* _INVALID when unknown/NULL */

struct node_request {
        char *id;                 /* znode name "<PPP>-<seq10>"; not part of the JSON */
        enum node_request_state state;
        double state_time;        /* MODEL_TIME_NONE = null */
        char **declined_by;       /* never NULL once decoded/created */
        char **node_types;
        char **nodes;             /* same order as node_types once fulfilled */
        bool reuse;               /* default true */
        char *requestor;
        json_t *requestor_data;   /* opaque (owned reference, NULL = null) */
        char *provider;
        int64_t relative_priority; /* default 0 */
        char *event_id;
        double created_time;
        char *tenant_name;
        json_t *raw;              /* the object as read (owned), NULL for a new request */
};

/* A new request with Nodepool's constructor defaults (state requested,
 * reuse true, empty lists, nulls). id may be NULL. */
struct node_request *node_request_new(const char *id);
void node_request_free(struct node_request *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct node_request *, node_request_free);

/* Decode; same contract as node_from_json() (model_node.h). */
int node_request_from_json(const char *data, size_t len, const char *id, struct node_request **ret,
                           struct model_error *err);
/* Encode as NodeRequest.toDict() on top of the keys read; same contract as node_to_json(). */
int node_request_to_json(const struct node_request *r, char **ret, size_t *ret_len);

/* Set state and state_time = now. */
void node_request_set_state(struct node_request *r, enum node_request_state s);

/* Zuul's test for a classic request id: id[3] == '-'. */
bool node_request_id_is_classic(const char *id);
/* Split "200-0000012345" into "200" and "0000012345" (malloc'd, caller frees).
 * Requires 3 priority digits, '-', and a sequence of digits (an optional
 * leading '-' for an overflowed counter). -EINVAL otherwise. */
int node_request_id_parse(const char *id, char **ret_priority, char **ret_sequence);
/* The launcher's order (Nodepool NodeRequest.priority): priority string, then
 * relative_priority, then sequence string. Requests whose id does not parse
 * sort after all others, by id. strcmp-style result. */
int node_request_compare(const struct node_request *a, const struct node_request *b);
/* qsort() adapter over an array of struct node_request pointers. */
int node_request_compare_qsort(const void *a, const void *b);

/* ---- Zuul HoldRequest (read-only for us; nodes is carried unparsed) ---- */

struct hold_request_nodes {
        char *build;              /* build uuid, may be NULL */
        char **nodes;             /* node ids */
};

struct hold_request {
        char *id;                 /* znode name */
        double expired;           /* MODEL_TIME_NONE = null */
        char *tenant;
        char *project;
        char *job;
        char *ref_filter;
        int64_t max_count;        /* default 1 */
        int64_t current_count;    /* default 0 */
        char *reason;
        bool node_expiration_set;
        int64_t node_expiration;
        struct hold_request_nodes *nodes;
        size_t n_nodes;
        json_t *raw;
};

void hold_request_free(struct hold_request *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct hold_request *, hold_request_free);
/* Decode; same contract as node_from_json(). nodes entries must be objects
 * with "build" (string/null) and "nodes" (list of strings), or plain node id
 * strings (older Zuul; read as an entry with build NULL). */
int hold_request_from_json(const char *data, size_t len, const char *id, struct hold_request **ret,
                           struct model_error *err);
/* Encode the scalar fields on top of the keys read; "nodes" is written back
 * as read. Same contract as node_to_json(). */
int hold_request_to_json(const struct hold_request *h, char **ret, size_t *ret_len);
