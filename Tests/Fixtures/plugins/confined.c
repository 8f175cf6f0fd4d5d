/* confined: handlers that look at, or press against, what a worker is given
 * (ConfinementTests).
 *
 * introspect: replies one line per open descriptor, `fd N TARGET cloexec=0|1`
 *   (from /proc/self/fd and /proc/self/fdinfo, leaving out the one it lists
 *   with), then one line per environment variable, `env NAME=VALUE`.
 * burn_cpu: spins on the CPU for up to PAYLOAD seconds of CPU time (default 30),
 *   then replies `burned`: with --worker-cpu below that, SIGXCPU ends it first.
 * hog_memory: allocates and touches 1 MiB blocks, never freeing them, up to
 *   PAYLOAD MiB (default 512), then replies `allocated`. Like a careless
 *   plugin, it does not check malloc: at the memory limit it writes through
 *   NULL and dies of SIGSEGV. */
#define _GNU_SOURCE
#include "switchyard.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int append(swy_ctx_t *ctx, const swy_host_api_t *host, const char *text) {
    return host->result_append(ctx, text, strlen(text));
}

static long payload_number(const swy_task_t *task, long fallback) {
    char text[32];
    if (task->payload_len == 0 || task->payload_len >= sizeof text) return fallback;
    memcpy(text, task->payload, task->payload_len);
    text[task->payload_len] = '\0';
    long value = strtol(text, NULL, 10);
    return value > 0 ? value : fallback;
}

static swy_status_t introspect(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                               void *handler_data, void *worker_state) {
    (void)task;
    (void)handler_data;
    (void)worker_state;
    DIR *directory = opendir("/proc/self/fd");
    if (directory == NULL) {
        host->set_error(ctx, "introspect: cannot list /proc/self/fd");
        return SWY_ERR_PERMANENT;
    }
    int own = dirfd(directory);
    struct dirent *entry;
    char line[4600];
    while ((entry = readdir(directory)) != NULL) {
        if (entry->d_name[0] == '.') continue;
        int fd = atoi(entry->d_name);
        if (fd == own) continue;
        char path[64], target[4096];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t length = readlink(path, target, sizeof target - 1);
        target[length < 0 ? 0 : length] = '\0';
        /* fdinfo's "flags:" is octal; O_CLOEXEC is 02000000. */
        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
        unsigned long flags = 0;
        FILE *info = fopen(path, "re");
        if (info != NULL) {
            char field[128];
            while (fgets(field, sizeof field, info) != NULL) {
                if (sscanf(field, "flags: %lo", &flags) == 1) break;
            }
            fclose(info);
        }
        snprintf(line, sizeof line, "fd %d %s cloexec=%d\n", fd, target, (flags & 02000000) != 0);
        if (append(ctx, host, line) != 0) break;
    }
    closedir(directory);
    for (char **variable = environ; *variable != NULL; variable++) {
        snprintf(line, sizeof line, "env %s\n", *variable);
        if (append(ctx, host, line) != 0) break;
    }
    return SWY_OK;
}

static double cpu_seconds(void) {
    struct timespec used;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    return (double)used.tv_sec + (double)used.tv_nsec / 1e9;
}

static swy_status_t burn_cpu(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                             void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    double until = cpu_seconds() + (double)payload_number(task, 30);
    volatile unsigned long spin = 0;
    while (cpu_seconds() < until) {
        for (int i = 0; i < 100000; i++) spin++;
    }
    return append(ctx, host, "burned") == 0 ? SWY_OK : SWY_ERR_PERMANENT;
}

static swy_status_t hog_memory(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                               void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    long blocks = payload_number(task, 512);
    for (long i = 0; i < blocks; i++) {
        char *block = malloc(1 << 20);
        memset(block, 1, 1 << 20); /* no NULL check, on purpose */
    }
    return append(ctx, host, "allocated") == 0 ? SWY_OK : SWY_ERR_PERMANENT;
}

static const swy_handler_t handlers[] = {
    SWY_HANDLER("introspect", NULL, introspect, NULL, NULL),
    SWY_HANDLER("burn_cpu", NULL, burn_cpu, NULL, NULL),
    SWY_HANDLER("hog_memory", NULL, hog_memory, NULL, NULL),
};
static const swy_plugin_t plugin = SWY_PLUGIN("confined", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
