/* fixed_pick: a misbehaving strategy for fault tests. Its pick always returns
 * the config value `answer` (default 0), whatever the workers: an out-of-range
 * index, -1 (hold), or a worker that is absent, draining, full or lacks the
 * handler. `observe` counts events; the count is not visible, it only proves
 * the hook is callable. The host must treat an ineligible answer as a fault.
 *
 * Build it with -DFIXED_PICK_DEFAULT=N and -DFIXED_PICK_VERSION='"x.y.z"' to
 * make two versions of one file (tests load both from the same path). */
#include "switchyard.h"

#ifndef FIXED_PICK_DEFAULT
#define FIXED_PICK_DEFAULT 0
#endif
#ifndef FIXED_PICK_VERSION
#define FIXED_PICK_VERSION "1.0.0"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixed_state {
    int32_t answer;
    uint64_t events;
} fixed_state_t;

static void *fixed_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                          size_t error_size) {
    int32_t answer = FIXED_PICK_DEFAULT;
    for (size_t i = 0; i < config_count; i++) {
        if (strcmp(keys[i], "answer") != 0) {
            snprintf(error, error_size, "fixed_pick: unknown config key `%s` (it takes `answer`)", keys[i]);
            return NULL;
        }
        answer = (int32_t)strtol(values[i], NULL, 10);
    }
    fixed_state_t *state = calloc(1, sizeof *state);
    if (state == NULL) {
        snprintf(error, error_size, "fixed_pick: out of memory");
        return NULL;
    }
    state->answer = answer;
    return state;
}

static void fixed_destroy(void *state) { free(state); }

static int32_t fixed_pick(void *opaque, const swy_task_meta_t *task, const swy_workers_t *workers) {
    (void)task; (void)workers;
    return ((fixed_state_t *)opaque)->answer;
}

static void fixed_observe(void *opaque, const swy_strategy_event_t *event) {
    (void)event;
    ((fixed_state_t *)opaque)->events++;
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("fixed_pick", fixed_create, fixed_destroy, fixed_pick, fixed_observe),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("fixed_pick", FIXED_PICK_VERSION, strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
