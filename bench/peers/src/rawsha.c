/* The hashing speed with no scheduler: P processes (default 2, as many as the benchmark's workers)
 * each hash N/P buffers of BYTES bytes with libcrypto's SHA256() and format the lowercase hex
 * digest, as the sha256 handlers do. Prints the JSON result line; time is from before the fork to
 * the last exit.
 * usage: rawsha [-n HASHES] [-p BYTES] [-w PROCESSES] */
#include <openssl/sha.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
    long hashes = 100000, procs = 2;
    size_t len = 4096;
    int opt;
    while ((opt = getopt(argc, argv, "n:p:w:")) != -1) {
        switch (opt) {
        case 'n': hashes = atol(optarg); break;
        case 'p': len = (size_t)atol(optarg); break;
        case 'w': procs = atol(optarg); break;
        default: die("usage: rawsha [-n HASHES] [-p BYTES] [-w PROCESSES]");
        }
    }
    if (procs < 1 || hashes < procs) die("need 1 <= processes <= hashes");
    unsigned char *buf = xcalloc(len, 1);
    fill_payload(buf, len, 42);
    uint64_t start = now_ns();
    for (long p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid < 0) die("fork failed");
        if (pid > 0) continue;
        static const char hex[] = "0123456789abcdef";
        unsigned char digest[SHA256_DIGEST_LENGTH];
        char out[SHA256_DIGEST_LENGTH * 2];
        volatile char sink = 0;
        long mine = hashes / procs + (p < hashes % procs);
        for (long i = 0; i < mine; i++) {
            buf[0] = (unsigned char)i; /* a different buffer each time */
            SHA256(buf, len, digest);
            for (int j = 0; j < SHA256_DIGEST_LENGTH; j++) {
                out[2 * j] = hex[digest[j] >> 4];
                out[2 * j + 1] = hex[digest[j] & 0xf];
            }
            sink ^= out[i % (long)sizeof out];
        }
        _exit(sink == 1 ? 0 : 0);
    }
    int status, failed = 0;
    while (wait(&status) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
    double seconds = (double)(now_ns() - start) / 1e9;
    print_result("raw libcrypto", hashes, seconds, NULL, 0, failed);
    return failed;
}
