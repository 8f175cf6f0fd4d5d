/*
 * switchyard.h - the Switchyard plugin ABI, version 1.
 *
 * A plugin is a shared object that exports one C symbol, `swy_plugin_entry`,
 * returning a pointer to a constant `swy_plugin_t` descriptor. A handler
 * plugin declares task handlers: worker processes dlopen the file, check the
 * descriptor, and call its handlers. A strategy plugin declares dispatch
 * strategies instead (swy_strategy_t): the host process itself dlopens it and
 * calls a strategy to choose the worker for each task.
 *
 * Three name families:
 *   swy_*_t                types shared by host and plugin;
 *   on_* members           hooks the PLUGIN implements (in swy_handler_t),
 *                          plus the entry symbol swy_plugin_entry;
 *   swy_host_api_t members callbacks the HOST implements, handed to every hook.
 *
 * Versioning rules (see sdk/ABI.md):
 *   - Every struct that may grow starts with `struct_size` (and the plugin
 *     descriptor with `abi_version`). New fields are only ever appended; a reader
 *     never touches a field that lies beyond the `struct_size` it was given.
 *   - The host API table only grows at the end. A shipped signature never
 *     changes: a changed behaviour gets a new member.
 *   - A plugin built for an ABI version the host does not speak is refused
 *     with a message naming the file and both versions.
 *
 * Threading: each worker process is single-threaded as far as the plugin is
 * concerned. All hooks of one worker are called from the same thread, one at
 * a time. Different workers are different processes and share nothing.
 * (Strategies run in the host: see "Dispatch strategies" below.)
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. */
#define SWY_ABI_VERSION 1u

/** The name of the symbol every plugin exports. */
#define SWY_PLUGIN_ENTRY_SYMBOL "swy_plugin_entry"

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

/** What a task handler returns. */
typedef enum swy_status {
    /** The task succeeded; the bytes appended with result_append are its result. */
    SWY_OK = 0,
    /** The task failed and retrying will not help (bad input, say). Not retried. */
    SWY_ERR_PERMANENT = 1,
    /** The task failed but may succeed later (a timeout talking to something).
     *  The host retries it while it has attempts left. */
    SWY_ERR_RETRY = 2
} swy_status_t;

/** Log levels for swy_host_api_t.log. */
typedef enum swy_log_level {
    SWY_LOG_DEBUG = 0,
    SWY_LOG_INFO = 1,
    SWY_LOG_WARNING = 2,
    SWY_LOG_ERROR = 3
} swy_log_level_t;

/** Opaque per-call context owned by the host. Pass it back to host callbacks.
 *  OWNERSHIP: host. Valid only for the duration of the hook it was passed to. */
typedef struct swy_ctx swy_ctx_t;

/** One task, as handed to on_message.
 *  OWNERSHIP: host. The struct and everything it points to are valid only
 *  until on_message returns; copy what must outlive the call. */
typedef struct swy_task {
    uint32_t struct_size;    /**< sizeof(swy_task_t) as the host knows it. */
    uint32_t attempt;        /**< 1 for the first attempt, 2 for the first retry... */
    uint64_t id;             /**< Task id, unique within the host. */
    const char *handler;     /**< NUL-terminated handler name. */
    const uint8_t *payload;  /**< Payload bytes (may be NULL when payload_len is 0). */
    size_t payload_len;      /**< Payload length in bytes. */
    int32_t priority;        /**< Higher runs first. */
    uint32_t reserved;       /**< Zero. Names the tail padding so a later field is visible in struct_size. */
} swy_task_t;

/** The callbacks the host gives to every hook.
 *  OWNERSHIP: host. The table is valid for the life of the worker process.
 *  Every function takes the swy_ctx_t* of the current hook. */
typedef struct swy_host_api {
    uint32_t abi_version;    /**< SWY_ABI_VERSION of the host. */
    uint32_t struct_size;    /**< sizeof(swy_host_api_t) as the host knows it. */

    /** Write one line to the host's log, tagged with worker and plugin.
     *  `message` is NUL-terminated and copied: no reference is retained. */
    void (*log)(swy_ctx_t *ctx, swy_log_level_t level, const char *message);

    /** Append `len` bytes to the current task's result. The bytes are copied:
     *  no reference is retained. Returns 0, or -1 outside on_message or when
     *  the result would exceed the host's frame limit. */
    int (*result_append)(swy_ctx_t *ctx, const void *bytes, size_t len);

    /** Set the error message sent to the client when the hook returns an
     *  error status. NUL-terminated, copied; a later call replaces it. */
    void (*set_error)(swy_ctx_t *ctx, const char *message);

    /** Read a configuration value given to the host (`--config key=value`).
     *  Returns a NUL-terminated string owned by the host and valid for the
     *  life of the worker process, or NULL when the key is not set. */
    const char *(*config_get)(swy_ctx_t *ctx, const char *key);

    /** Report progress of the current task (`done` out of `total`, in any unit).
     *  A client waiting for the task receives it as a progress frame.
     *  Ignored outside on_message. */
    void (*progress)(swy_ctx_t *ctx, uint64_t done, uint64_t total);
} swy_host_api_t;

/* ------------------------------------------------------------------------ */
/* Hooks the plugin implements                                               */
/* ------------------------------------------------------------------------ */

/** One task handler.
 *  `handler_data` is the plugin's own pointer, passed back untouched to every
 *  hook of this handler. `worker_state` is whatever on_worker_start stored
 *  (NULL if it stored nothing or there is no on_worker_start). */
typedef struct swy_handler {
    uint32_t struct_size;    /**< sizeof(swy_handler_t) as the plugin knows it. */
    uint32_t reserved;       /**< Must be 0. */

    /** Handler name: 1-255 bytes of [A-Za-z0-9_.-]. Unique across loaded plugins. */
    const char *name;

    /** Passed back to every hook. OWNERSHIP: plugin. */
    void *handler_data;

    /** Optional (may be NULL). Called once per worker process before any task.
     *  May allocate per-process state and store it in *worker_state.
     *  Return 0 on success; non-zero makes the worker skip this handler (after
     *  logging the error set with set_error). */
    int (*on_worker_start)(swy_ctx_t *ctx, const swy_host_api_t *host,
                           void *handler_data, void **worker_state);

    /** Required. Execute one task. Append result bytes with result_append;
     *  on failure call set_error and return SWY_ERR_PERMANENT or SWY_ERR_RETRY. */
    swy_status_t (*on_message)(swy_ctx_t *ctx, const swy_host_api_t *host,
                               const swy_task_t *task,
                               void *handler_data, void *worker_state);

    /** Optional (may be NULL). Called once when the worker stops gracefully;
     *  frees what on_worker_start allocated. */
    void (*on_worker_stop)(swy_ctx_t *ctx, const swy_host_api_t *host,
                           void *handler_data, void *worker_state);
} swy_handler_t;

/** The plugin descriptor returned by swy_plugin_entry.
 *  OWNERSHIP: plugin. It and everything it points to must stay valid and
 *  unchanged for the life of the process (a static const is the usual way). */
typedef struct swy_plugin {
    uint32_t abi_version;    /**< SWY_ABI_VERSION the plugin was built for. */
    uint32_t struct_size;    /**< sizeof(swy_plugin_t) as the plugin knows it. */
    const char *name;        /**< Plugin name, NUL-terminated. */
    const char *version;     /**< Plugin version, free text (e.g. "1.2.0"). */

    uint32_t handler_count;  /**< Number of elements in `handlers`. */
    uint32_t handler_size;   /**< sizeof(swy_handler_t): the array's stride. */
    const swy_handler_t *handlers;

    /** Dispatch strategies (see "Dispatch strategies" below and sdk/ABI.md).
     *  A file declares handlers or strategies, never both: a handler plugin
     *  sets these to 0, 0, NULL (worker processes refuse a file that declares
     *  strategies); a strategy plugin sets handler_count to 0.
     *  `strategies` points to `strategy_count` swy_strategy_t elements, stepped
     *  through with the stride `strategy_size`. It is typed `const void *`
     *  only because the field predates swy_strategy_t (retyping it would break
     *  the versioning rules); it always means `const swy_strategy_t *`.
     *  OWNERSHIP: plugin; valid and unchanged for the life of the process. */
    uint32_t strategy_count;
    uint32_t strategy_size;
    const void *strategies;

    /** Optional; appended within ABI 1 (absent, so NULL, in older plugins):
     *  a self-test the host runs only in the probe worker of a reload, after
     *  every handler's on_worker_start, before the new version serves anything.
     *  Return 0 when it passes. Otherwise call host->set_error(ctx, why) and
     *  return non-zero: the reload is refused with that message and the old
     *  version keeps serving. result_append and progress are not available
     *  (there is no task). Set it with SWY_PLUGIN_WITH_SELF_TEST. */
    int (*self_test)(swy_ctx_t *ctx, const swy_host_api_t *host);
} swy_plugin_t;

/** The entry symbol every plugin exports. Called once per process after
 *  dlopen; must not fail and must return the same pointer every time. */
#if defined(__GNUC__) || defined(__clang__)
#define SWY_EXPORT __attribute__((visibility("default")))
#else
#define SWY_EXPORT
#endif
SWY_EXPORT const swy_plugin_t *swy_plugin_entry(void);

/* ------------------------------------------------------------------------ */
/* Dispatch strategies                                                       */
/* ------------------------------------------------------------------------ */
/*
 * A dispatch strategy chooses the worker for each task. Unlike handlers,
 * strategies run inside the HOST process, on its dispatch path, once per
 * task: `pick` must be cheap, must not block, and should not allocate.
 *
 * Threading: every call on one strategy instance (the `void *state` returned
 * by `create`), including create/destroy, comes from one host thread, one
 * call at a time; the instance needs no lock. Different instances (of the same
 * or another strategy) may be called concurrently from different threads, so
 * mutable globals need their own synchronisation (better: have none).
 *
 * Every struct the host hands a strategy is host-owned, read-only, and valid
 * only during the call it was passed to; copy what must outlive the call.
 */

/** A worker slot's state, in swy_worker_view_t.state. */
typedef enum swy_worker_state {
    /** No worker process in the slot, or one that has not said hello yet. */
    SWY_WORKER_ABSENT = 0,
    /** Taking tasks. */
    SWY_WORKER_READY = 1,
    /** Finishing what it holds; takes nothing new. */
    SWY_WORKER_DRAINING = 2
} swy_worker_state_t;

/** What the host knows about one worker slot, kept up to date in place by
 *  the host (no copy per pick).
 *  OWNERSHIP: host. Read-only; valid only during the call it was passed to. */
typedef struct swy_worker_view {
    uint32_t struct_size;      /**< sizeof(swy_worker_view_t) as the host knows it. */
    uint32_t id;               /**< Slot index: equals this view's index in swy_workers_t. Stable: a
                                    replacement worker takes the slot of the one it replaces. */
    uint32_t generation;       /**< Bumped each time a new worker process takes the slot. */
    uint32_t state;            /**< A swy_worker_state_t value. */
    uint32_t in_flight;        /**< Tasks sent to this worker and not yet answered. */
    uint32_t window;           /**< Most tasks this worker may have in flight at once. */
    uint64_t tasks_done;       /**< Tasks this slot has finished (any outcome), all generations. */
    uint64_t service_ns_avg;   /**< Moving average (weight 1/8 per task) of the time one task takes on
                                    this worker, in ns, measured between completions while the worker is
                                    busy; 0 until its first task finishes. Reset for a new process. */
    /** Bitmap of the host handler indexes this worker has: bit (h % 64) of
     *  word (h / 64) is set when the worker can run handler h. Handlers at or
     *  beyond handler_words * 64 are absent. OWNERSHIP: host; same lifetime
     *  as the view. May be NULL when handler_words is 0. */
    const uint64_t *handler_bits;
    uint32_t handler_words;    /**< Number of 64-bit words in handler_bits. */
    uint32_t reserved;         /**< Zero. Names the tail padding (see swy_task_t.reserved). */
} swy_worker_view_t;

/** Every worker slot, as handed to pick.
 *  OWNERSHIP: host. The struct and the views are read-only and valid only
 *  during the call; the host updates them between calls. */
typedef struct swy_workers {
    uint32_t struct_size;      /**< sizeof(swy_workers_t) as the host knows it. */
    uint32_t count;            /**< Number of slots (views). May be 0. */
    uint32_t view_size;        /**< Stride of `views` in bytes: step with swy_workers_at(), never with
                                    views[i], so views can grow in later ABI 1 hosts. */
    uint32_t reserved;         /**< Zero. */
    const swy_worker_view_t *views;
} swy_workers_t;

/** What a strategy knows about the task it places.
 *  OWNERSHIP: host. The struct and what it points to are valid only during
 *  the call. */
typedef struct swy_task_meta {
    uint32_t struct_size;      /**< sizeof(swy_task_meta_t) as the host knows it. */
    uint32_t handler;          /**< Host handler index, as in swy_worker_view_t.handler_bits. */
    uint64_t task_id;          /**< Task id, unique within the host. */
    const char *handler_name;  /**< NUL-terminated handler name. */
    const char *key;           /**< The task's routing key: key_len bytes of UTF-8, NOT NUL-terminated.
                                    NULL (and key_len 0) when the task has no key or an empty one. */
    size_t key_len;            /**< Length of key in bytes. */
    int32_t priority;          /**< Higher runs first. */
    uint32_t attempt;          /**< The attempt this dispatch starts: 1 for the first. */
    uint64_t payload_size;     /**< Payload length in bytes. */
} swy_task_meta_t;

/** Kinds of swy_strategy_event_t. */
typedef enum swy_strategy_event_kind {
    /** A task was sent to `worker` (whoever chose the worker: also after a fault or a HOLD). */
    SWY_EVENT_DISPATCHED = 1,
    /** `worker` answered task `task_id` (any outcome); `service_ns` is the time the task took
     *  (the same measure as swy_worker_view_t.service_ns_avg). */
    SWY_EVENT_FINISHED = 2,
    /** Slot `worker` has a READY worker (it may be a new slot: count grew). Also sent for
     *  every worker already there when an instance is installed, so a fresh instance
     *  hears of them all; a JOINED for a slot you know is ready is not an error. */
    SWY_EVENT_WORKER_JOINED = 3,
    /** The worker in slot `worker` is gone (exited, crashed or drained); the slot is ABSENT. */
    SWY_EVENT_WORKER_LEFT = 4,
    /** The worker in slot `worker` is DRAINING: it finishes what it holds and takes nothing new. */
    SWY_EVENT_WORKER_DRAINING = 5
} swy_strategy_event_kind_t;

/** Something that happened, for strategies that keep their own statistics.
 *  OWNERSHIP: host; valid only during observe. Fields that do not apply to
 *  a kind are 0 (handler is UINT32_MAX for worker events). */
typedef struct swy_strategy_event {
    uint32_t struct_size;      /**< sizeof(swy_strategy_event_t) as the host knows it. */
    uint32_t kind;             /**< A swy_strategy_event_kind_t value. Ignore kinds you do not know. */
    uint32_t worker;           /**< Slot index. */
    uint32_t handler;          /**< Host handler index (DISPATCHED, FINISHED). */
    uint64_t task_id;          /**< DISPATCHED, FINISHED. */
    uint64_t service_ns;       /**< FINISHED: the task's service time in ns. */
} swy_strategy_event_t;

/** pick's answer for "hold the task for now" (not a fault). */
#define SWY_PICK_HOLD (-1)

/** One dispatch strategy in a strategy plugin.
 *  OWNERSHIP: plugin; valid and unchanged for the life of the process. */
typedef struct swy_strategy {
    uint32_t struct_size;      /**< sizeof(swy_strategy_t) as the plugin knows it. */
    uint32_t reserved0;        /**< Must be 0. */

    /** Strategy name: 1-255 bytes of [A-Za-z0-9_.-], unique within the file. */
    const char *name;

    /** Required. Make one instance. `keys` and `values` hold `config_count`
     *  NUL-terminated strings (the operator's `--config k=v`), owned by the
     *  host and valid only during the call. Returns the instance state (any
     *  non-NULL pointer: a stateless strategy may return the address of a
     *  static), or NULL after writing a NUL-terminated message of at most
     *  `error_size` bytes (terminator included) to `error` (host-owned).
     *  Refuse unknown keys: a typo should not pass silently. */
    void *(*create)(size_t config_count, const char *const *keys, const char *const *values,
                    char *error, size_t error_size);

    /** Required. Free what create made. Called once per instance, last. */
    void (*destroy)(void *state);

    /** Required. Choose the worker for `task`: return an index i < workers->count
     *  whose view satisfies swy_worker_can_take(view, task->handler), or
     *  SWY_PICK_HOLD to keep the task queued until something changes. Any
     *  other answer is a fault: the host places the task by round-robin and
     *  counts the fault (see sdk/ABI.md). Must not block; should not allocate. */
    int32_t (*pick)(void *state, const swy_task_meta_t *task, const swy_workers_t *workers);

    /** Optional (may be NULL). Told about dispatches, finishes and workers
     *  coming and going. The views passed to pick already reflect the event. */
    void (*observe)(void *state, const swy_strategy_event_t *event);

    /** Reserved: must be NULL. */
    const void *reserved;
} swy_strategy_t;

/** The view of slot `index` (< workers->count), stepping by view_size. */
static inline const swy_worker_view_t *swy_workers_at(const swy_workers_t *workers, uint32_t index) {
    return (const swy_worker_view_t *)(const void *)((const char *)workers->views +
                                                     (size_t)index * workers->view_size);
}

/** Whether the worker has handler `handler` (whatever its state and load). */
static inline int swy_worker_has(const swy_worker_view_t *w, uint32_t handler) {
    return handler / 64u < w->handler_words && ((w->handler_bits[handler / 64u] >> (handler % 64u)) & 1u) != 0;
}

/** Whether pick may answer this worker for `handler`: ready, room in its
 *  window, and it has the handler. */
static inline int swy_worker_can_take(const swy_worker_view_t *w, uint32_t handler) {
    return w->state == SWY_WORKER_READY && w->in_flight < w->window && swy_worker_has(w, handler);
}

/* Convenience initialisers for C plugins. */
#define SWY_HANDLER(NAME, START, MESSAGE, STOP, DATA) \
    { sizeof(swy_handler_t), 0u, (NAME), (void *)(DATA), (START), (MESSAGE), (STOP) }

#define SWY_PLUGIN(NAME, VERSION, HANDLERS) \
    { SWY_ABI_VERSION, sizeof(swy_plugin_t), (NAME), (VERSION), \
      (uint32_t)(sizeof(HANDLERS) / sizeof((HANDLERS)[0])), sizeof(swy_handler_t), \
      (HANDLERS), 0u, 0u, NULL, NULL }

/** Like SWY_PLUGIN, with a self-test (see swy_plugin_t.self_test). */
#define SWY_PLUGIN_WITH_SELF_TEST(NAME, VERSION, HANDLERS, SELF_TEST) \
    { SWY_ABI_VERSION, sizeof(swy_plugin_t), (NAME), (VERSION), \
      (uint32_t)(sizeof(HANDLERS) / sizeof((HANDLERS)[0])), sizeof(swy_handler_t), \
      (HANDLERS), 0u, 0u, NULL, (SELF_TEST) }

/** One element of a strategy array. */
#define SWY_STRATEGY(NAME, CREATE, DESTROY, PICK, OBSERVE) \
    { sizeof(swy_strategy_t), 0u, (NAME), (CREATE), (DESTROY), (PICK), (OBSERVE), NULL }

/** The descriptor of a strategy plugin: no handlers, the static array STRATEGIES. */
#define SWY_STRATEGY_PLUGIN(NAME, VERSION, STRATEGIES) \
    { SWY_ABI_VERSION, sizeof(swy_plugin_t), (NAME), (VERSION), 0u, 0u, NULL, \
      (uint32_t)(sizeof(STRATEGIES) / sizeof((STRATEGIES)[0])), sizeof(swy_strategy_t), \
      (STRATEGIES), NULL }

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
