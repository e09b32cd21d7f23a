/* Syscall-heavy workload for bench/sensor_bench.py: open + close of one file, N times, timed.
 * Prints one JSON line: {"iterations": N, "seconds": S, "syscalls_per_s": R}. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ITERATIONS PATH\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    const char *path = argv[2];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(path);
            return 1;
        }
        close(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("{\"iterations\": %ld, \"seconds\": %.6f, \"syscalls_per_s\": %.0f}\n", n, s, 2.0 * (double)n / s);
    return 0;
}
