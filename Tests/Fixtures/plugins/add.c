/* add_native: the fixture's `add` as a native plugin handler, for comparing the
 * cost of a call through a binding (Tests/Fixtures/ffi/ffi_fixture.c, bench/ffi)
 * with a hand-written handler doing the same work: read a JSON array of two
 * integers, reply with their sum in decimal. */
#include "switchyard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static swy_status_t add_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    char text[128];
    if (task->payload_len == 0 || task->payload_len >= sizeof text) {
        host->set_error(ctx, "add_native: the payload must be [A, B]");
        return SWY_ERR_PERMANENT;
    }
    memcpy(text, task->payload, task->payload_len);
    text[task->payload_len] = '\0';
    char *cursor = strchr(text, '[');
    if (cursor == NULL) {
        host->set_error(ctx, "add_native: the payload must be [A, B]");
        return SWY_ERR_PERMANENT;
    }
    errno = 0;
    int64_t a = strtoll(cursor + 1, &cursor, 10);
    cursor = strchr(cursor, ',');
    if (cursor == NULL || errno != 0) {
        host->set_error(ctx, "add_native: the payload must be [A, B]");
        return SWY_ERR_PERMANENT;
    }
    int64_t b = strtoll(cursor + 1, &cursor, 10);
    if (errno != 0) {
        host->set_error(ctx, "add_native: out of range");
        return SWY_ERR_PERMANENT;
    }
    char reply[32];
    int length = snprintf(reply, sizeof reply, "%" PRId64, a + b);
    return host->result_append(ctx, reply, (size_t)length) == 0 ? SWY_OK : SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("add_native", NULL, add_message, NULL, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("add_native", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
