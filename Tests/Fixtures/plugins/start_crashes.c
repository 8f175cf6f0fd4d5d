/* start_crashes: handler `start_crashes`, whose on_worker_start dereferences NULL, killing
 * the worker process with SIGSEGV before it runs any task. The host must log the crash,
 * must not restart workers in a tight loop, and must not lose or hang tasks: a task for
 * `start_crashes` ends with WORKER_CRASHED (or is refused as an unavailable handler). */
#include "switchyard.h"

static int start_crashes_start(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data,
                               void **worker_state) {
    (void)ctx;
    (void)host;
    (void)handler_data;
    (void)worker_state;
    volatile int *nothing = (volatile int *)0;
    *nothing = 42;
    return 0;
}

static swy_status_t start_crashes_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                          void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    host->set_error(ctx, "start_crashes: on_message ran although on_worker_start crashed");
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("start_crashes", start_crashes_start, start_crashes_message, NULL, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("start_crashes", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
