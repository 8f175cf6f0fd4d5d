/* crash: dereferences NULL, killing its worker process with SIGSEGV.
 * It exists to prove crash isolation: the host replaces the worker, retries
 * the task once, then fails it with WORKER_CRASHED; nothing else is lost. */
#include "switchyard.h"

static swy_status_t crash_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                  void *handler_data, void *worker_state) {
    (void)ctx;
    (void)host;
    (void)task;
    (void)handler_data;
    (void)worker_state;
    volatile int *nothing = (volatile int *)0;
    *nothing = 42;
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("crash", NULL, crash_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("crash", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
