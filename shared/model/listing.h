/* listing.h — the rows of Nodepool's listings (protocol.md §3.1, §3.2),
 * shared by poolctl (which reads ZooKeeper) and poold's web app (which
 * reads its caches), so both print the same columns and JSON keys.
 *
 * Each listing_*_table() makes an empty table with Nodepool's columns; each
 * listing_*_row() appends one row. NOW is model_now() taken once per
 * listing (ages are relative to it). Pure functions on tables the caller
 * owns; any thread. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table.h"

struct node;
struct node_request;
struct image_build;
struct image_upload;

/* Node list: id, provider, label, server_id, public_ipv4, ipv6, state, age,
 * locked, then the `--detail` columns pool … driver_data. */
enum {
        LISTING_NODE_ID,
        LISTING_NODE_PROVIDER,
        LISTING_NODE_LABEL,
        LISTING_NODE_SERVER_ID,
        LISTING_NODE_PUBLIC_IPV4,
        LISTING_NODE_IPV6,
        LISTING_NODE_STATE,
        LISTING_NODE_AGE,
        LISTING_NODE_LOCKED,
        LISTING_NODE_POOL, /* first --detail column */
        LISTING_NODE_HOSTNAME,
        LISTING_NODE_PRIVATE_IPV4,
        LISTING_NODE_AZ,
        LISTING_NODE_USERNAME,
        LISTING_NODE_PORT,
        LISTING_NODE_LAUNCHER,
        LISTING_NODE_ALLOCATED_TO,
        LISTING_NODE_HOLD_JOB,
        LISTING_NODE_COMMENT,
        LISTING_NODE_USER_DATA,
        LISTING_NODE_DRIVER_DATA,
        _LISTING_NODE_MAX,
};

/* A JSON value as one line of text for a cell: strings as is, others compact
 * JSON, NULL/null as "". Malloc'd. */
char *listing_json_text(json_t *v);
/* A cell holding an opaque JSON value: text as listing_json_text, JSON as is (a new reference). */
void listing_set_opaque(struct table *t, size_t col, json_t *v);
/* Python's str() of the value json.loads() gives for V, as Nodepool's tables
 * print it: a string as is, containers as repr ({'a': 1, 'b': [True, None]}).
 * null is "". Caller frees. */
char *listing_python_text(json_t *v);
/* A cell whose text is listing_python_text(V) and whose JSON is V. */
void listing_set_python(struct table *t, size_t col, json_t *v);
/* An age cell from an integer-second timestamp (Nodepool's int(state_time)):
 * text DD:HH:MM:SS, JSON the integer; NAN → empty and null. */
void listing_set_int_age(struct table *t, size_t col, double when, double now);

/* Node list; the --detail columns hidden from the text unless DETAIL. */
struct table *listing_node_table(bool detail);
void listing_node_row(struct table *t, const struct node *n, bool locked, double now);

/* request-list: id, relative_priority, state, requestor, node_types, nodes, declined_by, event_id. */
struct table *listing_request_table(void);
void listing_request_row(struct table *t, const struct node_request *r);

/* dib-image-list: id (<image>-<build id>), image, builder, formats, state ("paused" when PAUSED), age.
 * A failed build carrying poold's back-off says so in the state's text,
 * e.g. "failed (3 in a row; next in 4 min)"; so does the builder's boot check
 * of the build's uploads UPS (N_UPS, provider_name filled; per provider the
 * newest checked one counts): "ready (verify failed on p1, p2)", "ready
 * (verifying)", "ready (verified)". The JSON state stays Nodepool's. */
struct table *listing_dib_image_table(void);
void listing_dib_image_row(struct table *t, const char *image, const struct image_build *b, bool paused,
                           struct image_upload *const *ups, size_t n_ups, double now);

/* image-list: id (build), upload_id, provider, image, external_name, external_id, state, age.
 * U must have build_id, provider_name and image_name filled. */
struct table *listing_image_table(void);
void listing_image_row(struct table *t, const struct image_upload *u, double now);

/* image-status: image, paused, build_request ("pending"/"building"/""), build_request_age.
 * REQUEST_CTIME is the request-build znode's ctime in seconds (ignored unless BUILD_REQUESTED). */
struct table *listing_image_status_table(void);
void listing_image_status_row(struct table *t, const char *image, bool paused, bool build_requested, bool building,
                              double request_ctime, double now);

/* label-list (web app only): label. */
struct table *listing_label_table(void);
void listing_label_row(struct table *t, const char *label);
