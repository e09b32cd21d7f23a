/* Syscall-heavy workload for bench/sensor_bench.py: open + close of one file, N times, timed.
 * With RATE > 0 the loop is paced to RATE syscalls per second (the zero-loss sweep); 0 or absent: flat out.
 * Prints one JSON line: {"iterations": N, "seconds": S, "syscalls_per_s": R}. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double since(const struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s ITERATIONS PATH [RATE]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    const char *path = argv[2];
    double rate = argc == 4 ? atof(argv[3]) : 0.0;
    struct timespec a;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(path);
            return 1;
        }
        close(fd);
        if (rate > 0 && (i & 255) == 255) {
            double ahead = 2.0 * (double)(i + 1) / rate - since(&a); /* seconds ahead of schedule */
            if (ahead > 0) {
                struct timespec d = {(time_t)ahead, (long)((ahead - (double)(time_t)ahead) * 1e9)};
                nanosleep(&d, NULL);
            }
        }
    }
    double s = since(&a);
    printf("{\"iterations\": %ld, \"seconds\": %.6f, \"syscalls_per_s\": %.0f}\n", n, s, 2.0 * (double)n / s);
    return 0;
}
