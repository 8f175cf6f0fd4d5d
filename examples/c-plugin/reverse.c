/* reverse: an out-of-tree Switchyard handler plugin, built against sdk/include/switchyard.h only.
 *
 * Handler `reverse` replies with the payload bytes in reverse order. When the host was started
 * with `--config reverse.prefix=TEXT`, the reply starts with TEXT.
 *
 * It also shows the worker hooks: on_worker_start allocates a small per-worker state (the
 * prefix and a task counter) and logs once; on_worker_stop logs the count and frees the state.
 * Each worker process runs its own copy of that state; nothing is shared between workers.
 */
#include "switchyard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per-worker state. OWNERSHIP: plugin; allocated in reverse_start, freed in reverse_stop. */
typedef struct reverse_worker {
    const char *prefix; /* From config_get: host-owned, valid for the life of the worker process. */
    size_t prefix_len;
    uint64_t tasks;     /* Tasks this worker has reversed. */
} reverse_worker_t;

static int reverse_start(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data, void **worker_state) {
    (void)handler_data;
    reverse_worker_t *worker = calloc(1, sizeof *worker);
    if (worker == NULL) {
        host->set_error(ctx, "reverse: out of memory allocating the worker state");
        return -1;
    }
    worker->prefix = host->config_get(ctx, "reverse.prefix");
    worker->prefix_len = worker->prefix != NULL ? strlen(worker->prefix) : 0;

    char line[160];
    if (worker->prefix != NULL) {
        snprintf(line, sizeof line, "reverse: worker ready, replies start with \"%.100s\"", worker->prefix);
    } else {
        snprintf(line, sizeof line, "reverse: worker ready, no prefix (set --config reverse.prefix=TEXT)");
    }
    host->log(ctx, SWY_LOG_INFO, line);

    *worker_state = worker;
    return 0;
}

static swy_status_t reverse_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                    void *handler_data, void *worker_state) {
    (void)handler_data;
    reverse_worker_t *worker = worker_state;

    if (worker->prefix_len > 0 && host->result_append(ctx, worker->prefix, worker->prefix_len) != 0) {
        host->set_error(ctx, "reverse: result too large");
        return SWY_ERR_PERMANENT;
    }
    /* Reverse through a small buffer; result_append copies, so the buffer can be reused. */
    uint8_t chunk[4096];
    size_t remaining = task->payload_len;
    while (remaining > 0) {
        size_t n = remaining < sizeof chunk ? remaining : sizeof chunk;
        for (size_t i = 0; i < n; i++) chunk[i] = task->payload[remaining - 1 - i];
        if (host->result_append(ctx, chunk, n) != 0) {
            host->set_error(ctx, "reverse: result too large");
            return SWY_ERR_PERMANENT;
        }
        remaining -= n;
    }
    worker->tasks++;
    return SWY_OK;
}

static void reverse_stop(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data, void *worker_state) {
    (void)handler_data;
    reverse_worker_t *worker = worker_state;
    char line[96];
    snprintf(line, sizeof line, "reverse: worker stopping after %llu tasks", (unsigned long long)worker->tasks);
    host->log(ctx, SWY_LOG_INFO, line);
    free(worker);
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("reverse", reverse_start, reverse_message, reverse_stop, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("reverse", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
