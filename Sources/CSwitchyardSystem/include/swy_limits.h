/*
 * Per-worker resource limits (serve --worker-memory, --worker-cpu), set by
 * the worker process on itself. Used only by SwitchyardHost's worker code.
 */
#ifndef SWY_LIMITS_H
#define SWY_LIMITS_H

#include <stdint.h>

#include "swy_system.h"

/* Caps the process's data segment and private writable mappings
 * (RLIMIT_DATA, soft and hard) at `bytes`, so an allocation past it fails.
 * A lower limit already in place is kept. Returns 0 or an errno value. */
int swy_limit_memory(uint64_t bytes);

/* Once the memory limit is set: on a fatal signal (SIGSEGV, SIGBUS, SIGABRT,
 * SIGILL, SIGTRAP), records SWY_LIMIT_MEMORY on `board` when memory ran out
 * (the failing thread's errno is ENOMEM, as malloc leaves it, or the process
 * cannot map `probe_bytes` more), then lets the signal end the process as it
 * would have (the previous handler, or the default action). The handler runs
 * on an alternate stack, so a stack overflow is reported too. OWNERSHIP: the
 * board must stay mapped for the life of the process. Returns 0 or an errno value. */
int swy_watch_memory(swy_board_t *board, uint64_t probe_bytes);

/* A CPU-time budget per task, on RLIMIT_CPU (which counts the whole
 * process's CPU time): before each task, the soft limit moves to the CPU time
 * used so far plus `seconds`, rounded up to a whole second, so a task gets at
 * least `seconds` and less than `seconds` + 1 before the kernel sends SIGXCPU
 * (default action: end the process). The hard limit is never raised. */
typedef struct swy_cpu_budget {
    uint64_t seconds; /* CPU seconds each task may use */
    uint64_t armed;   /* the soft limit last set */
    uint64_t hard;    /* the hard limit (RLIM_INFINITY when none) */
} swy_cpu_budget_t;

/* Reads the current limits. Returns 0 or an errno value. */
int swy_cpu_budget_init(swy_cpu_budget_t *budget, uint64_t seconds);
/* Before a task: one clock_gettime, plus a setrlimit when the soft limit
 * must move (at most once per CPU second used). Returns 0 or an errno value. */
int swy_cpu_budget_arm(swy_cpu_budget_t *budget);

#endif
