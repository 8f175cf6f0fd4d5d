/* key_affinity: consistent hashing of the task key, so tasks with one key go to
 * one worker (cache locality, per-key order) and adding or removing a worker
 * moves only about 1/N of the keys.
 *
 * The ring holds `vnodes` points per slot index (0 ..< workers->count), placed
 * by a hash of (slot, replica). A key belongs to the first point at or after
 * its hash, going round. Walking on from there, the key's owner is the first
 * slot that is READY and has the task's handler: an ABSENT or DRAINING slot, or
 * one without the handler, is passed over, which is exactly consistent hashing
 * over the workers that can run the task (the keys of a departed worker spread
 * over its ring successors; nobody else's move). When the owner is full
 * (in_flight == window) the answer is SWY_PICK_HOLD, not another worker: that
 * keeps the tasks of one key in order and on one worker.
 *
 * Tasks without a key go to the least loaded eligible worker (as least_loaded).
 *
 * The ring is rebuilt when the number of slots changes: on WORKER_JOINED for a
 * slot beyond the ring, or lazily in pick when workers->count differs (so a
 * host that sends no events still works). Only a rebuild allocates; a pick
 * between two rebuilds is a binary search plus a short walk.
 *
 * Config: `vnodes` (points per worker, 1-1000, default 100). */
#include "switchyard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KA_DEFAULT_VNODES 100u
#define KA_MAX_VNODES 1000u

typedef struct ka_point {
    uint64_t hash;
    uint32_t worker;
    uint32_t unused;
} ka_point_t;

/* Per-instance state. OWNERSHIP: plugin; made by ka_create, freed by ka_destroy. */
typedef struct ka_state {
    uint32_t vnodes;    /* points per slot */
    uint32_t members;   /* slots on the ring: 0 ..< members */
    size_t length;      /* points on the ring: members * vnodes */
    size_t capacity;    /* points allocated */
    ka_point_t *ring;   /* sorted by hash; OWNERSHIP: this state */
} ka_state_t;

/* splitmix64's finaliser: a bijection on 64 bits with good avalanche. */
static uint64_t ka_mix(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

static uint64_t ka_hash_key(const char *key, size_t length) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a, then mixed: FNV alone is weak in the high bits */
    for (size_t i = 0; i < length; i++) {
        h ^= (uint8_t)key[i];
        h *= 0x100000001B3ull;
    }
    return ka_mix(h);
}

static uint64_t ka_hash_point(uint32_t worker, uint32_t replica) {
    return ka_mix((((uint64_t)worker << 32) | replica) + 0x9E3779B97F4A7C15ull);
}

static int ka_compare(const void *a, const void *b) {
    const ka_point_t *x = a, *y = b;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    return x->worker < y->worker ? -1 : x->worker > y->worker; /* equal hashes: a fixed order */
}

/* Makes the ring for slots 0 ..< members. Returns 0, or -1 when out of memory
 * (the old ring is kept). */
static int ka_rebuild(ka_state_t *state, uint32_t members) {
    size_t length = (size_t)members * state->vnodes;
    if (length > state->capacity) {
        size_t capacity = state->capacity * 2 > length ? state->capacity * 2 : length;
        ka_point_t *ring = realloc(state->ring, capacity * sizeof *ring);
        if (ring == NULL) return -1;
        state->ring = ring;
        state->capacity = capacity;
    }
    size_t n = 0;
    for (uint32_t w = 0; w < members; w++) {
        for (uint32_t r = 0; r < state->vnodes; r++) {
            state->ring[n].hash = ka_hash_point(w, r);
            state->ring[n].worker = w;
            state->ring[n].unused = 0;
            n++;
        }
    }
    qsort(state->ring, length, sizeof *state->ring, ka_compare);
    state->members = members;
    state->length = length;
    return 0;
}

static void *ka_create(size_t config_count, const char *const *keys, const char *const *values, char *error,
                       size_t error_size) {
    uint32_t vnodes = KA_DEFAULT_VNODES;
    for (size_t i = 0; i < config_count; i++) {
        if (strcmp(keys[i], "vnodes") != 0) {
            snprintf(error, error_size, "key_affinity: unknown config key `%s` (it takes `vnodes`)", keys[i]);
            return NULL;
        }
        char *end = NULL;
        errno = 0;
        unsigned long value = strtoul(values[i], &end, 10);
        if (values[i][0] < '0' || values[i][0] > '9' || *end != '\0' || errno != 0 || value < 1 ||
            value > KA_MAX_VNODES) {
            snprintf(error, error_size, "key_affinity: vnodes must be a whole number from 1 to %u, not `%s`",
                     KA_MAX_VNODES, values[i]);
            return NULL;
        }
        vnodes = (uint32_t)value;
    }
    ka_state_t *state = calloc(1, sizeof *state);
    if (state == NULL) {
        snprintf(error, error_size, "key_affinity: out of memory");
        return NULL;
    }
    state->vnodes = vnodes;
    return state;
}

static void ka_destroy(void *opaque) {
    ka_state_t *state = opaque;
    free(state->ring);
    free(state);
}

/* Fewest in flight, then lower service average, then lower index. */
static int32_t ka_least_loaded(const swy_workers_t *workers, uint32_t handler) {
    int32_t best = SWY_PICK_HOLD;
    const swy_worker_view_t *chosen = NULL;
    for (uint32_t i = 0; i < workers->count; i++) {
        const swy_worker_view_t *w = swy_workers_at(workers, i);
        if (!swy_worker_can_take(w, handler)) continue;
        if (chosen == NULL || w->in_flight < chosen->in_flight ||
            (w->in_flight == chosen->in_flight && w->service_ns_avg < chosen->service_ns_avg)) {
            best = (int32_t)i;
            chosen = w;
        }
    }
    return best;
}

static int32_t ka_pick(void *opaque, const swy_task_meta_t *task, const swy_workers_t *workers) {
    ka_state_t *state = opaque;
    if (task->key == NULL || task->key_len == 0) return ka_least_loaded(workers, task->handler);
    if (workers->count != state->members && ka_rebuild(state, workers->count) != 0)
        return ka_least_loaded(workers, task->handler); /* out of memory: no affinity, but no stall */
    if (state->length == 0) return SWY_PICK_HOLD;

    /* The first point at or after the key's hash (lower bound), going round. */
    uint64_t hash = ka_hash_key(task->key, task->key_len);
    size_t low = 0, high = state->length;
    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (state->ring[mid].hash < hash)
            low = mid + 1;
        else
            high = mid;
    }
    size_t at = low == state->length ? 0 : low;
    for (size_t step = 0; step < state->length; step++) {
        uint32_t worker = state->ring[at].worker;
        if (++at == state->length) at = 0;
        const swy_worker_view_t *w = swy_workers_at(workers, worker);
        if (w->state != SWY_WORKER_READY || !swy_worker_has(w, task->handler)) continue;
        /* The owner: it takes the task now, or the task waits for it. */
        return w->in_flight < w->window ? (int32_t)worker : SWY_PICK_HOLD;
    }
    return SWY_PICK_HOLD; /* nobody ready has the handler */
}

static void ka_observe(void *opaque, const swy_strategy_event_t *event) {
    ka_state_t *state = opaque;
    /* A new slot: grow the ring now, so the next pick does not allocate. If this
     * fails, pick tries again. */
    if (event->kind == SWY_EVENT_WORKER_JOINED && event->worker >= state->members && event->worker < UINT32_MAX)
        (void)ka_rebuild(state, event->worker + 1);
}

static const swy_strategy_t strategies[] = {
    SWY_STRATEGY("key_affinity", ka_create, ka_destroy, ka_pick, ka_observe),
};
static const swy_plugin_t plugin = SWY_STRATEGY_PLUGIN("key_affinity", "1.0.0", strategies);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
