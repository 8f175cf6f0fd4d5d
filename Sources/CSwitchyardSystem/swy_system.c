#define _GNU_SOURCE
#include "swy_system.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int swy_socketpair_cloexec(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int swy_spawn_worker(const char *path, char *const argv[], char *const envp[],
                     int child_fd, pid_t *pid_out) {
    int fd = child_fd;
    int dup_fd = -1;
    if (fd == 3) {
        /* dup2(3, 3) would be a no-op that leaves close-on-exec set. */
        dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
        if (dup_fd < 0) return errno;
        fd = dup_fd;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) goto out_fd;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) goto out_actions;

    if ((rc = posix_spawn_file_actions_adddup2(&actions, fd, 3)) != 0) goto out_attr;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 4)) != 0) goto out_attr;

    sigset_t empty, defaults;
    sigemptyset(&empty);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    sigaddset(&defaults, SIGCHLD);
    if ((rc = posix_spawnattr_setsigmask(&attr, &empty)) != 0) goto out_attr;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &defaults)) != 0) goto out_attr;
    if ((rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto out_attr;
    if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETPGROUP)) != 0)
        goto out_attr;

    rc = posix_spawn(pid_out, path, &actions, &attr, argv, envp);

out_attr:
    posix_spawnattr_destroy(&attr);
out_actions:
    posix_spawn_file_actions_destroy(&actions);
out_fd:
    if (dup_fd >= 0) close(dup_fd);
    return rc;
}

pid_t swy_waitpid_nohang(pid_t pid, int *status) {
    pid_t r;
    do {
        r = waitpid(pid, status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    return r;
}

int swy_wifexited(int status) { return WIFEXITED(status); }
int swy_wexitstatus(int status) { return WEXITSTATUS(status); }
int swy_wifsignaled(int status) { return WIFSIGNALED(status); }
int swy_wtermsig(int status) { return WTERMSIG(status); }
