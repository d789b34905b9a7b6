/* redact.h — keep credentials out of the text we log or publish.
 *
 * A cloud's error answer is quoted in our messages, and those reach the log,
 * /pool-list and poolctl's output. A server that echoes the request (a
 * Keystone behind a debugging proxy, a validation error quoting its input)
 * would put the password there. redact_text() replaces with REDACT_MARK
 *   - every occurrence of each secret we know (as is, and as JSON escapes it),
 *   - the value after a key named like a credential, the way oslo's
 *     mask_password does: a quoted key containing "password", "secret" or
 *     "token" followed by ':' or '=' (JSON, Python reprs), or an unquoted
 *     word ending so followed directly by ':' or '=' (headers, forms:
 *     "X-Auth-Token: ...", "password=...").
 * An object or list value is kept: the keys inside it are looked at in turn.
 *
 * Pure functions; any thread. */
#pragma once

#define REDACT_MARK "***"

/* A redacted copy of TEXT (caller frees). SECRETS is a NULL-terminated list
 * (may itself be NULL); empty entries are skipped. */
char *redact_text(const char *text, const char *const *secrets);

/* Replace *MSG by its redacted copy (nothing when MSG or *MSG is NULL). */
void redact_msg(char **msg, const char *const *secrets);
