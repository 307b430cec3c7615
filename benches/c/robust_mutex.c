// What robustness costs a process-shared pthread mutex, measured the way value_incr measures
// shmkit: N processes each do `lock; *v += 1.0; unlock` 5,000,000 times on one mutex in MAP_SHARED
// memory, the value in the mutex's cache line. Compares a plain mutex (the C reference's) with a
// robust error-checking one (shmkit's).
//
// Build and run:  cc -O2 -o /tmp/robust_mutex benches/c/robust_mutex.c -lpthread && /tmp/robust_mutex
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static double run(int robust, int procs) {
    const long per = 5000000;
    char *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    pthread_mutex_t *m = (pthread_mutex_t *)(page + 256);
    double *v = (double *)(page + 304); // shmkit's layout: lock at 256, value right after it
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (robust) {
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    }
    pthread_mutex_init(m, &a);
    double t = now();
    for (int k = 0; k < procs; k++)
        if (!fork()) {
            for (long i = 0; i < per; i++) { pthread_mutex_lock(m); *v += 1.0; pthread_mutex_unlock(m); }
            _exit(0);
        }
    for (int k = 0; k < procs; k++) wait(0);
    t = now() - t;
    if (*v != (double)per * procs) { fprintf(stderr, "lost increments\n"); _exit(1); }
    munmap(page, 4096);
    return per * procs / t / 1e6;
}

int main(void) {
    for (int procs = 1; procs <= 2; procs++) {
        double plain = run(0, procs), robust = run(1, procs);
        printf("%d process(es): plain %.1f Mops/s, robust %.1f Mops/s, robust/plain %.2f\n",
               procs, plain, robust, robust / plain);
    }
    return 0;
}
