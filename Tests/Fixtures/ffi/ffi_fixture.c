/* Plain C functions with no Switchyard glue, bound as handlers through libffi by
 * the binding tests (Tests/SwitchyardIntegrationTests/BindingTests.swift) and the
 * benchmarks. Built at test time:
 *
 *   cc -shared -fPIC -Wall -Wextra -Werror -o "$DIR/libffi_fixture.so" Tests/Fixtures/ffi/ffi_fixture.c
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* int64(int64, int64) */
int64_t add(int64_t a, int64_t b) { return a + b; }

/* string(string): the result lives in a static buffer until the next call. */
const char *greet(const char *name) {
    static char buffer[256];
    snprintf(buffer, sizeof buffer, "hello, %s", name);
    return buffer;
}

/* uint32(bytes): Adler-32 of the bytes (as zlib's adler32 would compute it). */
uint32_t checksum(const uint8_t *data, size_t length) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < length; i++) {
        a = (a + data[i]) % 65521;
        b = (b + a) % 65521;
    }
    return (b << 16) | a;
}

/* bytes(bytes, out_len): the bytes reversed, in a buffer owned by this library. */
const uint8_t *reverse(const uint8_t *data, size_t length, size_t *out_length) {
    static uint8_t *buffer;
    static size_t capacity;
    if (length > capacity) {
        free(buffer);
        buffer = malloc(length);
        capacity = buffer ? length : 0;
        if (!buffer) { *out_length = 0; return NULL; }
    }
    for (size_t i = 0; i < length; i++) buffer[i] = data[length - 1 - i];
    *out_length = length;
    return buffer;
}

/* Narrow and unusual types, to check widening and range rules. */
uint8_t inc8(uint8_t x) { return (uint8_t)(x + 1); }
int8_t neg8(int8_t x) { return (int8_t)-x; }
bool is_even(int64_t x) { return x % 2 == 0; }
float halve(float x) { return x / 2; }
uint64_t umax(void) { return UINT64_MAX; }
size_t length_of(const char *text) { return strlen(text); }

/* void(): dies with SIGSEGV, like the shipped crash plugin. */
void crash(void) {
    volatile int *nowhere = NULL;
    *nowhere = 1;
    raise(SIGSEGV); /* not reached */
}
