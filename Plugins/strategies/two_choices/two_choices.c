/* two_choices: draw two different eligible workers at random and take the one
 * with fewer tasks in flight (ties: lower service-time average, then the first
 * drawn). "The power of two choices": far less imbalance than one random draw,
 * at O(1) cost per pick when most workers are eligible.
 *
 * Config: `seed` (a whole number; default a fixed constant) seeds the
 * per-instance xorshift64* generator, so a run can be replayed. */
#include "switchyard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TWO_CHOICES_DEFAULT_SEED 0x9E3779B97F4A7C15ull
/* Random draws tried before counting the eligible workers instead. */
#define TWO_CHOICES_TRIES 8u

/* Per-instance state. OWNERSHIP: plugin; made by tc_create, freed by tc_destroy. */
typedef struct tc_state {
    uint64_t rng; /* xorshift64* state, never 0 */
} tc_state_t;

static uint64_t tc_next(tc_state_t *state) {
    uint64_t x = state->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    state->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A uniform number in [0, bound), bound > 0 (Lemire's multiply-shift; the bias
 * for bound <= 2^32 is below 2^-32, irrelevant here). */
static uint32_t tc_below(tc_state_t *state, uint32_t bound) {
    return (uint32_t)(((tc_next(state) >> 32) * (uint64_t)bound) >> 32);
}

static void *tc_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                       size_t error_size) {
    uint64_t seed = TWO_CHOICES_DEFAULT_SEED;
    for (size_t i = 0; i < config_count; i++) {
        if (strcmp(keys[i], "seed") != 0) {
            snprintf(error, error_size, "two_choices: unknown config key `%s` (it takes `seed`)", keys[i]);
            return NULL;
        }
        char *end = NULL;
        errno = 0;
        unsigned long long value = strtoull(values[i], &end, 10);
        if (values[i][0] == '\0' || values[i][0] == '-' || *end != '\0' || errno != 0) {
            snprintf(error, error_size, "two_choices: seed must be a whole number, not `%s`", values[i]);
            return NULL;
        }
        seed = value;
    }
    tc_state_t *state = malloc(sizeof *state);
    if (state == NULL) {
        snprintf(error, error_size, "two_choices: out of memory");
        return NULL;
    }
    state->rng = seed != 0 ? seed : TWO_CHOICES_DEFAULT_SEED; /* xorshift must not start at 0 */
    return state;
}

static void tc_destroy(void *state) { free(state); }

/* A uniformly random eligible worker other than `except` (pass count for none),
 * or -1. Rejection sampling first (unbiased, O(1) when most are eligible), then
 * an exact count-and-select pass. */
static int32_t tc_draw(tc_state_t *state, const swy_workers_t *workers, uint32_t handler, uint32_t except) {
    uint32_t count = workers->count;
    for (uint32_t t = 0; t < TWO_CHOICES_TRIES; t++) {
        uint32_t i = tc_below(state, count);
        if (i != except && swy_worker_can_take(swy_workers_at(workers, i), handler)) return (int32_t)i;
    }
    uint32_t eligible = 0;
    for (uint32_t i = 0; i < count; i++)
        if (i != except && swy_worker_can_take(swy_workers_at(workers, i), handler)) eligible++;
    if (eligible == 0) return -1;
    uint32_t target = tc_below(state, eligible);
    for (uint32_t i = 0; i < count; i++) {
        if (i != except && swy_worker_can_take(swy_workers_at(workers, i), handler)) {
            if (target == 0) return (int32_t)i;
            target--;
        }
    }
    return -1; /* not reached */
}

static int32_t tc_pick(void *opaque, const swy_task_meta_t *task, const swy_workers_t *workers) {
    tc_state_t *state = opaque;
    if (workers->count == 0) return SWY_PICK_HOLD;
    int32_t a = tc_draw(state, workers, task->handler, workers->count);
    if (a < 0) return SWY_PICK_HOLD;
    int32_t b = tc_draw(state, workers, task->handler, (uint32_t)a);
    if (b < 0) return a;
    const swy_worker_view_t *wa = swy_workers_at(workers, (uint32_t)a);
    const swy_worker_view_t *wb = swy_workers_at(workers, (uint32_t)b);
    if (wb->in_flight < wa->in_flight || (wb->in_flight == wa->in_flight && wb->service_ns_avg < wa->service_ns_avg))
        return b;
    return a;
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("two_choices", tc_create, tc_destroy, tc_pick, NULL),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("two_choices", "1.0.0", strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
