/*
 * switchyard.h - the Switchyard plugin ABI, version 1.
 *
 * A plugin is a shared object that exports one C symbol, `swy_plugin_entry`,
 * returning a pointer to a constant `swy_plugin_t` descriptor. Worker
 * processes dlopen the file, check the descriptor, and call its handlers.
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

    /** Reserved for dispatch strategies (a later addition to ABI 1).
     *  Must be 0 and NULL for now. */
    uint32_t strategy_count;
    uint32_t strategy_size;
    const void *strategies;
} swy_plugin_t;

/** The entry symbol every plugin exports. Called once per process after
 *  dlopen; must not fail and must return the same pointer every time. */
#if defined(__GNUC__) || defined(__clang__)
#define SWY_EXPORT __attribute__((visibility("default")))
#else
#define SWY_EXPORT
#endif
SWY_EXPORT const swy_plugin_t *swy_plugin_entry(void);

/* Convenience initialisers for C plugins. */
#define SWY_HANDLER(NAME, START, MESSAGE, STOP, DATA) \
    { sizeof(swy_handler_t), 0u, (NAME), (void *)(DATA), (START), (MESSAGE), (STOP) }

#define SWY_PLUGIN(NAME, VERSION, HANDLERS) \
    { SWY_ABI_VERSION, sizeof(swy_plugin_t), (NAME), (VERSION), \
      (uint32_t)(sizeof(HANDLERS) / sizeof((HANDLERS)[0])), sizeof(swy_handler_t), \
      (HANDLERS), 0u, 0u, NULL }

#ifdef __cplusplus
}
#endif

#endif /* SWITCHYARD_H */
