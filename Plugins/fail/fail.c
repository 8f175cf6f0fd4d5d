/* fail: fails on purpose, to exercise error paths and retries.
 *
 * Payload:
 *   "retry"        fails with a retryable error every time (SWY_ERR_RETRY);
 *   "until N"      fails retryably while the attempt is below N, then succeeds
 *                  with "succeeded on attempt N";
 *   anything else  fails permanently; the message is "fail: " followed by the
 *                  payload, or "fail: this handler always fails" when empty. */
#include "switchyard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int payload_is(const swy_task_t *task, const char *text) {
    size_t n = strlen(text);
    return task->payload_len == n && memcmp(task->payload, text, n) == 0;
}

static swy_status_t fail_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                 void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    char message[512];
    if (payload_is(task, "retry")) {
        snprintf(message, sizeof message, "fail: retryable failure on attempt %u", task->attempt);
        host->set_error(ctx, message);
        return SWY_ERR_RETRY;
    }
    if (task->payload_len > 6 && task->payload_len < 32 && memcmp(task->payload, "until ", 6) == 0) {
        char number[32];
        memcpy(number, task->payload + 6, task->payload_len - 6);
        number[task->payload_len - 6] = '\0';
        unsigned long until = strtoul(number, NULL, 10);
        if (task->attempt < until) {
            snprintf(message, sizeof message, "fail: attempt %u of the %lu needed", task->attempt, until);
            host->set_error(ctx, message);
            return SWY_ERR_RETRY;
        }
        int n = snprintf(message, sizeof message, "succeeded on attempt %u", task->attempt);
        host->result_append(ctx, message, (size_t)n);
        return SWY_OK;
    }
    if (task->payload_len > 0) {
        int len = task->payload_len > 400 ? 400 : (int)task->payload_len;
        snprintf(message, sizeof message, "fail: %.*s", len, (const char *)task->payload);
    } else {
        snprintf(message, sizeof message, "fail: this handler always fails");
    }
    host->set_error(ctx, message);
    return SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("fail", NULL, fail_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("fail", "1.1.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
