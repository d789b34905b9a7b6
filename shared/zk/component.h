/* component.h — the component registry, protocol.md §1.7.
 *
 * Each daemon (launcher, builder) and each provider pool announces itself as
 * the ephemeral-sequential znode /nodepool/components/<kind>/<hostname><seq10>
 * holding its JSON, serialised exactly like Python's
 * json.dumps(d, sort_keys=True) so that Zuul and nodepool read it unchanged.
 * Base keys: hostname, kind, model_api (0), state, version; pools add id,
 * name, provider_name, supported_labels, priority, paused via component_set().
 * After a session expiry the component re-registers itself (new path) once
 * the new session is connected. Owner thread only. */
#pragma once

#include <jansson.h>

#include "macro.h"
#include "nodepool_zk.h"
#include "zk.h"

struct component;

/* A component of KIND ("launcher", "builder", "pool") on HOSTNAME running
 * VERSION, in state "initializing". Nothing is written yet. 0 or -EINVAL. */
int component_new(struct zk *zk, const char *kind, const char *hostname, const char *version,
                  struct component **ret);
/* Forget the component; the znode stays until unregister or session end. NULL ok. */
void component_free(struct component *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct component *, component_free);

/* "initializing", "running", "paused" or "stopped"; -EINVAL otherwise. Local until update. */
int component_set_state(struct component *c, const char *state);
/* Set KEY to VALUE (a new reference is taken; the caller keeps its own). Local until update. */
int component_set(struct component *c, const char *key, json_t *value);
/* Borrowed view of the content, or of one key (NULL if absent). */
const json_t *component_content(struct component *c);
json_t *component_get(struct component *c, const char *key);
/* Znode path once registered, else NULL. */
const char *component_path(struct component *c);

/* Create the znode (and its parents). -EALREADY if registered. */
int component_register(struct component *c);
/* Write the content with the znode version; on -ESTALE re-read and retry,
 * on a vanished node register again. Blocks for a round trip. */
int component_update(struct component *c);
/* Delete the znode; 0 also if it is already gone. */
int component_unregister(struct component *c);

/* Serialise as Python's json.dumps(obj, sort_keys=True): ", " and ": "
 * separators, ASCII with \uXXXX escapes. Caller frees. */
char *component_dumps(const json_t *obj);
/* Decoded content of every registered component of KIND as a new JSON array
 * (caller decrefs); malformed entries are skipped (debug log). */
int component_list(struct zk *zk, const char *kind, json_t **ret_list);
