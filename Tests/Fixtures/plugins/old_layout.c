/* old_layout: a handler plugin whose descriptor is the first ABI 1 layout
 * (56 bytes on LP64, before self_test was appended), as a plugin built with
 * an older switchyard.h declares it. The host must load it and treat the
 * fields it lacks as absent (sdk/ABI.md section 11). Handler `old_layout`
 * replies "old". */
#include "switchyard.h"

#include <stddef.h>

static swy_status_t old_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    return host->result_append(ctx, "old", 3) == 0 ? SWY_OK : SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("old_layout", NULL, old_message, NULL, NULL)};

/* The bytes an old plugin has: the first 56, then something that is not a
 * self_test (a reader that ignores struct_size would call it). */
static const struct {
    swy_plugin_t plugin;
} descriptor = {{SWY_ABI_VERSION, (uint32_t)offsetof(swy_plugin_t, self_test), "old_layout", "1.0.0", 1u,
                 sizeof(swy_handler_t), handlers, 0u, 0u, NULL, (int (*)(swy_ctx_t *, const swy_host_api_t *))1}};

const swy_plugin_t *swy_plugin_entry(void) { return &descriptor.plugin; }
