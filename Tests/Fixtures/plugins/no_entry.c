/* no_entry: a shared object that loads fine but does not export swy_plugin_entry.
 * Its only export is a near miss, as a typo would produce. The host must refuse the
 * file with a message naming it and the missing symbol. */
#include "switchyard.h"

static swy_status_t no_entry_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                     void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    host->set_error(ctx, "no_entry: this handler must never be called");
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("no_entry", NULL, no_entry_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("no_entry", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry_point(void);
const swy_plugin_t *swy_plugin_entry_point(void) { return &plugin; }
