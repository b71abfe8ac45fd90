/*
 * jumper_preload.c - LD_PRELOAD shim that makes an unmodified daemon's TCP
 * listening socket receive connections handed off by jumper over a Unix
 * stream socket (SCM_RIGHTS, "socketbox"-style), so a stock daemon can run in
 * a network namespace that has no network at all and still serve.
 *
 * Configuration (environment variables, read once at load time):
 *
 *   JUMPER_PRELOAD_PORT=N       TCP port whose bind() is intercepted (any
 *                               AF_INET/AF_INET6 address, SOCK_STREAM only).
 *   JUMPER_PRELOAD_SOCKET=PATH  Unix socket path the shim listens on for
 *                               hand-offs. A stale *socket* at PATH (nobody
 *                               listening) is unlinked first; a live one, or
 *                               any other kind of file, makes listen() fail
 *                               with EADDRINUSE. Created with the process
 *                               umask.
 *   JUMPER_PRELOAD_DEBUG=1      Optional: log decisions to stderr.
 *
 * If either of the first two is absent (or the port is invalid) the library
 * has no effect at all: every wrapper passes straight through to libc.
 *
 * Hand-off wire protocol (version 1): the sender connects to PATH, sends one
 * message whose payload is exactly the byte 0x01 with an SCM_RIGHTS control
 * message carrying exactly one fd (a connected stream socket), then closes.
 * Malformed hand-offs are closed and skipped.
 *
 * Mechanism:
 *   bind(fd, port N)   remembered, NOT performed (the TCP socket stays unbound)
 *   getsockname(fd)    reports the remembered address
 *   listen(fd)         a Unix listening socket at PATH is dup3()'d over fd,
 *                      keeping fd's O_NONBLOCK and FD_CLOEXEC; poll/select/
 *                      epoll readiness on fd now means "a hand-off is waiting"
 *   accept/accept4(fd) accept the Unix connection, receive the handed-off fd,
 *                      apply SOCK_NONBLOCK/SOCK_CLOEXEC (O_NONBLOCK is set or
 *                      cleared explicitly), fill addr with its peer address
 *                      (converted to the listening socket's family for
 *                      IPv4 / IPv4-mapped IPv6) and return it
 *   setsockopt/getsockopt(fd) non-SOL_SOCKET options succeed silently once fd
 *                      is a Unix socket; SO_DOMAIN/SO_PROTOCOL report TCP
 *   close(fd)          forgets the state (and unlinks PATH in the process that
 *                      created it, if PATH is still our socket)
 *
 * Build:
 *   gcc -shared -fPIC -O2 -Wall -Wextra -D_GNU_SOURCE -fstack-protector-strong \
 *       -o native/preload/libjumper_preload.so native/preload/jumper_preload.c -ldl
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#define HANDOFF_VERSION 0x01
#define HANDOFF_RECV_TIMEOUT_MS 2000
#define MAX_FDS_PER_MSG 16

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*listen_fn)(int, int);
typedef int (*accept_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*accept4_fn)(int, struct sockaddr *, socklen_t *, int);
typedef int (*getsockname_fn)(int, struct sockaddr *, socklen_t *);
typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);
typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);
typedef int (*close_fn)(int);

static bind_fn real_bind;
static listen_fn real_listen;
static accept_fn real_accept;
static accept4_fn real_accept4;
static getsockname_fn real_getsockname;
static setsockopt_fn real_setsockopt;
static getsockopt_fn real_getsockopt;
static close_fn real_close;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;

/* Configuration. */
static int cfg_active;
static int cfg_debug;
static unsigned short cfg_port;
static char cfg_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* State of the single intercepted listening fd. */
static atomic_int claimed_fd = -1;   /* fd whose bind we faked, or -1 */
static atomic_int converted = 0;     /* 1 once claimed_fd is the Unix listener */
static struct sockaddr_storage saved_addr;
static socklen_t saved_len;
static pid_t creator_pid;
static dev_t created_dev;
static ino_t created_ino;

static void dbg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void dbg(const char *fmt, ...)
{
    if (!cfg_debug)
        return;
    int saved = errno;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof buf - 2)
        n = (int)(sizeof buf - 2);
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, "[jumper_preload] ", 17);
    w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
    errno = saved;
}

static void *must_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        /* Without the real symbol we cannot do anything sensible. */
        static const char msg[] = "[jumper_preload] fatal: dlsym(RTLD_NEXT) failed\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        abort();
    }
    return p;
}

static void do_init(void)
{
    int saved = errno;
    real_bind = (bind_fn)must_sym("bind");
    real_listen = (listen_fn)must_sym("listen");
    real_accept = (accept_fn)must_sym("accept");
    real_accept4 = (accept4_fn)must_sym("accept4");
    real_getsockname = (getsockname_fn)must_sym("getsockname");
    real_setsockopt = (setsockopt_fn)must_sym("setsockopt");
    real_getsockopt = (getsockopt_fn)must_sym("getsockopt");
    real_close = (close_fn)must_sym("close");

    const char *dbgenv = getenv("JUMPER_PRELOAD_DEBUG");
    cfg_debug = dbgenv && *dbgenv && strcmp(dbgenv, "0") != 0;

    const char *port = getenv("JUMPER_PRELOAD_PORT");
    const char *path = getenv("JUMPER_PRELOAD_SOCKET");
    if (!port && !path) {
        errno = saved;
        return; /* inert */
    }
    if (!port || !*port || !path || !*path) {
        dbg("JUMPER_PRELOAD_PORT and JUMPER_PRELOAD_SOCKET must both be set; inactive");
        errno = saved;
        return;
    }
    char *end = NULL;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (errno || !end || *end || p < 1 || p > 65535) {
        dbg("invalid JUMPER_PRELOAD_PORT '%s'; inactive", port);
        errno = saved;
        return;
    }
    if (strlen(path) >= sizeof cfg_path) {
        dbg("JUMPER_PRELOAD_SOCKET path too long; inactive");
        errno = saved;
        return;
    }
    cfg_port = (unsigned short)p;
    memcpy(cfg_path, path, strlen(path) + 1);
    cfg_active = 1;
    dbg("active: port %u, socket %s", (unsigned)cfg_port, cfg_path);
    errno = saved;
}

static inline void init(void)
{
    pthread_once(&init_once, do_init);
}

__attribute__((constructor)) static void jumper_preload_ctor(void)
{
    init();
}

static inline int is_converted_fd(int fd)
{
    return fd >= 0 && atomic_load(&claimed_fd) == fd && atomic_load(&converted);
}

static inline int is_claimed_fd(int fd)
{
    return fd >= 0 && atomic_load(&claimed_fd) == fd;
}

static int bind_port_matches(const struct sockaddr *addr, socklen_t len)
{
    if (!addr)
        return 0;
    if (len >= (socklen_t)sizeof(struct sockaddr_in) && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return ntohs(in->sin_port) == cfg_port;
    }
    if (len >= (socklen_t)sizeof(struct sockaddr_in6) && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        return ntohs(in6->sin6_port) == cfg_port;
    }
    return 0;
}

static int socket_type(int fd)
{
    int type = 0;
    socklen_t l = sizeof type;
    if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) < 0)
        return -1;
    return type;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    init();
    if (!cfg_active || !bind_port_matches(addr, len))
        return real_bind(fd, addr, len);
    if (socket_type(fd) != SOCK_STREAM)
        return real_bind(fd, addr, len); /* e.g. UDP on the same port */

    pthread_mutex_lock(&state_lock);
    int cur = atomic_load(&claimed_fd);
    if (cur == fd) {
        pthread_mutex_unlock(&state_lock);
        errno = EINVAL; /* already "bound" */
        return -1;
    }
    if (cur >= 0) {
        pthread_mutex_unlock(&state_lock);
        dbg("bind(fd %d) to port %u: fd %d already intercepted; passing through", fd,
            (unsigned)cfg_port, cur);
        return real_bind(fd, addr, len);
    }
    size_t copy = len > (socklen_t)sizeof saved_addr ? sizeof saved_addr : (size_t)len;
    memset(&saved_addr, 0, sizeof saved_addr);
    memcpy(&saved_addr, addr, copy);
    saved_len = addr->sa_family == AF_INET ? (socklen_t)sizeof(struct sockaddr_in)
                                           : (socklen_t)sizeof(struct sockaddr_in6);
    atomic_store(&converted, 0);
    atomic_store(&claimed_fd, fd);
    pthread_mutex_unlock(&state_lock);
    dbg("bind(fd %d) to port %u intercepted", fd, (unsigned)cfg_port);
    return 0;
}

/* Is the socket file at sun stale? Only a refused connect (ECONNREFUSED:
 * nobody listens) says so, as for jumper's own listeners; anything else
 * (connected, a full backlog, EACCES, a datagram socket, no descriptor to
 * probe with) may be a live listener, whose path must not be taken. */
static int socket_is_stale(const struct sockaddr_un *sun)
{
    int p = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (p < 0)
        return 0;
    int stale = connect(p, (const struct sockaddr *)sun, (socklen_t)sizeof *sun) < 0 &&
                (errno == ECONNREFUSED || errno == ENOENT);
    real_close(p);
    return stale;
}

/* Create the Unix listening socket at cfg_path; returns its fd or -1/errno. */
static int make_unix_listener(int backlog)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, cfg_path, strlen(cfg_path) + 1);

    struct stat st;
    if (lstat(cfg_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dbg("%s exists and is not a socket; refusing to replace it", cfg_path);
            errno = EADDRINUSE;
            return -1;
        }
        /* Only a stale socket is replaced: another process listening there
         * keeps its path (as jumper's own Unix listeners do). */
        if (!socket_is_stale(&sun)) {
            dbg("%s may have a live listener; refusing to replace it", cfg_path);
            errno = EADDRINUSE;
            return -1;
        }
        if (unlink(cfg_path) < 0 && errno != ENOENT)
            return -1;
    }

    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u < 0)
        return -1;
    if (real_bind(u, (struct sockaddr *)&sun, (socklen_t)sizeof sun) < 0 ||
        real_listen(u, backlog) < 0) {
        int e = errno;
        real_close(u);
        errno = e;
        return -1;
    }
    if (stat(cfg_path, &st) == 0) {
        created_dev = st.st_dev;
        created_ino = st.st_ino;
        creator_pid = getpid();
    }
    return u;
}

int listen(int fd, int backlog)
{
    init();
    if (!cfg_active || !is_claimed_fd(fd))
        return real_listen(fd, backlog);

    pthread_mutex_lock(&state_lock);
    if (atomic_load(&claimed_fd) != fd) {
        pthread_mutex_unlock(&state_lock);
        return real_listen(fd, backlog);
    }
    if (atomic_load(&converted)) {
        /* Already the Unix listener: e.g. a backlog change. */
        pthread_mutex_unlock(&state_lock);
        return real_listen(fd, backlog);
    }
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    if (fl < 0 || fdfl < 0) {
        int e = errno;
        pthread_mutex_unlock(&state_lock);
        errno = e;
        return -1;
    }
    int u = make_unix_listener(backlog);
    if (u < 0) {
        int e = errno;
        pthread_mutex_unlock(&state_lock);
        dbg("listen(fd %d): cannot listen on %s: %s", fd, cfg_path, strerror(e));
        errno = e;
        return -1;
    }
    if ((fl & O_NONBLOCK) && fcntl(u, F_SETFL, fcntl(u, F_GETFL) | O_NONBLOCK) < 0)
        goto fail;
    if (dup3(u, fd, (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
        goto fail;
    real_close(u);
    atomic_store(&converted, 1);
    pthread_mutex_unlock(&state_lock);
    dbg("listen(fd %d): now receiving hand-offs on %s", fd, cfg_path);
    return 0;

fail: {
    int e = errno;
    real_close(u);
    unlink(cfg_path);
    pthread_mutex_unlock(&state_lock);
    errno = e;
    return -1;
}
}

/* Convert a peer address to the family of the listening socket when that is
 * lossless (IPv4 <-> IPv4-mapped IPv6), so daemons that assume the listening
 * family get what a kernel accept() on that socket would have produced. */
static void normalize_family(struct sockaddr_storage *ss, socklen_t *len)
{
    int want = saved_addr.ss_family;
    if (ss->ss_family == want)
        return;
    if (ss->ss_family == AF_UNIX && (want == AF_INET || want == AF_INET6)) {
        /* A socket-pair end (jumper server/client hand-off): there is no IP
         * peer. The daemon asked for an address of its own family and would
         * read past the 2-byte AF_UNIX one (Python's http.server fails on
         * it); give the unspecified address, port 0. Not loopback: that
         * could pass an "allow 127.0.0.1" check meant for local clients. */
        memset(ss, 0, sizeof *ss);
        ss->ss_family = (sa_family_t)want;
        *len = want == AF_INET ? (socklen_t)sizeof(struct sockaddr_in) : (socklen_t)sizeof(struct sockaddr_in6);
        return;
    }
    if (want == AF_INET && ss->ss_family == AF_INET6) {
        struct sockaddr_in6 in6;
        memcpy(&in6, ss, sizeof in6);
        if (!IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr))
            return;
        struct sockaddr_in in;
        memset(&in, 0, sizeof in);
        in.sin_family = AF_INET;
        in.sin_port = in6.sin6_port;
        memcpy(&in.sin_addr, &in6.sin6_addr.s6_addr[12], 4);
        memset(ss, 0, sizeof *ss);
        memcpy(ss, &in, sizeof in);
        *len = (socklen_t)sizeof in;
    } else if (want == AF_INET6 && ss->ss_family == AF_INET) {
        struct sockaddr_in in;
        memcpy(&in, ss, sizeof in);
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = in.sin_port;
        in6.sin6_addr.s6_addr[10] = 0xff;
        in6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&in6.sin6_addr.s6_addr[12], &in.sin_addr, 4);
        memset(ss, 0, sizeof *ss);
        memcpy(ss, &in6, sizeof in6);
        *len = (socklen_t)sizeof in6;
    }
}

/* Receive one hand-off on the accepted Unix connection u (which is closed
 * here in every case). Returns the handed-off fd (FD_CLOEXEC set) or -1 if the
 * hand-off was malformed. */
static int receive_handoff(int u)
{
    struct timeval tv = {HANDOFF_RECV_TIMEOUT_MS / 1000, (HANDOFF_RECV_TIMEOUT_MS % 1000) * 1000};
    (void)real_setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, (socklen_t)sizeof tv);

    unsigned char payload[16];
    struct iovec iov = {payload, sizeof payload};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MSG)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;

    ssize_t n;
    do {
        n = recvmsg(u, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    int recv_errno = errno;
    real_close(u);

    int fds[MAX_FDS_PER_MSG];
    int nfds = 0;
    if (n >= 0) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t bytes = c->cmsg_len - CMSG_LEN(0);
            size_t k = bytes / sizeof(int);
            for (size_t i = 0; i < k && nfds < MAX_FDS_PER_MSG; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
    }

    const char *why = NULL;
    if (n < 0)
        why = "recvmsg failed";
    else if (n != 1)
        why = "payload is not exactly 1 byte";
    else if (payload[0] != HANDOFF_VERSION)
        why = "unknown protocol version byte";
    else if ((msg.msg_flags & MSG_CTRUNC) && nfds == 0)
        why = "descriptor dropped by the kernel: at the fd limit (EMFILE), or refused by a security module";
    else if (msg.msg_flags & MSG_CTRUNC)
        why = "control data truncated";
    else if (nfds != 1)
        why = "not exactly one fd";
    else if (socket_type(fds[0]) != SOCK_STREAM)
        why = "fd is not a stream socket";

    if (why) {
        dbg("malformed hand-off skipped: %s (n=%zd, fds=%d, errno=%s)", why, n, nfds,
            n < 0 ? strerror(recv_errno) : "-");
        for (int i = 0; i < nfds; i++)
            real_close(fds[i]);
        return -1;
    }
    return fds[0];
}

static int handoff_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
        errno = EINVAL;
        return -1;
    }
    if (addr && !addrlen) {
        errno = EFAULT;
        return -1;
    }
    for (;;) {
        int u = real_accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (u < 0)
            return -1; /* EAGAIN/EWOULDBLOCK/EINTR/... pass through */

        int cfd = receive_handoff(u);
        if (cfd < 0)
            continue;

        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        memset(&peer, 0, sizeof peer);
        if (getpeername(cfd, (struct sockaddr *)&peer, &plen) < 0) {
            dbg("handed-off socket is not connected (%s); skipped", strerror(errno));
            real_close(cfd);
            continue;
        }

        int fl = fcntl(cfd, F_GETFL);
        if (fl < 0)
            goto bad;
        int want = (flags & SOCK_NONBLOCK) ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        if (want != fl && fcntl(cfd, F_SETFL, want) < 0)
            goto bad;
        if (!(flags & SOCK_CLOEXEC) && fcntl(cfd, F_SETFD, 0) < 0)
            goto bad;

        if (addr) {
            normalize_family(&peer, &plen);
            socklen_t avail = *addrlen;
            memcpy(addr, &peer, avail < plen ? (size_t)avail : (size_t)plen);
            *addrlen = plen;
        }
        dbg("accepted hand-off as fd %d", cfd);
        return cfd;

    bad:
        dbg("cannot set flags on handed-off fd: %s; skipped", strerror(errno));
        real_close(cfd);
    }
}

int accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    init();
    if (!cfg_active || !is_converted_fd(fd))
        return real_accept(fd, addr, addrlen);
    return handoff_accept(fd, addr, addrlen, 0);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    init();
    if (!cfg_active || !is_converted_fd(fd))
        return real_accept4(fd, addr, addrlen, flags);
    return handoff_accept(fd, addr, addrlen, flags);
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    init();
    if (!cfg_active || !is_claimed_fd(fd))
        return real_getsockname(fd, addr, addrlen);
    if (!addr || !addrlen) {
        errno = EFAULT;
        return -1;
    }
    pthread_mutex_lock(&state_lock);
    if (atomic_load(&claimed_fd) != fd) {
        pthread_mutex_unlock(&state_lock);
        return real_getsockname(fd, addr, addrlen);
    }
    socklen_t avail = *addrlen;
    memcpy(addr, &saved_addr, avail < saved_len ? (size_t)avail : (size_t)saved_len);
    *addrlen = saved_len;
    pthread_mutex_unlock(&state_lock);
    return 0;
}

/* An AF_UNIX stream socket whose peer is unnamed: what jumper server and
 * client hand off (the accepted end of a connection to their rendezvous
 * socket). accept() gave the daemon an IP address for it, so the daemon sets
 * TCP options (nginx: TCP_NODELAY) and may treat a failure as a broken
 * connection. The check is by shape: the daemon's own socket pairs, and
 * connections its own Unix listeners accept from unbound clients, match too;
 * there a TCP option would have failed and now succeeds without effect. */
static int is_pair_end(int fd)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    return socket_type(fd) == SOCK_STREAM && getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 &&
           peer.ss_family == AF_UNIX && plen <= (socklen_t)sizeof(sa_family_t);
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
    init();
    if (!cfg_active || !is_converted_fd(fd)) {
        int caller_errno = errno;
        int rc = real_setsockopt(fd, level, name, val, len);
        if (rc < 0 && cfg_active && level != SOL_SOCKET && (errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
            int failed = errno;
            if (is_pair_end(fd)) {
                dbg("setsockopt(fd %d, level %d, %d) on a Unix socket with an unnamed peer (a hand-off): ignored", fd, level, name);
                errno = caller_errno;
                return 0;
            }
            errno = failed;
        }
        return rc;
    }
    /* fd is now a Unix socket: TCP/IP-level options make no sense on it. */
    if (level != SOL_SOCKET)
        return 0;
    int saved = errno;
    if (real_setsockopt(fd, level, name, val, len) < 0) {
        dbg("setsockopt(fd %d, SOL_SOCKET, %d) ignored: %s", fd, name, strerror(errno));
        errno = saved;
    }
    return 0;
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
    init();
    if (!cfg_active || !is_converted_fd(fd))
        return real_getsockopt(fd, level, name, val, len);
    if (level == SOL_SOCKET && val && len && *len >= (socklen_t)sizeof(int)) {
        if (name == SO_DOMAIN) {
            int v = saved_addr.ss_family;
            memcpy(val, &v, sizeof v);
            *len = sizeof v;
            return 0;
        }
        if (name == SO_PROTOCOL) {
            int v = IPPROTO_TCP;
            memcpy(val, &v, sizeof v);
            *len = sizeof v;
            return 0;
        }
    }
    int saved = errno;
    int r = real_getsockopt(fd, level, name, val, len);
    if (r < 0 && level != SOL_SOCKET && val && len) {
        /* e.g. IPV6_V6ONLY / TCP_* on what is now a Unix socket: report 0. */
        memset(val, 0, *len);
        if (*len > (socklen_t)sizeof(int))
            *len = sizeof(int);
        errno = saved;
        return 0;
    }
    return r;
}

int close(int fd)
{
    init();
    if (fd >= 0 && atomic_load(&claimed_fd) == fd) {
        pthread_mutex_lock(&state_lock);
        if (atomic_load(&claimed_fd) == fd) {
            if (atomic_load(&converted) && creator_pid == getpid()) {
                struct stat st;
                if (lstat(cfg_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
                    st.st_dev == created_dev && st.st_ino == created_ino)
                    unlink(cfg_path);
            }
            atomic_store(&converted, 0);
            atomic_store(&claimed_fd, -1);
            dbg("close(fd %d): intercepted listener released", fd);
        }
        pthread_mutex_unlock(&state_lock);
    }
    return real_close(fd);
}
