/* sha256: the result is the lowercase hex SHA-256 digest of the payload.
 * Hashing is OpenSSL's libcrypto (hardware-accelerated where the CPU allows). */
#include "switchyard.h"

#include <openssl/sha.h>

static swy_status_t sha256_message(swy_ctx_t *ctx, const swy_host_api_t *host, const swy_task_t *task,
                                   void *handler_data, void *worker_state) {
    (void)handler_data;
    (void)worker_state;
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char out[SHA256_DIGEST_LENGTH * 2];
    SHA256(task->payload_len ? task->payload : (const uint8_t *)"", task->payload_len, digest);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    host->result_append(ctx, out, sizeof out);
    return SWY_OK;
}

static const swy_handler_t handlers[] = {SWY_HANDLER("sha256", NULL, sha256_message, NULL, NULL)};
static const swy_plugin_t plugin = SWY_PLUGIN("sha256", "1.0.0", handlers);

const swy_plugin_t *swy_plugin_entry(void) { return &plugin; }
