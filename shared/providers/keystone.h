/* keystone.h — a Keystone v3 session: token with catalog, endpoint lookup,
 * re-authentication before expiry and after a 401.
 *
 * Thread context: a struct keystone may be shared by any number of threads
 * (one mutex guards the token; authentication runs at most once at a time).
 * Tokens and secrets are never logged. Error messages may quote Keystone's
 * answer, which a misbehaving server can make echo our request: they go
 * through keystone_redact() before they leave the driver. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "clouds_yaml.h"
#include "macro.h"

/* Re-authenticate when the token expires within this many seconds. */
#define KEYSTONE_EXPIRY_MARGIN 300.0

struct keystone;

/* A session for CLOUD (deep-copied; nothing is contacted yet). TIMEOUT_MS
 * bounds each Keystone request (0 = 30 s). */
struct keystone *keystone_new(const struct clouds_cloud *cloud, long timeout_ms);
void keystone_free(struct keystone *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct keystone *, keystone_free);

/* A valid token (caller frees). Authenticates when there is none, when it
 * expires within KEYSTONE_EXPIRY_MARGIN, or when the current token is REJECTED
 * (the token a caller got a 401 with; NULL = none; a token another thread
 * already replaced is not re-authenticated again).
 * -EACCES when Keystone refuses the credentials (message says so, with the user
 * or credential id, never the secret); transport errors as http_request. */
int keystone_token(struct keystone *k, const char *rejected, char **ret_token, char **reterr_msg);

/* Id (caller frees) of the project a valid token is scoped to (authenticating
 * if needed). -ENOENT when it is scoped to none. */
int keystone_project_id(struct keystone *k, char **ret_id, char **reterr_msg);

/* The project id of the current token, or NULL when there is none yet or it
 * is scoped to no project; never contacts Keystone. Caller frees. */
char *keystone_project_id_cached(struct keystone *k);

/* URL (no trailing '/', caller frees) of service TYPE ("compute", "image",
 * "network", ...) for the cloud's region and interface, from the catalog of a
 * valid token (authenticating if needed). -ENOENT when the catalog has none. */
int keystone_endpoint(struct keystone *k, const char *type, char **ret_url, char **reterr_msg);

/* Replace *MSG (NULL-safe) by a copy fit to log or publish: this cloud's
 * password, application credential secret and tokens (the current and the
 * one before), and any value under a credential-named key, are masked
 * (redact.h). Whatever a server answered, its words pass here before they
 * leave the driver. Any thread. */
void keystone_redact(struct keystone *k, char **msg);

/* The cloud this session uses (owned by K). */
const struct clouds_cloud *keystone_cloud(const struct keystone *k);

/* ---- pure helpers, exposed for unit tests ---- */

/* POST body of /v3/auth/tokens for C (new reference). Project-scoped for
 * password auth when a project is named; application credentials carry their
 * own scope. */
json_t *keystone_auth_body(const struct clouds_cloud *c);

/* ".../v3/auth/tokens" for AUTH_URL, adding "/v3" when it names no version. */
char *keystone_tokens_url(const char *auth_url);

/* Pick from a v3 catalog (token.catalog array) the endpoint of service TYPE with
 * INTERFACE ("public", "internal", "admin") in REGION (NULL = any; matched
 * against region and region_id). *ret_url gets a copy without trailing '/'.
 * -ENOENT when none matches; -EINVAL when CATALOG is not a catalog. */
int keystone_catalog_select(json_t *catalog, const char *type, const char *region, const char *interface,
                            char **ret_url);

/* Parse Keystone's ISO 8601 UTC time ("2024-05-01T12:00:00.000000Z") to epoch
 * seconds. -EINVAL if malformed. */
int keystone_parse_time(const char *s, double *ret);
