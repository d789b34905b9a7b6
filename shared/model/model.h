/* model.h — pieces shared by the ZooKeeper record types (model_node.h,
 * model_request.h, model_image.h): decode errors, string vectors, time, ids.
 *
 * All functions are pure or use only their arguments; any thread may call
 * them on objects it owns. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* ZooKeeper refuses znodes above 1 MiB (jute.maxbuffer); larger input is
 * rejected before parsing and larger output before it reaches the wire. */
#define MODEL_JSON_MAX (1024 * 1024)
/* Real records nest 4 deep; opaque values (user_data, requestor_data…)
 * deeper than this are treated as hostile. */
#define MODEL_JSON_MAX_DEPTH 64

/* Why a decode failed, for a caller's "malformed record <path>: <msg>" log.
 * Always NUL-terminated after a failed *_from_json(); may be passed as NULL. */
struct model_error {
        char msg[192];
};

/* Format into e (no-op when e is NULL); always returns -abs(r) for "return model_error_set(...)". */
int model_error_set(struct model_error *e, int r, const char *fmt, ...) _printf_(3, 4);

/* NULL-terminated string vectors ("strv"). Decoded records never hold a NULL
 * strv: an empty list is a vector whose first element is NULL. */
size_t model_strv_length(char *const *l);
void model_strv_free(char **l);                       /* frees every string and l; NULL ok */
char **model_strv_new(void);                          /* empty vector */
char **model_strv_copy(char *const *l);               /* deep copy; NULL -> empty */
void model_strv_push(char ***l, const char *s);       /* appends a copy of s */
bool model_strv_contains(char *const *l, const char *s);
bool model_strv_equal(char *const *a, char *const *b); /* NULL == empty */

/* Replace *field with a copy of v (v may be NULL, meaning JSON null). */
void model_set_str(char **field, const char *v);

/* Timestamps are Python time.time() floats; NAN stands for JSON null/None. */
#define MODEL_TIME_NONE (__builtin_nan(""))
double model_now(void);   /* CLOCK_REALTIME as float seconds */

/* Nodepool CLI "age": DD:HH:MM:SS of now - then, with Python's floor-divmod
 * semantics (so clock skew gives e.g. "-1:23:59:55"). then == NAN gives "".
 * Returns a malloc'd string the caller frees. */
char *model_age_format(double now, double then);

/* uuid4().hex: 32 lowercase hex chars + NUL into ret (version/variant bits
 * set). Returns 0 or -errno if the kernel gave no randomness. */
int model_uuid4_hex(char ret[static 33]);
