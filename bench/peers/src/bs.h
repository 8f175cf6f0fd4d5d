/* A minimal beanstalkd text-protocol connection: blocking writes, buffered reads, and a parser
 * that takes one reply line (and its body, for RESERVED) from the buffer when it is complete. */
#ifndef PEERS_BS_H
#define PEERS_BS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"

struct bs {
    int fd;
    char *buf;
    size_t cap, start, end;
};

static inline void bs_connect(struct bs *b, int port) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    b->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (b->fd < 0 || connect(b->fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("cannot connect to beanstalkd");
    int one = 1;
    setsockopt(b->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    b->cap = 1 << 20;
    b->buf = xcalloc(b->cap, 1);
    b->start = b->end = 0;
}

static inline void bs_write(struct bs *b, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(b->fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write to beanstalkd failed");
        p += n;
        len -= (size_t)n;
    }
}

/* Reads what is available (blocking until at least one byte). 0 when the peer closed. */
static inline ssize_t bs_fill(struct bs *b) {
    if (b->start > 0 && b->start == b->end) b->start = b->end = 0;
    if (b->end == b->cap) {
        memmove(b->buf, b->buf + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
    }
    if (b->end == b->cap) die("beanstalkd reply too large");
    ssize_t n;
    do n = read(b->fd, b->buf + b->end, b->cap - b->end);
    while (n < 0 && errno == EINTR);
    if (n < 0) die("read from beanstalkd failed");
    b->end += (size_t)n;
    return n;
}

/* One complete reply from the buffer: `line` (NUL-terminated, without CRLF) and, for a reply
 * ending in a byte count (RESERVED id n, OK n), `body`/`body_len`. Returns 0 if incomplete. */
static inline int bs_next(struct bs *b, char **line, char **body, size_t *body_len) {
    char *s = b->buf + b->start;
    size_t avail = b->end - b->start;
    char *nl = memchr(s, '\n', avail);
    if (nl == NULL) return 0;
    size_t line_len = (size_t)(nl - s) + 1;
    size_t need = line_len;
    size_t n = 0;
    int has_body = strncmp(s, "RESERVED ", 9) == 0 || strncmp(s, "OK ", 3) == 0;
    if (has_body) {
        char *last = nl;
        while (last > s && *last != ' ') last--;
        n = strtoul(last + 1, NULL, 10);
        need += n + 2;
        if (avail < need) return 0;
    }
    nl[-1] = '\0'; /* the CR */
    *line = s;
    *body = has_body ? nl + 1 : NULL;
    *body_len = n;
    b->start += need;
    return 1;
}

/* Blocks for one reply. */
static inline void bs_reply(struct bs *b, char **line, char **body, size_t *body_len) {
    while (!bs_next(b, line, body, body_len))
        if (bs_fill(b) == 0) die("beanstalkd closed the connection");
}

static inline void bs_command(struct bs *b, const char *command, const char *expect) {
    char *line, *body;
    size_t n;
    bs_write(b, command, strlen(command));
    bs_reply(b, &line, &body, &n);
    if (strncmp(line, expect, strlen(expect)) != 0) {
        fprintf(stderr, "beanstalkd: `%.*s` answered `%s`\n", (int)strcspn(command, "\r"), command, line);
        exit(1);
    }
}

/* A number from a stats YAML body: the value of `key: N`, or -1. */
static inline long bs_stat(const char *body, size_t len, const char *key) {
    size_t klen = strlen(key);
    for (const char *p = body; p < body + len;) {
        const char *eol = memchr(p, '\n', (size_t)(body + len - p));
        if (eol == NULL) eol = body + len;
        if ((size_t)(eol - p) > klen + 1 && strncmp(p, key, klen) == 0 && p[klen] == ':') return atol(p + klen + 1);
        p = eol + 1;
    }
    return -1;
}

#endif
