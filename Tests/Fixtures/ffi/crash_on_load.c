/* A library whose constructor dies with SIGSEGV as soon as it is opened, so a
 * worker dies while preparing a binding to it. The host must leave that binding
 * out of every later worker (reporting it skipped) and keep the others. */
#include <signal.h>
#include <stdint.h>

__attribute__((constructor)) static void explode(void) {
    volatile int *nowhere = 0;
    *nowhere = 1;
    raise(SIGSEGV); /* not reached */
}

int64_t never_called(int64_t x) { return x; }
