/* wrong_abi: a well-formed strategy plugin that claims ABI version 99.
 * The host must refuse the file with a message naming it and both versions
 * ("built for plugin ABI 99; this host speaks ABI 1") and call none of its hooks. */
#include "switchyard.h"

#include <stdlib.h>

static void *wrong_abi_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                              size_t error_size) {
    (void)config_count; (void)keys; (void)values; (void)error; (void)error_size;
    abort(); /* must never be called */
}

static void wrong_abi_destroy(void *state) { (void)state; }

static int32_t wrong_abi_pick(void *state, const swy_task_meta_t *task, const swy_workers_t *workers) {
    (void)state; (void)task; (void)workers;
    abort();
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("wrong_abi", wrong_abi_create, wrong_abi_destroy, wrong_abi_pick, NULL),
};

/* SWY_STRATEGY_PLUGIN spelt out, with abi_version 99 instead of SWY_ABI_VERSION. */
static const swy_plugin_t plugin = {
    99u, sizeof(swy_plugin_t), "wrong_abi", "1.0.0", 0u, 0u, NULL, 1u, sizeof(swy_strategy_t), strategies, NULL,
};

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
