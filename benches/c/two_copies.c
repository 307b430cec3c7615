// The bound on queue_large for any queue that copies an item in and out: a producer process
// copies 1 MiB items from a private buffer into a ring of `slots` 1 MiB slots in MAP_SHARED
// memory, at most `ahead` items ahead, and the parent copies each one out into a private
// buffer. No lock, no checks, no serialisation: two atomic counters, waiting by sched_yield.
// shmkit's queue_large (a 10 MiB ring, maxsize 8) does the same two copies.
//
// Build and run:  cc -O2 -o /tmp/two_copies benches/c/two_copies.c && /tmp/two_copies 10 8
#define _GNU_SOURCE
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

// Called through a volatile pointer, so that the compiler keeps every copy.
static void *(*volatile copy)(void *, const void *, size_t) = memcpy;

int main(int argc, char **argv) {
    const size_t n = 1 << 20;
    const long count = 4000;
    int slots = argc > 1 ? atoi(argv[1]) : 10, ahead = argc > 2 ? atoi(argv[2]) : 8;
    if (slots < 1 || ahead < 1 || ahead > slots) { fprintf(stderr, "usage: two_copies SLOTS AHEAD\n"); return 2; }
    char *shared = mmap(0, 4096 + (size_t)slots * n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 1; }
    _Atomic long *puts = (_Atomic long *)shared, *gets = (_Atomic long *)(shared + 128);
    char *ring = shared + 4096;
    memset(ring, 0, (size_t)slots * n);
    double t0 = now();
    if (fork() == 0) {
        char *item = malloc(n);
        memset(item, 'x', n);
        for (long i = 0; i < count; i++) {
            while (atomic_load(puts) - atomic_load(gets) >= ahead) sched_yield();
            copy(ring + (i % slots) * n, item, n);
            atomic_store(puts, i + 1);
        }
        _exit(0);
    }
    char *out = malloc(n);
    long sum = 0;
    for (long i = 0; i < count; i++) {
        while (atomic_load(puts) <= i) sched_yield();
        copy(out, ring + (i % slots) * n, n);
        sum += out[n - 1];
        atomic_store(gets, i + 1);
    }
    wait(0);
    printf("slots %d, ahead %d: %.0f items/s (check %ld)\n", slots, ahead, count / (now() - t0), sum / count);
    return 0;
}
