/* pool_driver.h — what the launcher core asks of a provider's driver kind.
 *
 * One table per driver kind, chosen once when the provider is opened (pool.c:
 * pool_driver_for()) and reached as pv->drv / p->prov->drv. The core
 * (request.c, delete.c, quota.c, cleanup.c, minready.c, owner.c, subsys.c)
 * never tests which driver a provider has: it asks the table. Three kinds:
 *   cloud (cloud.c)   generic over shared/providers' provider_ops (libvirt,
 *                     OpenStack, any later cloud): launches nodes through
 *                     launch.c, deletes their servers, obeys the cloud's quota,
 *                     lists its servers for leaks, launches under a lease.
 *   static (static.c) nodes registered from the configuration: launches
 *                     nothing, hands out registered nodes after a liveness
 *                     check, deleting a node frees its slot (registered again
 *                     by the sync), no cloud quota, no leaks, no lease.
 *   metastatic (metastatic.c) issue 15: nodes carved out of backing nodes of
 *                     another label (a node request for backing-label, the
 *                     node then locked past our session), max-parallel-jobs
 *                     slots each; launches wait for a slot; deleting a node
 *                     frees its slot; a backing node idle for grace-time is
 *                     returned by the sync (the lease holder's records, adopted
 *                     again after a restart); no cloud quota, no leaks, a lease.
 * Every hook runs on the loop thread unless it says otherwise. A NULL hook
 * means "nothing to do" as each entry says. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "model_node.h"
#include "model_request.h"

struct launcher_provider;
struct pool;
struct owners;
struct zk_lock;

struct pool_driver {
        const char *name;               /* "cloud", "static", "metastatic" (logs) */

        /* The provider PV is opened (pool.c; PV->cp set): set up the driver's
         * state in PV. 0, or a negative errno (logged): PV then gets no pools. */
        int (*open)(struct launcher_provider *pv);
        /* Free what open set up (stop, after the workq drained). Runs also when
         * open failed. */
        void (*close)(struct launcher_provider *pv);

        /* Does P (active: P->cpool set) offer LABEL? The pool component's
         * supported_labels say the same (pool.c). */
        bool (*has_label)(const struct pool *p, const char *label);
        /* Why P can never serve RQ (P's max-servers is not 0), or NULL. Returns
         * a static string or BUF. */
        const char *(*never_fits)(struct pool *p, const struct node_request *rq, char *buf, size_t sz);

        /* Launch node N (state building, locked by LOCK: both owned now) for
         * REQUEST_ID's SLOT, in the request's availability zone AZ (NULL: none
         * chosen; a driver without zones ignores it); the result comes through
         * request_slot_done(). NULL: the driver launches nothing, it only hands
         * out the nodes it registered (a request waits for a free one; no quota check). */
        void (*launch)(struct pool *p, struct node *n, struct zk_lock *lock, const char *request_id, size_t slot,
                       const char *az);
        /* Launch only while holding the provider's launch lease (owner.c)?
         * False: its pools may always accept (launch_ok). */
        bool launch_lease;
        /* Before ready node ID (locked by us, LOCK) goes to REQUEST_ID's SLOT:
         * 1 when a check started (it reports through request_slot_done(): 0
         * with LOCK, or -EAGAIN), 0 when none is needed (LOCK not taken).
         * NULL: never checked. */
        int (*check_ready)(struct pool *p, const char *id, struct zk_lock *lock, const char *request_id, size_t slot);

        /* Delete the instance EXTERNAL_ID of PV before its node's znode goes.
         * Runs on a WORKER thread; 0 (also when already gone) or a negative
         * errno with *ret_msg (caller frees). NULL: there is no instance, the
         * znode alone goes. */
        int (*delete_instance)(struct launcher_provider *pv, const char *external_id, char **ret_msg);

        bool provider_quota;            /* the cloud's quota applies (quota.c) */
        bool leak_cleanup;              /* its servers are listed for leaks (cleanup.c) */
        bool max_ready_age;             /* labels' max-ready-age ages its ready nodes out */

        /* Does P (max-servers not 0) offer LABEL for min-ready now? */
        bool (*minready_offers)(struct pool *p, const char *label);

        /* Every pass (caches synced, PV active), before the requests: O is the
         * live pools of every launcher. NULL: nothing periodic. */
        void (*sync)(struct launcher_provider *pv, const struct owners *o);
        /* The session ended: work in flight reports to no request (see
         * launch_forget_requests). NULL: nothing in flight of its own. */
        void (*forget_requests)(struct launcher_provider *pv);
};

extern const struct pool_driver pool_driver_cloud;   /* cloud.c */
extern const struct pool_driver pool_driver_static;  /* static.c */
extern const struct pool_driver pool_driver_metastatic; /* metastatic.c */

/* The table for config driver D (pool.c). */
const struct pool_driver *pool_driver_for(enum config_driver d);
