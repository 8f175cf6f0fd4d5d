/* sleep: the payload is a decimal number of milliseconds (0-3600000).
 * Sleeps that long, reporting progress every 100 ms, and replies "slept N ms". */
#include "switchyard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int parse_ms(const swy_task_t *task, long *out) {
    char text[32];
    if (task->payload_len == 0 || task->payload_len >= sizeof text) return -1;
    memcpy(text, task->payload, task->payload_len);
    text[task->payload_len] = '\0';
    char *end = NULL;
    errno = 0;
    long ms = strtol(text, &end, 10);
    while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
    if (errno != 0 || end == text || *end != '\0' || ms < 0 || ms > 3600000) return -1;
    *out = ms;
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static swy_status_t sleep_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                  void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    long ms;
    if (parse_ms(task, &ms) != 0) {
        host->set_error(ctx, "sleep: payload must be a whole number of milliseconds from 0 to 3600000");
        return SWY_ERR_PERMANENT;
    }
    const long step = 100;
    for (long done = 0; done < ms;) {
        long chunk = ms - done < step ? ms - done : step;
        sleep_ms(chunk);
        done += chunk;
        if (done < ms) host->progress(ctx, (uint64_t)done, (uint64_t)ms);
    }
    char reply[48];
    int n = snprintf(reply, sizeof reply, "slept %ld ms", ms);
    host->result_append(ctx, reply, (size_t)n);
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("sleep", NULL, sleep_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("sleep", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
