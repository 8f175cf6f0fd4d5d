/*
 * Small C shims for system calls that Swift cannot make directly.
 * Used only by SwitchyardHost's process code; nothing else includes this.
 */
#ifndef SWY_SYSTEM_H
#define SWY_SYSTEM_H

#include <stdint.h>
#include <sys/types.h>

/* A Unix stream socketpair with close-on-exec on both ends.
 * Returns 0, or -1 with errno set. */
int swy_socketpair_cloexec(int fds[2]);

/* posix_spawn `path` with `argv`/`envp`, handing `child_fd` to the child as
 * descriptor 3 and `board_fd` as descriptor 4, /dev/null as its standard
 * input, and closing every other descriptor above 2 in the child
 * (posix_spawn_file_actions_addclosefrom_np). The child starts in its own
 * process group (so a terminal's Ctrl-C reaches only the host, which stops
 * workers in order) with default signal dispositions and an empty mask.
 * Returns 0 and stores the pid, or an errno value. */
int swy_spawn_worker(const char *path, char *const argv[], char *const envp[],
                     int child_fd, int board_fd, pid_t *pid_out);

/* The worker board: a small memory area shared by the host and one worker
 * (a memfd both map). The worker stores the id of the task it is running and
 * when it started, with two atomic stores per task and no system call; the
 * host reads them to know which task a dead worker was running. */
typedef struct swy_board {
    uint64_t running;    /* task id being executed, 0 when none */
    uint64_t started_ns; /* CLOCK_MONOTONIC at its start */
    uint32_t limit_hit;  /* SWY_LIMIT_*: a limit the worker found it broke, just before dying */
    uint32_t reserved;
} swy_board_t;

/* Values of swy_board_t.limit_hit. */
#define SWY_LIMIT_NONE 0u
#define SWY_LIMIT_MEMORY 1u

/* Creates a board: a close-on-exec memfd, sized and mapped shared.
 * Returns 0, or -1 with errno set. */
int swy_board_create(int *fd_out, swy_board_t **board_out);
/* Maps an inherited board descriptor (in the worker). NULL with errno on error. */
swy_board_t *swy_board_map(int fd);
void swy_board_unmap(swy_board_t *board);
uint64_t swy_monotonic_ns(void);

static inline void swy_board_begin(swy_board_t *board, uint64_t task) {
    __atomic_store_n(&board->started_ns, swy_monotonic_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&board->running, task, __ATOMIC_RELEASE);
}
static inline void swy_board_end(swy_board_t *board) {
    __atomic_store_n(&board->running, 0, __ATOMIC_RELEASE);
}
static inline uint64_t swy_board_running(const swy_board_t *board) {
    return __atomic_load_n(&board->running, __ATOMIC_ACQUIRE);
}
static inline uint64_t swy_board_started_ns(const swy_board_t *board) {
    return __atomic_load_n(&board->started_ns, __ATOMIC_RELAXED);
}
static inline uint32_t swy_board_limit_hit(const swy_board_t *board) {
    return __atomic_load_n(&board->limit_hit, __ATOMIC_ACQUIRE);
}

/* waitpid(pid, WNOHANG) retried on EINTR. Returns the pid when reaped (status
 * stored), 0 when still running, -1 with errno on error. */
pid_t swy_waitpid_nohang(pid_t pid, int *status);

/* Decoders for a wait status (the W* macros are not visible to Swift). */
int swy_wifexited(int status);
int swy_wexitstatus(int status);
int swy_wifsignaled(int status);
int swy_wtermsig(int status);

/* Sets close-on-exec on `fd` (a worker's inherited socket). Returns 0 or an errno value. */
int swy_set_cloexec(int fd);

/* The file the dynamic linker opened for a dlopen handle (its link map's
 * l_name: for a bare name such as "libm.so.6", the path it found), or NULL. */
const char *swy_dl_path(void *handle);

/* SHA-256 of the file at `path`, as 64 lowercase hex digits and a NUL in
 * `hex` (65 bytes). Returns 0, or an errno value (the file cannot be read, or
 * EIO when libcrypto fails). Reads with one open descriptor, close-on-exec. */
int swy_sha256_file(const char *path, char hex[65]);

#endif
