/* webapp_rows.c — long listings (nodes, requests) kept up to date row by row.
 *
 * DESIGN. A fresh /node-list of 10,000 nodes used to cost the loop 160-290 ms
 * (a table cell per field, a JSON object per row, one big dump). Here each
 * item of the launcher's map gets a pre-rendered row (shared/model/table.h
 * table_row: texts with their widths, JSON object already dumped), rebuilt
 * only when the item changed. Change detection needs no launcher hook: a
 * cached record owns its raw JSON object and never modifies it, and a new
 * version of the record is a new decode with a new object, so the object's
 * address names the version — as long as nobody can reuse that address,
 * which is why a slot holds a reference to the object it was built from.
 * Records without raw JSON (made locally, briefly, before the cache echoes
 * them) are rebuilt every time.
 *
 * The loop's share of a listing is a walk of the map (a hash lookup and a
 * pointer comparison per item) plus rebuilding changed rows, bounded by a
 * time budget per slice: a cold start (10,000 rows, ~30 µs each) takes many
 * slices, with the loop serving everything else between them. Sorting and
 * formatting happen on the web app's worker from an immutable snapshot
 * (references to the rows). Rows that are stale but exist are accepted once
 * a refresh has been running for STALE_OK_MS, so a listing always finishes
 * even when records change faster than rows are rebuilt. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "launcher.h"
#include "model.h"
#include "webapp_internal.h"

#define STALE_OK_MS 2000
/* A snapshot this young answers another URL too: listings are cached 1 s
 * anyway, and a burst of distinct URLs then costs one walk, not one each. */
#define SNAP_REUSE_MS 250

struct rows_slot {
        json_t *version;        /* referenced: its address names the record version the row shows */
        bool flag;
        struct table_row *row;
        double when;
        unsigned seen;
};

struct webapp_rows {
        struct launcher *l;
        const struct webapp_rows_ops *ops;
        struct smap slots;      /* item id → struct rows_slot* */
        struct table *scratch;  /* rows are built here, then detached */
        unsigned epoch;
        uint64_t refresh_started_ms;
        uint64_t rows_built;
        /* Ids whose rows a walk found stale past its budget: later slices
         * rebuild these without walking the whole map again (cold start). */
        char **todo;
        size_t n_todo, i_todo;
        struct webapp_snapshot *last;   /* the latest snapshot, reused for SNAP_REUSE_MS */
        uint64_t last_ms;
};

static void slot_free(void *v) {
        struct rows_slot *s = v;
        if (!s) return;
        json_decref(s->version);
        table_row_unref(s->row);
        free(s);
}

struct webapp_rows *webapp_rows_new(struct launcher *l, const struct webapp_rows_ops *ops) {
        struct webapp_rows *rc = xnew(struct webapp_rows, 1);
        rc->l = l;
        rc->ops = ops;
        rc->scratch = ops->new_table();
        return rc;
}

static void todo_clear(struct webapp_rows *rc) {
        for (size_t i = rc->i_todo; i < rc->n_todo; i++) free(rc->todo[i]);
        free(rc->todo);
        rc->todo = NULL;
        rc->n_todo = rc->i_todo = 0;
}

void webapp_rows_free(struct webapp_rows *rc) {
        if (!rc) return;
        todo_clear(rc);
        webapp_snapshot_unref(rc->last);
        smap_clear(&rc->slots, slot_free);
        table_free(rc->scratch);
        free(rc);
}

const struct table *webapp_rows_columns(const struct webapp_rows *rc) { return rc->scratch; }

uint64_t webapp_rows_built(const struct webapp_rows *rc) { return rc ? rc->rows_built : 0; }

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct walk {
        struct webapp_rows *rc;
        uint64_t deadline_ns;
        bool stale_ok;
        bool collect;                   /* note stale ids in rc->todo */
        size_t seen;                    /* slots marked in this walk */
        size_t pending;                 /* items whose row could not be brought up to date in this slice */
        struct webapp_snap_item *items; /* the snapshot being gathered */
        size_t n;
};

/* Bring slot S up to date with ITEM if it is stale and the budget allows: true when current. */
static bool slot_update(struct webapp_rows *rc, struct rows_slot *s, const void *item, uint64_t deadline_ns) {
        const struct webapp_rows_ops *ops = rc->ops;
        json_t *version = ops->version(item);
        bool flag = ops->flag ? ops->flag(item) : false;
        if (s->row && version && version == s->version && flag == s->flag) return true;
        if (now_ns() >= deadline_ns) return false;
        ops->add_row(rc->scratch, item);
        table_row_unref(s->row);
        s->row = table_row_take(rc->scratch);
        json_decref(s->version);
        s->version = version ? json_incref(version) : NULL;
        s->flag = flag;
        s->when = ops->when ? ops->when(item) : NAN;
        rc->rows_built++;
        return true;
}

static void visit(const char *id, void *item, void *ud) {
        struct walk *wk = ud;
        struct webapp_rows *rc = wk->rc;
        struct rows_slot *s = smap_get(&rc->slots, id);
        /* Past the budget a new item only goes on the to-do list: on a cold
         * start, creating 10,000 slots is itself too long for one slice. */
        if (!s && now_ns() < wk->deadline_ns) {
                s = xnew(struct rows_slot, 1);
                smap_put(&rc->slots, id, s);
        }
        if (s) {
                s->seen = rc->epoch;
                wk->seen++;
        }
        bool fresh = s && slot_update(rc, s, item, wk->deadline_ns);
        if (!fresh && !(wk->stale_ok && s && s->row)) {
                if (wk->collect) {
                        if (rc->n_todo % 1024 == 0) rc->todo = xrealloc(rc->todo, (rc->n_todo + 1024) * sizeof *rc->todo);
                        rc->todo[rc->n_todo++] = xstrdup(id);
                }
                wk->pending++;
                return;
        }
        if (wk->pending) return; /* this slice's snapshot is lost anyway */
        wk->items[wk->n++] = (struct webapp_snap_item){ .row = table_row_ref(s->row), .when = s->when };
}

static void sweep(const char *id, void *value, void *ud) {
        struct webapp_rows *rc = ud;
        struct rows_slot *s = value;
        if (s->seen != rc->epoch) slot_free(smap_remove(&rc->slots, id));
}

void webapp_snapshot_unref(struct webapp_snapshot *snap) {
        if (!snap || atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1) return;
        for (size_t i = 0; i < snap->n; i++) table_row_unref(snap->items[i].row);
        free(snap->items);
        free(snap);
}

struct webapp_snapshot *webapp_snapshot_ref(struct webapp_snapshot *snap) {
        if (snap) atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
        return snap;
}

int webapp_rows_refresh(struct webapp_rows *rc, uint64_t budget_ns, struct webapp_snapshot **ret_snap) {
        uint64_t now_ms = loop_now_ms();
        if (rc->last && now_ms - rc->last_ms < SNAP_REUSE_MS) {
                *ret_snap = webapp_snapshot_ref(rc->last);
                return 1;
        }
        if (rc->refresh_started_ms == 0) rc->refresh_started_ms = now_ms;
        struct smap *map = rc->ops->map(rc->l);
        uint64_t deadline_ns = now_ns() + budget_ns;
        /* Rows a walk left over first, without walking (items gone meanwhile are skipped). */
        while (rc->i_todo < rc->n_todo) {
                const char *id = rc->todo[rc->i_todo];
                const void *item = smap_get(map, id);
                struct rows_slot *s = smap_get(&rc->slots, id);
                if (item && !s) {
                        s = xnew(struct rows_slot, 1);
                        smap_put(&rc->slots, id, s);
                }
                if (item && !slot_update(rc, s, item, deadline_ns)) return 0;
                free(rc->todo[rc->i_todo++]);
        }
        bool had_todo = rc->n_todo > 0;
        todo_clear(rc);
        if (had_todo && now_ns() >= deadline_ns) return 0; /* the walk gets a slice of its own */
        struct walk wk = {
                .rc = rc,
                .deadline_ns = deadline_ns,
                .stale_ok = now_ms - rc->refresh_started_ms >= STALE_OK_MS,
                .collect = true,
                .items = xnew(struct webapp_snap_item, map->n + 1),
        };
        rc->epoch++;
        smap_foreach(map, visit, &wk);
        /* Slots not marked by this walk belong to items that went. */
        if (rc->slots.n > wk.seen) smap_foreach(&rc->slots, sweep, rc);
        if (wk.pending) {
                for (size_t i = 0; i < wk.n; i++) table_row_unref(wk.items[i].row);
                free(wk.items);
                return 0;
        }
        rc->refresh_started_ms = 0;
        struct webapp_snapshot *snap = xnew(struct webapp_snapshot, 1);
        atomic_init(&snap->refs, 1);
        snap->items = wk.items;
        snap->n = wk.n;
        snap->now = model_now();
        webapp_snapshot_unref(rc->last);
        rc->last = webapp_snapshot_ref(snap);
        rc->last_ms = now_ms;
        *ret_snap = snap;
        return 1;
}

static int cmp_item(const void *a, const void *b) {
        const struct webapp_snap_item *x = a, *y = b;
        return strcmp(table_row_text(x->row, 0), table_row_text(y->row, 0));
}

char *webapp_snapshot_format(const struct webapp_snapshot *snap, const struct table *cols, size_t dyn_col,
                             bool json) {
        /* A private sorted copy: several answers may share the snapshot. */
        _cleanup_free_ struct webapp_snap_item *items = xnew(struct webapp_snap_item, snap->n + 1);
        memcpy(items, snap->items, snap->n * sizeof *items);
        if (snap->n > 1) qsort(items, snap->n, sizeof *items, cmp_item);
        _cleanup_free_ struct table_row **rows = xnew(struct table_row *, snap->n + 1);
        for (size_t i = 0; i < snap->n; i++) rows[i] = items[i].row;
        if (json) return table_format_rows_json(rows, snap->n);
        if (dyn_col == SIZE_MAX) return table_format_rows_text(cols, rows, snap->n, SIZE_MAX, NULL);
        char **dyn = xnew(char *, snap->n + 1);
        for (size_t i = 0; i < snap->n; i++) dyn[i] = model_age_format(snap->now, items[i].when);
        char *text = table_format_rows_text(cols, rows, snap->n, dyn_col, (const char *const *)dyn);
        for (size_t i = 0; i < snap->n; i++) free(dyn[i]);
        free(dyn);
        return text;
}
