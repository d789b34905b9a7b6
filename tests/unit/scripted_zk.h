/* scripted_zk.h — a scripted, in-memory ZooKeeper for the unit tests of the
 * ZooKeeper recipes (test_zk_lock.c, test_zk_update.c).
 *
 * scripted_zk.c defines the zk.h calls those recipes make (linked before
 * libpool.a, so zk.o is not pulled in): a tree of nodes with data and
 * versions, every asynchronous call queued and answered one at a time in
 * order as the server would (fake_step), blocking calls answered at once from
 * the same tree. A test can change the tree between two answers, drop the
 * connection (queued calls fail with -ECONNRESET, calls made while down fail
 * at once, as the C client does), restore it (CONNECTED), expire the session
 * (every node here is taken as ephemeral and goes) or lose one answer after
 * the server applied it. It only replaces the network: the integration tests
 * prove the same paths against a real ZooKeeper. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zk.h"

#define FMAX 64
#define FQUEUE 256
#define FAKE_ZK ((struct zk *)(uintptr_t)0x5a)

enum fkind { F_CREATE, F_CHILDREN, F_DELETE, F_GET, F_SET, F_STATE, F_MULTI };

/* One operation of an F_MULTI call (creates, deletes and sets). */
struct fmop {
        enum fkind kind;
        char path[160];
        char data[64];
        unsigned flags;
        int version;            /* F_SET's condition (-1: any) */
};

struct fnode {
        char path[160];
        char data[256];
        int32_t version;
};

struct fcall {
        enum fkind kind;
        char path[160];
        char data[256];
        int version;
        unsigned flags;
        zk_result_cb cb;
        void *ud;
        bool cancelled;
        int fail;               /* answered with this error without being applied */
        enum zk_state state;    /* F_STATE */
        struct fmop mops[4];    /* F_MULTI */
        size_t n_mops;
};


/* The tree, the queue and counters: tests read (and may change) them directly. */
extern struct fnode fnodes[FMAX];
extern struct fcall fq[FQUEUE];
extern size_t fq_head, fq_tail;
extern unsigned fseq, fsets, fsent;     /* sequence counter; sets applied; calls sent */
extern bool fconnected;
extern uint64_t fgen;
extern struct zk_release_queue *frq;    /* zk_releases()' queue, made on first use */

/* Empty tree and queue, connected, counters at zero. */
void fake_reset(void);
struct fnode *fnode_find(const char *path);
/* Create or replace the node PATH with DATA (version 0 when new). */
struct fnode *fnode_put(const char *path, const char *data);
/* Direct children of DIR (names into the tree; OUT has room for FMAX + 1). */
size_t fchildren(const char *dir, char **out);
/* Queue C as the client would send it. */
void fpush(struct fcall c);
/* Answer the oldest queued call; false when nothing is queued. LOSE_ANSWER:
 * apply it but answer -ECONNRESET (the server did it, the answer was lost). */
bool fake_step(void);
bool fake_step_ex(bool lose_answer);
/* Answer everything queued (and what the answers queue). */
void fake_drain(void);
/* The connection drops: every call not answered yet fails, then SUSPENDED. */
void fake_disconnect(void);
void fake_reconnect(void);
/* The session expires: its ephemerals (every node here) go, calls not answered
 * yet fail with -EKEYEXPIRED, then EXPIRED. */
void fake_expire(void);
/* How many children DIR has (lock contenders). */
size_t contenders_in(const char *dir);
/* cmocka teardown: free the release queue a test made. */
int fake_teardown(void **state);
