/* beanstalkd client: N jobs into a tube, pipelined, with a window of jobs in flight per connection
 * and one thread per connection. Modes (-m):
 *   bg     put only; in flight = puts not yet answered INSERTED; latency = put to INSERTED.
 *   drain  bg, then polls `stats-tube` until the workers have deleted all N jobs; time = first put
 *          to last delete. No latency (beanstalkd tells the producer nothing when a job is done).
 *   reply  each job is `REPLYTUBE TAG PAYLOAD` (see bs_worker.c); a second connection watches the
 *          client's own reply tube, reserves each reply and deletes it. In flight = jobs put whose
 *          reply has not been reserved; latency = put written to reply reserved.
 * The tube is named after the handler (echo, sha256); in reply mode an `echo` tube checks each result.
 * usage: bs_client -P PORT [-t TUBE] [-m bg|drain|reply] [-n JOBS] [-c IN_FLIGHT] [-k CONNECTIONS] [-p BYTES] */
#include <poll.h>
#include <pthread.h>

#include "bs.h"

enum mode { BG, DRAIN, REPLY };

struct conn {
    struct bs put, rep;
    int index;
    long quota, window, sent, acked, completed, errors;
    uint64_t *sent_at, *lat;
    size_t nlat;
    char *out;
    size_t out_cap;
};

static int port = 11300;
static const char *tube = "jobs";
static enum mode mode = BG;
static unsigned char *payload;
static size_t payload_len = 16;
static int verify_echo = 1;

static void send_puts(struct conn *c) {
    size_t o = 0;
    long limit = mode == REPLY ? c->completed : c->acked;
    while (c->sent < c->quota && c->sent - limit < c->window && o + payload_len + 128 < c->out_cap) {
        char prefix[96] = "";
        int plen = mode == REPLY ? snprintf(prefix, sizeof prefix, "reply.%d.%d %ld ", (int)getpid(), c->index, c->sent) : 0;
        o += (size_t)snprintf(c->out + o, c->out_cap - o, "put 0 0 120 %zu\r\n", (size_t)plen + payload_len);
        memcpy(c->out + o, prefix, (size_t)plen);
        o += (size_t)plen;
        memcpy(c->out + o, payload, payload_len);
        o += payload_len;
        c->out[o++] = '\r';
        c->out[o++] = '\n';
        c->sent_at[c->sent++] = now_ns();
    }
    if (o > 0) bs_write(&c->put, c->out, o);
}

static void read_puts(struct conn *c) {
    char *line, *body;
    size_t n;
    while (bs_next(&c->put, &line, &body, &n)) {
        if (strncmp(line, "INSERTED ", 9) != 0) {
            fprintf(stderr, "bs_client: put answered `%s`\n", line);
            exit(1);
        }
        if (mode != REPLY) c->lat[c->nlat++] = now_ns() - c->sent_at[c->acked];
        c->acked++;
    }
}

static void read_replies(struct conn *c) {
    char *line, *body;
    size_t n;
    char cmd[64];
    while (bs_next(&c->rep, &line, &body, &n)) {
        if (strcmp(line, "DELETED") == 0) continue;
        if (strncmp(line, "RESERVED ", 9) != 0) {
            fprintf(stderr, "bs_client: reserve answered `%s`\n", line);
            exit(1);
        }
        unsigned long id = strtoul(line + 9, NULL, 10);
        char *sp = memchr(body, ' ', n);
        if (sp == NULL) die("reply without a tag");
        long tag = strtol(body, NULL, 10);
        if (tag < 0 || tag >= c->sent) die("reply with an unknown tag");
        c->lat[c->nlat++] = now_ns() - c->sent_at[tag];
        size_t rlen = (size_t)(body + n - sp - 1);
        if (verify_echo && (rlen != payload_len || memcmp(sp + 1, payload, payload_len) != 0)) c->errors++;
        c->completed++;
        int len = c->completed < c->quota ? snprintf(cmd, sizeof cmd, "delete %lu\r\nreserve\r\n", id)
                                           : snprintf(cmd, sizeof cmd, "delete %lu\r\n", id);
        bs_write(&c->rep, cmd, (size_t)len);
    }
}

static void *run(void *arg) {
    struct conn *c = arg;
    char cmd[128];
    bs_connect(&c->put, port);
    snprintf(cmd, sizeof cmd, "use %s\r\n", tube);
    bs_command(&c->put, cmd, "USING");
    if (mode == REPLY) {
        bs_connect(&c->rep, port);
        snprintf(cmd, sizeof cmd, "watch reply.%d.%d\r\n", (int)getpid(), c->index);
        bs_command(&c->rep, cmd, "WATCHING");
        bs_command(&c->rep, "ignore default\r\n", "WATCHING");
        bs_write(&c->rep, "reserve\r\n", 9);
    }
    for (;;) {
        send_puts(c);
        if (c->acked == c->quota && (mode != REPLY || c->completed == c->quota)) break;
        struct pollfd fds[2] = {{.fd = c->put.fd, .events = POLLIN}, {.fd = mode == REPLY ? c->rep.fd : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR) die("poll failed");
        if (fds[0].revents) {
            if (bs_fill(&c->put) == 0) die("beanstalkd closed the connection");
            read_puts(c);
        }
        if (fds[1].revents) {
            if (bs_fill(&c->rep) == 0) die("beanstalkd closed the connection");
            read_replies(c);
        }
    }
    return NULL;
}

/* Waits until `cmd-delete` of the tube reaches `target`. */
static void wait_deleted(long target) {
    struct bs b;
    bs_connect(&b, port);
    char cmd[128], *line, *body;
    size_t n;
    snprintf(cmd, sizeof cmd, "stats-tube %s\r\n", tube);
    for (;;) {
        bs_write(&b, cmd, strlen(cmd));
        bs_reply(&b, &line, &body, &n);
        if (body == NULL) die("stats-tube failed");
        if (bs_stat(body, n, "cmd-delete") >= target) break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    close(b.fd);
}

int main(int argc, char **argv) {
    long tasks = 100000, concurrency = 1000, connections = 1;
    int opt;
    while ((opt = getopt(argc, argv, "P:t:m:n:c:k:p:")) != -1) {
        switch (opt) {
        case 'P': port = atoi(optarg); break;
        case 't': tube = optarg; break;
        case 'm': mode = strcmp(optarg, "reply") == 0 ? REPLY : strcmp(optarg, "drain") == 0 ? DRAIN : BG; break;
        case 'n': tasks = atol(optarg); break;
        case 'c': concurrency = atol(optarg); break;
        case 'k': connections = atol(optarg); break;
        case 'p': payload_len = (size_t)atol(optarg); break;
        default: die("usage: bs_client -P PORT [-t TUBE] [-m bg|drain|reply] [-n JOBS] [-c IN_FLIGHT] [-k CONNECTIONS] [-p BYTES]");
        }
    }
    if (connections < 1 || concurrency < connections || tasks < 1) die("need 1 <= connections <= in flight, jobs >= 1");
    verify_echo = strcmp(tube, "echo") == 0;
    payload = xcalloc(payload_len, 1);
    fill_payload(payload, payload_len, 42);
    struct conn *conns = xcalloc((size_t)connections, sizeof *conns);
    pthread_t *threads = xcalloc((size_t)connections, sizeof *threads);
    for (long i = 0; i < connections; i++) {
        struct conn *c = &conns[i];
        c->index = (int)i;
        c->quota = tasks / connections + (i < tasks % connections);
        c->window = concurrency / connections + (i < concurrency % connections);
        c->sent_at = xcalloc((size_t)c->quota, sizeof *c->sent_at);
        c->lat = xcalloc((size_t)c->quota, sizeof *c->lat);
        c->out_cap = 4 << 20;
        c->out = xcalloc(c->out_cap, 1);
    }
    uint64_t start = now_ns();
    for (long i = 0; i < connections; i++) pthread_create(&threads[i], NULL, run, &conns[i]);
    for (long i = 0; i < connections; i++) pthread_join(threads[i], NULL);
    if (mode == DRAIN) wait_deleted(tasks);
    double seconds = (double)(now_ns() - start) / 1e9;
    uint64_t *lat = xcalloc((size_t)tasks, sizeof *lat);
    size_t n = 0;
    long errors = 0;
    for (long i = 0; i < connections; i++) {
        memcpy(lat + n, conns[i].lat, conns[i].nlat * sizeof *lat);
        n += conns[i].nlat;
        errors += conns[i].errors;
    }
    print_result("beanstalkd", tasks, seconds, mode == DRAIN ? NULL : lat, n, errors);
    return errors ? 1 : 0;
}
