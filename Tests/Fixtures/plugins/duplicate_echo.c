/* duplicate_echo: a valid plugin named "dup" whose one handler is called `echo`, clashing
 * with the shipped echo plugin. Whichever file loads second loses: its `echo` is skipped
 * with a log line naming both files. It replies "dup:" + payload so a test can tell which
 * `echo` won. */
#include "switchyard.h"

static swy_status_t dup_echo_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                     void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    if (host->result_append(ctx, "dup:", 4) != 0 ||
        (task->payload_len > 0 && host->result_append(ctx, task->payload, task->payload_len) != 0)) {
        host->set_error(ctx, "dup: result too large");
        return SWY_ERR_PERMANENT;
    }
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("echo", NULL, dup_echo_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("dup", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
