/* zk_release.h — deletes of our own ephemeral nodes (lock contenders) that the
 * zk layer owns until ZooKeeper confirms them.
 *
 * A contender whose delete is lost holds its lock for as long as our session
 * lives — for a daemon, forever. So releases are not fire-and-forget: the
 * queue sends each delete at once when connected, and sends it again after
 * every reconnect while the answer is a lost connection, until ZooKeeper says
 * the node is gone (deleted, or no such node). An entry dies with the session
 * that created the node: once that session generation has ended, the server
 * removed the node itself. Every session (struct zk) has one queue,
 * zk_releases(); kazoo's Lock.release retries the same way.
 *
 * Owner thread only (the one that calls zk_dispatch()). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "zk.h"

struct zk_release_queue;

/* A queue for ZK (a state listener is added). 0; *ret owned by the caller. */
int zk_release_queue_new(struct zk *zk, struct zk_release_queue **ret);
/* Forget every pending release (no callback of ours runs afterwards). NULL ok. */
void zk_release_queue_free(struct zk_release_queue *q);

/* Delete PATH, an ephemeral node created in session generation GEN (copied). */
void zk_release_path(struct zk_release_queue *q, const char *path, uint64_t gen);
/* Delete the child of DIR whose name starts with PREFIX, if there is one: a
 * node whose create answer was lost (it may or may not exist), created in
 * generation GEN. Each answer of this session comes after the create's, so
 * the listing sees it if it was made. */
void zk_release_prefix(struct zk_release_queue *q, const char *dir, const char *prefix, uint64_t gen);
/* Releases not confirmed yet (in flight or waiting for a reconnect). */
size_t zk_release_pending(struct zk_release_queue *q);
