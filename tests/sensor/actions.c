// Tiny real actions for the capture tests: `actions MODE [ARGS...]` does exactly the syscalls of MODE.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void *thread_main(void *arg) { return arg; }

// In a non-PIE binary these live below 4 GiB, so 32-bit syscall arguments can point at them.
static char ia32_target[] = "ia32-target";
static char ia32_link[] = "ia32-link";

static int tcp_pair(int family, const char *addr, int *srv_out, int *cli_out, int *acc_out) {
    int srv = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof(*a);
    }
    if (bind(srv, (struct sockaddr *)&ss, len) < 0) return -1;
    listen(srv, 4);
    getsockname(srv, (struct sockaddr *)&ss, &len);
    int cli = socket(family, SOCK_STREAM, 0);
    if (connect(cli, (struct sockaddr *)&ss, len) < 0) return -1;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int acc = accept4(srv, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    *srv_out = srv; *cli_out = cli; *acc_out = acc;
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const char *p1 = argc > 2 ? argv[2] : "";
    const char *p2 = argc > 3 ? argv[3] : "";
    if (!strcmp(mode, "open")) {  // open a relative path (resolved against cwd), then an absolute one
        int fd = open(p1, O_RDONLY);
        close(fd);
        fd = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
        close(fd);
    } else if (!strcmp(mode, "openat")) {  // openat relative to a directory fd, and a failing one
        int dfd = open(p1, O_RDONLY | O_DIRECTORY);
        int fd = openat(dfd, p2, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        close(fd);
        openat(AT_FDCWD, "/nonexistent/peregrine", O_RDONLY);
    } else if (!strcmp(mode, "openat2")) {
        struct open_how how = {.flags = O_RDONLY, .mode = 0, .resolve = RESOLVE_NO_SYMLINKS};
        int fd = syscall(SYS_openat2, AT_FDCWD, p1, &how, sizeof(how));
        close(fd);
    } else if (!strcmp(mode, "creat")) {
        int fd = creat(p1, 0600);
        close(fd);
    } else if (!strcmp(mode, "exit")) {
        exit(atoi(p1));
    } else if (!strcmp(mode, "fork")) {
        pid_t c = fork();
        if (c == 0) _exit(3);
        waitpid(c, 0, 0);
        pthread_t t;
        pthread_create(&t, 0, thread_main, 0);
        pthread_join(t, 0);
    } else if (!strcmp(mode, "exec")) {  // exec argv[2..]
        execv(argv[2], argv + 2);
        return 127;
    } else if (!strcmp(mode, "memfdexec")) {  // copy p1 into a memfd and execute it from there
        int src = open(p1, O_RDONLY);
        int m = memfd_create("peregrine-payload", 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(src, buf, sizeof(buf))) > 0) write(m, buf, n);
        char *args[] = {"payload", 0};
        char *env[] = {0};
        fexecve(m, args, env);
        return 127;
    } else if (!strcmp(mode, "execfail")) {
        char *args[] = {"nope", 0};
        execv("/nonexistent/peregrine-bin", args);
    } else if (!strcmp(mode, "chdir")) {
        chdir(p1);
        int fd = open(p2, O_RDONLY | O_DIRECTORY);
        fchdir(fd);
        int f2 = open("x", O_RDONLY);  // relative to the fchdir'ed cwd (fails, path still resolved)
        (void)f2;
    } else if (!strcmp(mode, "files")) {  // p1 = a scratch directory
        chdir(p1);
        mkdir("d", 0750);
        int dfd = open(".", O_RDONLY | O_DIRECTORY);
        mkdirat(dfd, "d2", 0700);
        int fd = creat("f", 0600);
        chmod("f", 0644);
        fchmod(fd, 0640);
        fchmodat(dfd, "f", 0600, 0);
        link("f", "hard");
        linkat(dfd, "f", dfd, "hard2", 0);
        symlink("f", "sym");
        symlinkat("/etc/passwd", dfd, "sym2");
        rename("hard", "hard.renamed");
        renameat(dfd, "hard2", dfd, "hard2.renamed");
        syscall(SYS_renameat2, dfd, "sym", dfd, "sym.renamed", 0);
        unlink("hard.renamed");
        unlinkat(dfd, "hard2.renamed", 0);
        unlinkat(dfd, "d2", AT_REMOVEDIR);
        rmdir("d");
        int d1 = dup(fd);
        dup2(fd, 40);
        dup3(fd, 41, O_CLOEXEC);
        (void)d1;
    } else if (!strcmp(mode, "tcp4") || !strcmp(mode, "tcp6")) {
        int srv, cli, acc;
        int fam = mode[3] == '4' ? AF_INET : AF_INET6;
        if (tcp_pair(fam, fam == AF_INET ? "127.0.0.1" : "::1", &srv, &cli, &acc) < 0) return 1;
        char buf[4] = "abc";
        send(cli, buf, 3, 0);
        recv(acc, buf, 3, 0);
        int d = dup(cli);
        (void)d;
    } else if (!strcmp(mode, "udp4")) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(p1))};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof(a));
        struct iovec iov = {.iov_base = "y", .iov_len = 1};
        struct msghdr msg = {.msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = &iov, .msg_iovlen = 1};
        sendmsg(s, &msg, 0);
    } else if (!strcmp(mode, "udpserver")) {  // a bound UDP socket receives one datagram from a client socket
        int srv = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        bind(srv, (struct sockaddr *)&a, sizeof(a));
        socklen_t len = sizeof(a);
        getsockname(srv, (struct sockaddr *)&a, &len);
        int cli = socket(AF_INET, SOCK_DGRAM, 0);
        sendto(cli, "x", 1, 0, (struct sockaddr *)&a, sizeof(a));
        struct sockaddr_in from;
        socklen_t flen = sizeof(from);
        char buf[4];
        recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
    } else if (!strcmp(mode, "unix")) {  // p1 = socket path
        int srv = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path, p1, sizeof(a.sun_path) - 1);
        bind(srv, (struct sockaddr *)&a, sizeof(a));
        listen(srv, 1);
        int cli = socket(AF_UNIX, SOCK_STREAM, 0);
        connect(cli, (struct sockaddr *)&a, sizeof(a));
        unlink(p1);
    } else if (!strcmp(mode, "misc")) {
        setuid(0);
        setgid(0);
        ptrace(PTRACE_PEEKDATA, 1, 0, 0);
        unshare(CLONE_NEWUTS);
        int ns = open("/proc/self/ns/uts", O_RDONLY);
        setns(ns, CLONE_NEWUTS);
        int m = memfd_create("peregrine-memfd", MFD_CLOEXEC);
        (void)m;
        syscall(SYS_bpf, 999, 0, 0);
        syscall(SYS_userfaultfd, O_CLOEXEC);
        syscall(SYS_init_module, 0, 0, "peregrine=1");
        int nul = open("/dev/null", O_RDONLY);
        syscall(SYS_finit_module, nul, "", 0);
    } else if (!strcmp(mode, "mount")) {  // p1 = a directory
        mount("none", p1, "tmpfs", 0, "");
        umount2(p1, 0);
    } else if (!strcmp(mode, "ia32")) {  // symlink through the 32-bit entry (nr 83; mkdir on x86_64)
        long r;
        asm volatile("int $0x80" : "=a"(r) : "a"(83), "b"(ia32_target), "c"(ia32_link) : "memory");
        return r == 0 ? 0 : 1;
    } else if (!strcmp(mode, "openloop")) {  // the benchmark workload: open/close N times
        long n = atol(p1);
        for (long i = 0; i < n; i++) close(open("/etc/hostname", O_RDONLY));
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
