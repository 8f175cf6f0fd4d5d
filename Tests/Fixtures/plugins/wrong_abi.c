/* wrong_abi: a well-formed descriptor that claims ABI version 99.
 * The host must refuse the file with a message naming it and both versions
 * ("built for plugin ABI 99; this host speaks ABI 1"), and register no handler `wrong_abi`. */
#include "switchyard.h"

static swy_status_t wrong_abi_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                      void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    host->set_error(ctx, "wrong_abi: this handler must never be called");
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("wrong_abi", NULL, wrong_abi_message, NULL, NULL)};

/* SWY_PLUGIN spelt out, with abi_version 99 instead of SWY_ABI_VERSION. */
static const swy_plugin_t plugin = {
    99u, sizeof(swy_plugin_t), "wrong_abi", "1.0.0", 1u, sizeof(swy_handler_t), handlers, 0u, 0u, NULL, NULL,
};

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
