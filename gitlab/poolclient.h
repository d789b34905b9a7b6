/* poolclient.h — the requestor's side of Nodepool's ZooKeeper protocol, done
 * as Zuul's scheduler and executor do it (protocol.md §1.4, §1.5, §1.8, §1.10):
 * submit a persistent-sequential node request, lock the node it was given
 * (kazoo Lock, allocated_to checked before and after), delete the request,
 * mark the node in-use, then used, then unlock.
 *
 * Synchronous: each call blocks for its round trips; owner thread of ZK. */
#pragma once

#include <jansson.h>

#include "model_node.h"
#include "nodepool_zk.h"
#include "zk.h"
#include "zk_lock.h"

struct settings;
struct job;

/* The request JSON Zuul would write for one node of J's label (priority,
 * requestor and tenant from S; requestor_data describes the GitLab job).
 * Malloc'd NUL-terminated; 0 or -errno. */
int pool_client_request_json(const struct settings *s, const struct job *j, char **ret, size_t *ret_len);
/* Create the request (persistent, sequential, parents made): 0 and *ret_id
 * ("200-0000000042", caller frees), or -errno. */
int pool_client_submit(struct zk *zk, const struct settings *s, const struct job *j, char **ret_id);
/* Delete request ID; one already gone is 0. */
int pool_client_delete_request(struct zk *zk, const char *id);

/* Lock node NODE_ID of request REQ_ID as Zuul's executor does: the node must
 * be allocated to REQ_ID before and after taking /nodepool/nodes/<id>/lock
 * (waiting at most TIMEOUT_MS). 0 with *ret_lock held (caller releases and
 * frees) and *ret_node as read under the lock; -ESTALE when the node is not
 * (or no longer) allocated to REQ_ID, -ENOENT when it is gone, -ETIMEDOUT,
 * -EBADMSG for a malformed record, other -errno. */
int pool_client_lock_node(struct zk *zk, const char *node_id, const char *req_id, const char *identifier,
                          int timeout_ms, struct zk_lock **ret_lock, struct node **ret_node);

/* Zuul's useNodeSet: state in-use, "id" and USER_DATA (borrowed) written,
 * every other key kept; stored with a version check (re-read and retried when
 * someone wrote in between). The caller must hold the node's lock. */
int pool_client_use_node(struct zk *zk, const char *node_id, json_t *user_data);
/* Zuul's returnNodeSet: a node in-use (or still ready) becomes used, so the
 * launcher deletes (or, static, re-registers) it once unlocked. Nodes in any
 * other state (hold, deleting…) are left alone. 0 also when the node is gone.
 * *ret_state_before (may be NULL) gets the state found. Caller holds the lock. */
int pool_client_return_node(struct zk *zk, const char *node_id, enum node_state *ret_state_before);
