#define _GNU_SOURCE
#include "swy_limits.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

int swy_limit_memory(uint64_t bytes) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_DATA, &limit) != 0) return errno;
    rlim_t wanted = (rlim_t)bytes;
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < wanted) wanted = limit.rlim_max;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) wanted = limit.rlim_cur;
    limit.rlim_cur = wanted;
    limit.rlim_max = wanted;
    return setrlimit(RLIMIT_DATA, &limit) == 0 ? 0 : errno;
}

/* State of the fatal-signal handler: written once before it is installed. */
static swy_board_t *watched_board;
static size_t watched_probe;
static const int watched_signals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGTRAP};
#define WATCHED_COUNT (sizeof watched_signals / sizeof watched_signals[0])
static struct sigaction previous_actions[WATCHED_COUNT];
static char alternate_stack[64 * 1024];

/* Async-signal-safe: errno, mmap, munmap, an atomic store, sigaction, raise. */
static void on_fatal_signal(int sig, siginfo_t *info, void *context) {
    (void)context;
    int saved = errno;
    int exhausted = saved == ENOMEM;
    if (!exhausted) {
        void *probe = mmap(NULL, watched_probe, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (probe == MAP_FAILED) {
            exhausted = errno == ENOMEM;
        } else {
            munmap(probe, watched_probe);
        }
    }
    if (exhausted) __atomic_store_n(&watched_board->limit_hit, SWY_LIMIT_MEMORY, __ATOMIC_RELEASE);
    for (size_t i = 0; i < WATCHED_COUNT; i++) {
        if (watched_signals[i] == sig) sigaction(sig, &previous_actions[i], NULL);
    }
    /* A fault happens again when the handler returns, now under the previous
     * action; a signal that was sent (raise, abort, kill) must be sent again.
     * It stays blocked until the handler returns. */
    if (info == NULL || info->si_code <= 0) raise(sig);
    errno = saved;
}

int swy_watch_memory(swy_board_t *board, uint64_t probe_bytes) {
    watched_board = board;
    watched_probe = (size_t)probe_bytes;
    stack_t stack;
    memset(&stack, 0, sizeof stack);
    stack.ss_sp = alternate_stack;
    stack.ss_size = sizeof alternate_stack;
    if (sigaltstack(&stack, NULL) != 0) return errno;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < WATCHED_COUNT; i++) {
        if (sigaction(watched_signals[i], &action, &previous_actions[i]) != 0) return errno;
    }
    return 0;
}

int swy_cpu_budget_init(swy_cpu_budget_t *budget, uint64_t seconds) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_CPU, &limit) != 0) return errno;
    budget->seconds = seconds;
    budget->armed = (uint64_t)limit.rlim_cur;
    budget->hard = (uint64_t)limit.rlim_max;
    return 0;
}

int swy_cpu_budget_arm(swy_cpu_budget_t *budget) {
    struct timespec used;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used) != 0) return errno;
    uint64_t target = (uint64_t)used.tv_sec + budget->seconds + (used.tv_nsec > 0 ? 1 : 0);
    if (budget->hard != (uint64_t)RLIM_INFINITY && target > budget->hard) target = budget->hard;
    if (target == budget->armed) return 0;
    struct rlimit limit = {(rlim_t)target, (rlim_t)budget->hard};
    if (setrlimit(RLIMIT_CPU, &limit) != 0) return errno;
    budget->armed = target;
    return 0;
}
