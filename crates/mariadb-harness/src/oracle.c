/*
 * oracle.c: exact client-side connection counter (mariadb-harness).
 *
 * Loaded with LD_PRELOAD, it interposes connect() and close() and counts this
 * process's sockets connected to one watched TCP port (any address, IPv4 or
 * IPv6) and/or one watched unix socket path. It increments BEFORE the real
 * connect() and decrements AFTER the real close(), so at every instant the
 * count is >= the number of such sockets that exist: it can over-count,
 * never under-count. `max` is the largest count ever seen.
 *
 * Each fd carries a count of the units it holds (normally 0 or 1). close()
 * takes the fd's units (leaving 0) before the real close and subtracts exactly those
 * afterwards, so a thread that reuses the fd number in between keeps its own
 * unit. A repeated connect() on the same socket (EALREADY, EISCONN) or on a
 * bad fd gives its unit back; every other failure keeps it until close().
 *
 * Everything is lock-free (__atomic builtins) and thread-safe. Sockets with
 * fd >= ORACLE_MAX_FDS are not tracked; they are counted in `untracked`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ORACLE_MAX_FDS 65536

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*close_fn)(int);

static int fd_units[ORACLE_MAX_FDS];
static long current_count;
static long max_count;
static long untracked_count;
static int watched_port = -1;
static char *watched_path; /* replaced atomically; old copies are leaked */
static connect_fn real_connect_ptr;
static close_fn real_close_ptr;

static connect_fn real_connect(void) {
    connect_fn f = __atomic_load_n(&real_connect_ptr, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (connect_fn)dlsym(RTLD_NEXT, "connect");
        __atomic_store_n(&real_connect_ptr, f, __ATOMIC_RELEASE);
    }
    return f;
}

static close_fn real_close(void) {
    close_fn f = __atomic_load_n(&real_close_ptr, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (close_fn)dlsym(RTLD_NEXT, "close");
        __atomic_store_n(&real_close_ptr, f, __ATOMIC_RELEASE);
    }
    return f;
}

__attribute__((constructor)) static void oracle_init(void) {
    (void)real_connect();
    (void)real_close();
}

static void raise_max(long now) {
    long seen = __atomic_load_n(&max_count, __ATOMIC_SEQ_CST);
    while (now > seen &&
           !__atomic_compare_exchange_n(&max_count, &seen, now, 1, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
    }
}

static int is_watched(const struct sockaddr *addr, socklen_t len) {
    sa_family_t family;
    if (!addr || len < (socklen_t)sizeof(sa_family_t)) return 0;
    memcpy(&family, addr, sizeof family);
    if (family == AF_INET || family == AF_INET6) {
        int port = __atomic_load_n(&watched_port, __ATOMIC_ACQUIRE);
        in_port_t net_port;
        if (port < 0) return 0;
        if (family == AF_INET) {
            if (len < (socklen_t)sizeof(struct sockaddr_in)) return 0;
            memcpy(&net_port, (const char *)addr + offsetof(struct sockaddr_in, sin_port),
                   sizeof net_port);
        } else {
            if (len < (socklen_t)sizeof(struct sockaddr_in6)) return 0;
            memcpy(&net_port, (const char *)addr + offsetof(struct sockaddr_in6, sin6_port),
                   sizeof net_port);
        }
        return ntohs(net_port) == port;
    }
    if (family == AF_UNIX) {
        const char *path = __atomic_load_n(&watched_path, __ATOMIC_ACQUIRE);
        size_t off = offsetof(struct sockaddr_un, sun_path);
        const char *sun_path = (const char *)addr + off;
        size_t avail, plen;
        if (!path || (size_t)len <= off) return 0;
        avail = (size_t)len - off;
        plen = strlen(path);
        if (plen == 0 || plen > avail || memcmp(sun_path, path, plen) != 0) return 0;
        return plen == avail || sun_path[plen] == '\0';
    }
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    connect_fn real = real_connect();
    int rc, err;
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (!is_watched(addr, len)) return real(fd, addr, len);
    if (fd < 0 || fd >= ORACLE_MAX_FDS) {
        __atomic_add_fetch(&untracked_count, 1, __ATOMIC_SEQ_CST);
        return real(fd, addr, len);
    }
    __atomic_add_fetch(&fd_units[fd], 1, __ATOMIC_SEQ_CST);
    raise_max(__atomic_add_fetch(&current_count, 1, __ATOMIC_SEQ_CST));
    rc = real(fd, addr, len);
    if (rc != 0) {
        err = errno;
        if (err == EALREADY || err == EISCONN || err == EBADF || err == ENOTSOCK) {
            /* This call started no new connection. */
            __atomic_sub_fetch(&fd_units[fd], 1, __ATOMIC_SEQ_CST);
            __atomic_sub_fetch(&current_count, 1, __ATOMIC_SEQ_CST);
        }
        errno = err;
    }
    return rc;
}

int close(int fd) {
    close_fn real = real_close();
    int units, rc, err;
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    if (fd < 0 || fd >= ORACLE_MAX_FDS) return real(fd);
    /* Taken (and zeroed) before the real close, while nobody else can have this fd:
     * once it is closed, another thread may get the same fd and connect it, and a
     * subtraction after the close would then take that connection's unit too (or that
     * thread's close would take this one's). The count still falls only after the
     * real close. */
    units = __atomic_exchange_n(&fd_units[fd], 0, __ATOMIC_SEQ_CST);
    if (units == 0) return real(fd);
    rc = real(fd);
    err = errno;
    /* Linux frees the fd even when close fails, so always release. */
    __atomic_sub_fetch(&current_count, (long)units, __ATOMIC_SEQ_CST);
    errno = err;
    return rc;
}

void conn_oracle_watch(int port, const char *unix_path_or_null) {
    char *copy = NULL;
    if (unix_path_or_null) copy = strdup(unix_path_or_null);
    __atomic_store_n(&watched_path, copy, __ATOMIC_RELEASE);
    __atomic_store_n(&watched_port, port, __ATOMIC_RELEASE);
}

long conn_oracle_current(void) { return __atomic_load_n(&current_count, __ATOMIC_SEQ_CST); }

long conn_oracle_max(void) { return __atomic_load_n(&max_count, __ATOMIC_SEQ_CST); }

long conn_oracle_untracked(void) { return __atomic_load_n(&untracked_count, __ATOMIC_SEQ_CST); }

void conn_oracle_reset_max(void) {
    __atomic_store_n(&max_count, __atomic_load_n(&current_count, __ATOMIC_SEQ_CST),
                     __ATOMIC_SEQ_CST);
    /* A connect racing with the store must not be lost. */
    raise_max(__atomic_load_n(&current_count, __ATOMIC_SEQ_CST));
}
