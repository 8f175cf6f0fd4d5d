/*
 * Small C shims for system calls that Swift cannot make directly.
 * Used only by SwitchyardHost's process code; nothing else includes this.
 */
#ifndef SWY_SYSTEM_H
#define SWY_SYSTEM_H

#include <sys/types.h>

/* A Unix stream socketpair with close-on-exec on both ends.
 * Returns 0, or -1 with errno set. */
int swy_socketpair_cloexec(int fds[2]);

/* posix_spawn `path` with `argv`/`envp`, handing `child_fd` to the child as
 * descriptor 3 and closing every other descriptor above 2 in the child
 * (posix_spawn_file_actions_addclosefrom_np). The child starts in its own
 * process group (so a terminal's Ctrl-C reaches only the host, which stops
 * workers in order) with default signal dispositions and an empty mask.
 * Returns 0 and stores the pid, or an errno value. */
int swy_spawn_worker(const char *path, char *const argv[], char *const envp[],
                     int child_fd, pid_t *pid_out);

/* waitpid(pid, WNOHANG) retried on EINTR. Returns the pid when reaped (status
 * stored), 0 when still running, -1 with errno on error. */
pid_t swy_waitpid_nohang(pid_t pid, int *status);

/* Decoders for a wait status (the W* macros are not visible to Swift). */
int swy_wifexited(int status);
int swy_wexitstatus(int status);
int swy_wifsignaled(int status);
int swy_wtermsig(int status);

#endif
