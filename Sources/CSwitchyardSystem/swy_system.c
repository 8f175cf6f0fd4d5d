#define _GNU_SOURCE
#include "swy_system.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

int swy_socketpair_cloexec(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int swy_spawn_worker(const char *path, char *const argv[], char *const envp[],
                     int child_fd, int board_fd, pid_t *pid_out) {
    /* Move both descriptors above the targets first, so neither dup2 can
     * clobber the other (and dup2(3, 3) cannot leave close-on-exec set). */
    int fd = fcntl(child_fd, F_DUPFD_CLOEXEC, 10);
    if (fd < 0) return errno;
    int bfd = fcntl(board_fd, F_DUPFD_CLOEXEC, 10);
    if (bfd < 0) {
        int saved = errno;
        close(fd);
        return saved;
    }
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc != 0) goto out_fd;
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) goto out_actions;

    if ((rc = posix_spawn_file_actions_adddup2(&actions, fd, 3)) != 0) goto out_attr;
    if ((rc = posix_spawn_file_actions_adddup2(&actions, bfd, 4)) != 0) goto out_attr;
    /* A worker has no business with the host's terminal or input. */
    if ((rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)) != 0) goto out_attr;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, 5)) != 0) goto out_attr;

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
    close(fd);
    close(bfd);
    return rc;
}

int swy_board_create(int *fd_out, swy_board_t **board_out) {
    int fd = memfd_create("switchyard-worker-board", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)sizeof(swy_board_t)) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    swy_board_t *board = swy_board_map(fd);
    if (board == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *fd_out = fd;
    *board_out = board;
    return 0;
}

swy_board_t *swy_board_map(int fd) {
    void *p = mmap(NULL, sizeof(swy_board_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : (swy_board_t *)p;
}

void swy_board_unmap(swy_board_t *board) { munmap(board, sizeof(swy_board_t)); }

uint64_t swy_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
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

int swy_set_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return errno;
    return fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 ? 0 : errno;
}

const char *swy_dl_path(void *handle) {
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || map == NULL) return NULL;
    return map->l_name;
}

int swy_sha256_file(const char *path, char hex[65]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        return EIO;
    }
    unsigned char buffer[65536];
    int result = 0;
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { result = errno; break; }
        if (n == 0) break;
        if (EVP_DigestUpdate(ctx, buffer, (size_t)n) != 1) { result = EIO; break; }
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (result == 0 && EVP_DigestFinal_ex(ctx, digest, &length) != 1) result = EIO;
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (result != 0) return result;
    static const char digits[] = "0123456789abcdef";
    for (unsigned int i = 0; i < length && i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = 0;
    return 0;
}
