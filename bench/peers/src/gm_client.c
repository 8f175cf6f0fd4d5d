/* gearman client: N tasks to one function with a window of tasks in flight per connection, through
 * libgearman's task API (gearman_client_add_task + gearman_client_run_tasks; a completed task's
 * callback adds the next one, so the window stays full). One thread and one gearman_client_st per
 * connection. Latency: from add_task to the complete callback (foreground) or to the created
 * callback, the server's JOB_CREATED (background).
 * usage: gm_client -P PORT [-f FUNCTION] [-n TASKS] [-c IN_FLIGHT] [-k CONNECTIONS] [-p BYTES] [-b] */
#include <libgearman/gearman.h>
#include <pthread.h>
#include <unistd.h>

#include "common.h"

struct conn {
    gearman_client_st *client;
    long quota, window, sent, completed, errors;
    uint64_t *sent_at, *lat;
    size_t nlat;
};

static const char *function = "echo";
static int background = 0;
static in_port_t port = 4730;
static unsigned char *payload;
static size_t payload_len = 16;
static int verify_echo = 0;
static __thread struct conn *self;

static void add_one(struct conn *c) {
    gearman_return_t ret;
    long i = c->sent++;
    c->sent_at[i] = now_ns();
    gearman_task_st *task = background
        ? gearman_client_add_task_background(c->client, NULL, &c->sent_at[i], function, NULL, payload, payload_len, &ret)
        : gearman_client_add_task(c->client, NULL, &c->sent_at[i], function, NULL, payload, payload_len, &ret);
    if (task == NULL || ret != GEARMAN_SUCCESS) die(gearman_client_error(c->client));
}

static gearman_return_t finished(gearman_task_st *task, int ok) {
    struct conn *c = self;
    uint64_t *at = gearman_task_context(task);
    c->lat[c->nlat++] = now_ns() - *at;
    if (!ok) c->errors++;
    c->completed++;
    if (c->sent < c->quota) add_one(c);
    return GEARMAN_SUCCESS;
}

static gearman_return_t on_complete(gearman_task_st *task) {
    int ok = !verify_echo ||
             (gearman_task_data_size(task) == payload_len && memcmp(gearman_task_data(task), payload, payload_len) == 0);
    return finished(task, ok);
}
static gearman_return_t on_created(gearman_task_st *task) { return background ? finished(task, 1) : GEARMAN_SUCCESS; }
static gearman_return_t on_fail(gearman_task_st *task) { return finished(task, 0); }

static void *run(void *arg) {
    struct conn *c = self = arg;
    c->client = gearman_client_create(NULL);
    if (c->client == NULL) die("gearman_client_create failed");
    if (gearman_client_add_server(c->client, "127.0.0.1", port) != GEARMAN_SUCCESS) die(gearman_client_error(c->client));
    gearman_client_add_options(c->client, GEARMAN_CLIENT_FREE_TASKS);
    gearman_client_set_complete_fn(c->client, on_complete);
    gearman_client_set_created_fn(c->client, on_created);
    gearman_client_set_fail_fn(c->client, on_fail);
    gearman_client_set_exception_fn(c->client, on_fail);
    while (c->sent < c->window && c->sent < c->quota) add_one(c);
    while (c->completed < c->quota) {
        gearman_return_t ret = gearman_client_run_tasks(c->client);
        if (ret != GEARMAN_SUCCESS) die(gearman_client_error(c->client));
    }
    gearman_client_free(c->client);
    return NULL;
}

int main(int argc, char **argv) {
    long tasks = 100000, concurrency = 1000, connections = 1;
    int opt;
    while ((opt = getopt(argc, argv, "P:f:n:c:k:p:b")) != -1) {
        switch (opt) {
        case 'P': port = (in_port_t)atoi(optarg); break;
        case 'f': function = optarg; break;
        case 'n': tasks = atol(optarg); break;
        case 'c': concurrency = atol(optarg); break;
        case 'k': connections = atol(optarg); break;
        case 'p': payload_len = (size_t)atol(optarg); break;
        case 'b': background = 1; break;
        default: die("usage: gm_client -P PORT [-f FUNCTION] [-n TASKS] [-c IN_FLIGHT] [-k CONNECTIONS] [-p BYTES] [-b]");
        }
    }
    if (connections < 1 || concurrency < connections || tasks < 1) die("need 1 <= connections <= in flight, tasks >= 1");
    verify_echo = !background && strcmp(function, "echo") == 0;
    payload = xcalloc(payload_len, 1);
    fill_payload(payload, payload_len, 42);
    struct conn *conns = xcalloc((size_t)connections, sizeof *conns);
    pthread_t *threads = xcalloc((size_t)connections, sizeof *threads);
    for (long i = 0; i < connections; i++) {
        struct conn *c = &conns[i];
        c->quota = tasks / connections + (i < tasks % connections);
        c->window = concurrency / connections + (i < concurrency % connections);
        c->sent_at = xcalloc((size_t)c->quota, sizeof *c->sent_at);
        c->lat = xcalloc((size_t)c->quota, sizeof *c->lat);
    }
    uint64_t start = now_ns();
    for (long i = 0; i < connections; i++) pthread_create(&threads[i], NULL, run, &conns[i]);
    for (long i = 0; i < connections; i++) pthread_join(threads[i], NULL);
    double seconds = (double)(now_ns() - start) / 1e9;
    uint64_t *lat = xcalloc((size_t)tasks, sizeof *lat);
    size_t n = 0;
    long errors = 0;
    for (long i = 0; i < connections; i++) {
        memcpy(lat + n, conns[i].lat, conns[i].nlat * sizeof *lat);
        n += conns[i].nlat;
        errors += conns[i].errors;
    }
    print_result("gearmand", tasks, seconds, lat, n, errors);
    return errors ? 1 : 0;
}
