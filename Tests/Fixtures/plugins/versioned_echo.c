/* versioned_echo: handler `vecho`, replying "v" VERSION ":" payload, for hot-reload tests.
 * Build two versions of the same file and swap them under the host:
 *   cc -shared -fPIC -I sdk/include -DVERSION=2 -o vecho.so Tests/Fixtures/plugins/versioned_echo.c
 * VERSION defaults to 1; it is also the plugin's version string.
 * With -DFAIL_EVERY=N, every Nth task a worker runs fails permanently (a bad
 * version, for canary tests). With -DSELF_TEST_FAILS, its self-test fails
 * (a reload must be refused); with -DSELF_TEST_PASSES, it passes. */
#include "switchyard.h"

#include <string.h>

#ifndef VERSION
#define VERSION 1
#endif
#define SWY_STRINGIFY_(x) #x
#define SWY_STRINGIFY(x) SWY_STRINGIFY_(x)
#define VERSION_TAG "v" SWY_STRINGIFY(VERSION) ":"

static swy_status_t vecho_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                  void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
#ifdef FAIL_EVERY
    static unsigned long runs = 0;
    if (++runs % FAIL_EVERY == 0) {
        host->set_error(ctx, "vecho: this build fails every " SWY_STRINGIFY(FAIL_EVERY) " tasks");
        return SWY_ERR_PERMANENT;
    }
#endif
    if (host->result_append(ctx, VERSION_TAG, strlen(VERSION_TAG)) != 0 ||
        (task->payload_len > 0 && host->result_append(ctx, task->payload, task->payload_len) != 0)) {
        host->set_error(ctx, "vecho: result too large");
        return SWY_ERR_PERMANENT;
    }
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("vecho", NULL, vecho_message, NULL, NULL)};
#if defined(SELF_TEST_FAILS)
static int vecho_self_test(swy_ctx_t *ctx, const swy_host_api_t *host) {
    host->set_error(ctx, "vecho: the reply table is empty");
    return 1;
}
static const swy_plugin_t plugin =
    SWY_PLUGIN_WITH_SELF_TEST("versioned_echo", SWY_STRINGIFY(VERSION), handlers, vecho_self_test);
#elif defined(SELF_TEST_PASSES)
static int vecho_self_test(swy_ctx_t *ctx, const swy_host_api_t *host) {
    (void)ctx;
    (void)host;
    return 0;
}
static const swy_plugin_t plugin =
    SWY_PLUGIN_WITH_SELF_TEST("versioned_echo", SWY_STRINGIFY(VERSION), handlers, vecho_self_test);
#else
static const swy_plugin_t plugin = SWY_PLUGIN("versioned_echo", SWY_STRINGIFY(VERSION), handlers);
#endif

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
