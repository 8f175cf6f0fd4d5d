/* gearman worker: registers `echo` (the workload back) or `sha256` (lowercase hex SHA-256 of the
 * workload, libcrypto's SHA256() as Switchyard's sha256 plugin calls it) and works forever.
 * usage: gm_worker PORT echo|sha256 */
#include <libgearman/gearman.h>
#include <openssl/sha.h>

#include "common.h"

static void *echo_fn(gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret) {
    (void)context;
    size_t n = gearman_job_workload_size(job);
    void *out = malloc(n ? n : 1);
    if (out == NULL) die("out of memory");
    memcpy(out, gearman_job_workload(job), n);
    *result_size = n;
    *ret = GEARMAN_SUCCESS;
    return out;
}

static void *sha256_fn(gearman_job_st *job, void *context, size_t *result_size, gearman_return_t *ret) {
    (void)context;
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *out = malloc(SHA256_DIGEST_LENGTH * 2);
    if (out == NULL) die("out of memory");
    SHA256(gearman_job_workload(job), gearman_job_workload_size(job), digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    *result_size = SHA256_DIGEST_LENGTH * 2;
    *ret = GEARMAN_SUCCESS;
    return out;
}

int main(int argc, char **argv) {
    if (argc != 3) die("usage: gm_worker PORT echo|sha256");
    gearman_worker_fn *fn = strcmp(argv[2], "sha256") == 0 ? sha256_fn : echo_fn;
    gearman_worker_st *worker = gearman_worker_create(NULL);
    if (worker == NULL) die("gearman_worker_create failed");
    if (gearman_worker_add_server(worker, "127.0.0.1", (in_port_t)atoi(argv[1])) != GEARMAN_SUCCESS)
        die(gearman_worker_error(worker));
    if (gearman_worker_add_function(worker, argv[2], 0, fn, NULL) != GEARMAN_SUCCESS) die(gearman_worker_error(worker));
    for (;;) {
        gearman_return_t ret = gearman_worker_work(worker);
        if (ret != GEARMAN_SUCCESS) {
            fprintf(stderr, "gm_worker: %s\n", gearman_worker_error(worker));
            return 1;
        }
    }
}
