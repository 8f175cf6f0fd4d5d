/* least_loaded: the eligible worker with the fewest tasks in flight; ties go to
 * the lower moving average of service time, then to the lower slot index.
 * Config: none. */
#include "switchyard.h"

#include <stdio.h>

/* Stateless: create hands back the address of this constant. */
static const int least_loaded_instance = 0;

static void *ll_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                       size_t error_size) {
    (void)values;
    if (config_count > 0) {
        snprintf(error, error_size, "least_loaded: unknown config key `%s` (it takes none)", keys[0]);
        return NULL;
    }
    return (void *)&least_loaded_instance;
}

static void ll_destroy(void *state) { (void)state; }

static int32_t ll_pick(void *state, const swy_task_meta_t *task, const swy_workers_t *workers) {
    (void)state;
    int32_t best = SWY_PICK_HOLD;
    uint32_t best_in_flight = 0;
    uint64_t best_service = 0;
    for (uint32_t i = 0; i < workers->count; i++) {
        const swy_worker_view_t *w = swy_workers_at(workers, i);
        if (!swy_worker_can_take(w, task->handler)) continue;
        /* Strictly better only, so the lower index wins a full tie. */
        if (best < 0 || w->in_flight < best_in_flight ||
            (w->in_flight == best_in_flight && w->service_ns_avg < best_service)) {
            best = (int32_t)i;
            best_in_flight = w->in_flight;
            best_service = w->service_ns_avg;
        }
    }
    return best;
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("least_loaded", ll_create, ll_destroy, ll_pick, NULL),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("least_loaded", "1.0.0", strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
