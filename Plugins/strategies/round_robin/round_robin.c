/* round_robin: each task to the next eligible worker after the last one chosen.
 * Config: none. */
#include "switchyard.h"

#include <stdio.h>
#include <stdlib.h>

/* Per-instance state. OWNERSHIP: plugin; made by rr_create, freed by rr_destroy. */
typedef struct rr_state {
    uint32_t cursor; /* the slot to try first */
} rr_state_t;

static void *rr_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                       size_t error_size) {
    (void)values;
    if (config_count > 0) {
        snprintf(error, error_size, "round_robin: unknown config key `%s` (it takes none)", keys[0]);
        return NULL;
    }
    rr_state_t *state = calloc(1, sizeof *state);
    if (state == NULL) snprintf(error, error_size, "round_robin: out of memory");
    return state;
}

static void rr_destroy(void *state) { free(state); }

static int32_t rr_pick(void *opaque, const swy_task_meta_t *task, const swy_workers_t *workers) {
    rr_state_t *state = opaque;
    uint32_t count = workers->count;
    if (count == 0) return SWY_PICK_HOLD;
    uint32_t index = state->cursor < count ? state->cursor : 0;
    for (uint32_t tried = 0; tried < count; tried++) {
        if (swy_worker_can_take(swy_workers_at(workers, index), task->handler)) {
            state->cursor = index + 1;
            return (int32_t)index;
        }
        if (++index == count) index = 0;
    }
    return SWY_PICK_HOLD;
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("round_robin", rr_create, rr_destroy, rr_pick, NULL),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("round_robin", "1.0.0", strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
