/* echo: the result is the payload, byte for byte. */
#include "switchyard.h"

static swy_status_t echo_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                 void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    if (task->payload_len > 0 && host->result_append(ctx, task->payload, task->payload_len) != 0) {
        host->set_error(ctx, "echo: result too large");
        return SWY_ERR_PERMANENT;
    }
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("echo", NULL, echo_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("echo", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
