#include "swy_digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

int swy_sha256(const void *data, size_t length, uint8_t out[32]) {
    unsigned int written = 0;
    if (EVP_Digest(data, length, out, &written, EVP_sha256(), NULL) != 1 || written != 32) {
        memset(out, 0, 32);
        return 0;
    }
    return 1;
}

int swy_equal_constant_time(const void *a, const void *b, size_t length) {
    return CRYPTO_memcmp(a, b, length) == 0;
}
