/* fail: always fails permanently. The error message is the payload when one is
 * given ("fail: " followed by it), else "fail: this handler always fails". */
#include "switchyard.h"

#include <stdio.h>

static swy_status_t fail_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                 void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    char message[512];
    if (task->payload_len > 0) {
        int len = task->payload_len > 400 ? 400 : (int)task->payload_len;
        snprintf(message, sizeof message, "fail: %.*s", len, (const char *)task->payload);
    } else {
        snprintf(message, sizeof message, "fail: this handler always fails");
    }
    host->set_error(ctx, message);
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("fail", NULL, fail_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("fail", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
