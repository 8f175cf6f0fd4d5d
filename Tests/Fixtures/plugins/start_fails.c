/* start_fails: handler `start_fails`, whose on_worker_start sets the error
 * "cannot open the model file" and returns -1. Every worker must skip the handler and
 * log that message with the handler and file; the host keeps running its other handlers,
 * and a task for `start_fails` is refused rather than run. */
#include "switchyard.h"

static int start_fails_start(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data, void **worker_state) {
    (void)handler_data;
    (void)worker_state;
    host->set_error(ctx, "cannot open the model file");
    return -1;
}

static swy_status_t start_fails_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                        void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    host->set_error(ctx, "start_fails: on_message ran although on_worker_start failed");
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("start_fails", start_fails_start, start_fails_message, NULL, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("start_fails", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
