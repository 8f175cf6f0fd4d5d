/*
 * SHA-256 and a constant-time comparison, through libcrypto (OpenSSL), for
 * SwitchyardCore's token checks. Pure functions: no I/O, no state.
 */
#ifndef SWY_DIGEST_H
#define SWY_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/* SHA-256 of the `length` bytes at `data` into `out`.
 * Returns 1, or 0 if libcrypto failed (then `out` is zeroed). */
int swy_sha256(const void *data, size_t length, uint8_t out[32]);

/* 1 when the `length` bytes at `a` and `b` are equal, else 0. Takes the same
 * time whatever the bytes hold (CRYPTO_memcmp), so it says nothing about
 * where they differ. */
int swy_equal_constant_time(const void *a, const void *b, size_t length);

#endif
