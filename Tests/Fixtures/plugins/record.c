/* record: an echo that writes down every execution, for counting them across
 * hosts and worker processes. Each run of a task appends the line
 * "<task id> <attempt> <record.host>\n" to the file named by `--config record.file=PATH`
 * (one write(2) to a file opened O_APPEND: lines from many processes never
 * interleave), then replies with the payload. `--config record.sleep_us=N` makes
 * each task take N microseconds first. */
#include "switchyard.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int fd;
    useconds_t sleep_us;
    char host[64];
} record_state;

static int record_start(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data, void **worker_state) {
    (void)handler_data;
    const char *path = host->config_get(ctx, "record.file");
    if (path == NULL) {
        host->set_error(ctx, "record: set --config record.file=PATH");
        return -1;
    }
    record_state *state = calloc(1, sizeof *state);
    if (state == NULL) return -1;
    state->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (state->fd < 0) {
        host->set_error(ctx, "record: cannot open record.file");
        free(state);
        return -1;
    }
    const char *sleep_us = host->config_get(ctx, "record.sleep_us");
    state->sleep_us = sleep_us ? (useconds_t)strtoul(sleep_us, NULL, 10) : 0;
    const char *name = host->config_get(ctx, "record.host");
    snprintf(state->host, sizeof state->host, "%s", name ? name : "-");
    *worker_state = state;
    return 0;
}

static swy_status_t record_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                   void *handler_data, void *worker_state) {
    (void)handler_data;
    record_state *state = worker_state;
    if (state->sleep_us > 0) usleep(state->sleep_us);
    char line[128];
    int length = snprintf(line, sizeof line, "%" PRIu64 " %" PRIu32 " %s\n", task->id, task->attempt, state->host);
    if (write(state->fd, line, (size_t)length) != length) {
        host->set_error(ctx, "record: cannot write record.file");
        return SWY_ERR_PERMANENT;
    }
    return host->result_append(ctx, task->payload, task->payload_len) == 0 ? SWY_OK : SWY_ERR_PERMANENT;
}

static void record_stop(swy_ctx_t *ctx, const swy_host_api_t *host, void *handler_data, void *worker_state) {
    (void)ctx;
    (void)host;
    (void)handler_data;
    record_state *state = worker_state;
    close(state->fd);
    free(state);
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("record", record_start, record_message, record_stop, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("record", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
