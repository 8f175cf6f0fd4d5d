/* Shared by the peer benchmark clients: a monotonic clock, latency samples and the one-line
 * JSON result the harness reads (the same keys as `switchyard bench --json`). */
#ifndef PEERS_COMMON_H
#define PEERS_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void die(const char *what) {
    fprintf(stderr, "error: %s\n", what);
    exit(1);
}

static inline void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) die("out of memory");
    return p;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples, in microseconds. */
static inline double percentile_us(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return (double)sorted[rank - 1] / 1000.0;
}

/* Prints the result line. `lat` may be NULL (no latency measured): p50/p99 are then null. */
static inline void print_result(const char *system, long tasks, double seconds, uint64_t *lat, size_t nlat,
                                long errors) {
    printf("{\"system\":\"%s\",\"tasks\":%ld,\"seconds\":%.6f,\"throughput\":%.1f,\"errors\":%ld", system, tasks,
           seconds, seconds > 0 ? (double)tasks / seconds : 0.0, errors);
    if (lat != NULL && nlat > 0) {
        qsort(lat, nlat, sizeof *lat, cmp_u64);
        printf(",\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f", percentile_us(lat, nlat, 50),
               percentile_us(lat, nlat, 99), (double)lat[nlat - 1] / 1000.0);
    } else {
        printf(",\"p50_us\":null,\"p99_us\":null");
    }
    printf("}\n");
    fflush(stdout);
}

/* Random payload bytes (xorshift; the content does not matter, only its size). */
static inline void fill_payload(unsigned char *buf, size_t len, uint64_t seed) {
    uint64_t x = seed | 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
}

#endif
