/* crash_pick: a strategy whose pick dereferences NULL (SIGSEGV). Loading it
 * into a host directly would take the host down on the first task; the host
 * must run it in a probe process first and refuse it, untouched. */
#include "switchyard.h"

#include <stdlib.h>

static void *crash_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                          size_t error_size) {
    (void)config_count; (void)keys; (void)values; (void)error; (void)error_size;
    return calloc(1, 1);
}

static void crash_destroy(void *state) { free(state); }

static int32_t crash_pick(void *state, const swy_task_meta_t *task, const swy_workers_t *workers) {
    (void)state; (void)workers;
    volatile int32_t *nowhere = (volatile int32_t *)(uintptr_t)(task->payload_size & 0);
    return *nowhere;
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("crash_pick", crash_create, crash_destroy, crash_pick, NULL),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("crash_pick", "1.0.0", strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
