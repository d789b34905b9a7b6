/* dynprops.h — a label's dynamic-instance-properties, formatted from the node
 * request as Nodepool does with Python's str.format(request=...).
 *
 * Supported: literal text, "{{" and "}}", and fields {request.ATTR} with any
 * number of [KEY] indexes (requestor_data[zuul][tenant]; a KEY of digits
 * indexes a list). ATTR is one of Nodepool's safe attributes: id, labels,
 * requestor, requestor_data, relative_priority, event_id, created_time,
 * tenant_name. Values print as Python's str() would (None, ['a', 'b'],
 * {'k': 1}). Conversions (!r) and format specs (:x) are refused. Any thread. */
#pragma once

#include "model_request.h"

/* Format FMT for request RQ into *ret (caller frees). -EINVAL with a message
 * in *reterr_msg (caller frees; may be NULL) for a malformed field, an
 * unknown attribute or a missing key: Nodepool then leaves the property out. */
int dynprops_format(const char *fmt, const struct node_request *rq, char **ret, char **reterr_msg);
