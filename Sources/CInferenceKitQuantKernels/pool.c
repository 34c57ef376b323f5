// A persistent worker pool for the quantized products. See ikq_matmul_pooled in the header.
//
// Why not DispatchQueue.concurrentPerform: a decode GEMV of a 4096×4096 Q4_0 matrix streams 9.4 MB
// in about 200 µs, and waking a parked worker thread through the kernel costs tens of microseconds
// on a virtual machine. The pool's workers spin (with PAUSE) for a short while after each job, so
// back-to-back products — every layer of a decode step — start on all threads at once; past the spin
// window they sleep on a condition variable and cost nothing.
#include "CInferenceKitQuantKernels.h"

#if defined(__unix__) || defined(__APPLE__)
#define IKQ_POOL 1
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#endif

#if IKQ_POOL

#define IKQ_POOL_MAX_WORKERS 63
#ifndef IKQ_POOL_SPIN_NS
#define IKQ_POOL_SPIN_NS 200000  // spin up to 200 µs for the next job before sleeping
#endif

static inline void ikq_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static inline int64_t ikq_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    int isa;
    const ikq_packed_matrix *w;
    const int8_t *q;
    const float *d, *s;
    int64_t tokens;
    float *out;
    int64_t out_stride;
    int parts;
    void (*fn)(void *context, int part, int parts);  // a generic job (ikq_parallel_pooled) when non-NULL
    void *context;
} ikq_job;

static struct {
    pthread_mutex_t busy;  // one job at a time; a second caller falls back (ikq_matmul_pooled returns -1)
    pthread_mutex_t lock;  // guards sleeping workers and the condition variable
    pthread_cond_t wake;
    int workers;           // threads started (grows, never shrinks)
    int generation;        // bumped once per job (atomic)
    int remaining;         // workers that have not finished with the current job yet (atomic)
    int sleepers;          // workers blocked on `wake` (under lock)
    ikq_job job;
} ikq_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, {0}};

/// Groups of part `i` of `parts`: even split points, so the AVX-512 path can pair groups in every part.
static void ikq_run_part(const ikq_job *job, int i) {
    if (job->fn) {
        job->fn(job->context, i, job->parts);
        return;
    }
    const int64_t groups = (job->w->rows + 7) / 8;
    const int64_t g0 = i == 0 ? 0 : (groups * i / job->parts) & ~(int64_t)1;
    const int64_t g1 = i == job->parts - 1 ? groups : (groups * (i + 1) / job->parts) & ~(int64_t)1;
    if (g0 < g1) ikq_matmul_isa(job->isa, job->w, job->q, job->d, job->s, job->tokens, job->out, job->out_stride, g0, g1);
}

typedef struct {
    int index;       // 1 … workers; part 0 is the caller's
    int generation;  // the generation when the thread was created (the caller holds `busy`)
} ikq_worker_start;

static void *ikq_worker(void *arg) {
    const ikq_worker_start start = *(const ikq_worker_start *)arg;
    free(arg);
    const int index = start.index;
    int seen = start.generation;
    for (;;) {
        int generation = __atomic_load_n(&ikq_pool.generation, __ATOMIC_ACQUIRE);
        if (generation == seen) {
            const int64_t until = ikq_now_ns() + IKQ_POOL_SPIN_NS;
            for (int spins = 0; generation == seen; spins++) {
                ikq_pause();
                generation = __atomic_load_n(&ikq_pool.generation, __ATOMIC_ACQUIRE);
                if ((spins & 255) == 255 && ikq_now_ns() > until) break;
            }
            if (generation == seen) {
                pthread_mutex_lock(&ikq_pool.lock);
                ikq_pool.sleepers++;
                while ((generation = __atomic_load_n(&ikq_pool.generation, __ATOMIC_ACQUIRE)) == seen)
                    pthread_cond_wait(&ikq_pool.wake, &ikq_pool.lock);
                ikq_pool.sleepers--;
                pthread_mutex_unlock(&ikq_pool.lock);
            }
        }
        seen = generation;
        // Published before the generation bump (release/acquire); the caller does not write the next
        // job before every worker has counted itself out of this one.
        const ikq_job job = ikq_pool.job;
        if (index < job.parts) ikq_run_part(&job, index);
        __atomic_fetch_sub(&ikq_pool.remaining, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

/// Online CPUs, read once: glibc's sysconf(_SC_NPROCESSORS_ONLN) reads /sys on every call (about
/// 5 µs here, 2–3 % of a 4096×4096 Q4_0 decode product).
static int ikq_online_cpus(void) {
    static int cpus = 0;
    int n = __atomic_load_n(&cpus, __ATOMIC_RELAXED);
    if (n == 0) {
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online >= 1 && online <= 4096 ? (int)online : 1;
        __atomic_store_n(&cpus, n, __ATOMIC_RELAXED);
    }
    return n;
}

/// In a child of fork() only the forking thread exists: forget the parent's workers and locks.
static void ikq_pool_after_fork_in_child(void) {
    pthread_mutex_init(&ikq_pool.busy, NULL);
    pthread_mutex_init(&ikq_pool.lock, NULL);
    pthread_cond_init(&ikq_pool.wake, NULL);
    ikq_pool.workers = 0;
    ikq_pool.sleepers = 0;
    ikq_pool.remaining = 0;
}

static pthread_once_t ikq_pool_fork_once = PTHREAD_ONCE_INIT;
static void ikq_pool_register_fork_handler(void) { pthread_atfork(NULL, NULL, ikq_pool_after_fork_in_child); }

static int ikq_pool_run(ikq_job job);

int ikq_matmul_pooled(int isa, const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                      float *out, int64_t out_stride, int threads) {
    const int64_t groups = (w->rows + 7) / 8;
    int parts = threads < 1 ? 1 : threads;
    if (parts > IKQ_POOL_MAX_WORKERS + 1) parts = IKQ_POOL_MAX_WORKERS + 1;
    // Spinning workers beyond the cores would only take turns on them: one part per online CPU at most.
    if (parts > ikq_online_cpus()) parts = ikq_online_cpus();
    if (parts > (groups + 1) / 2) parts = (int)((groups + 1) / 2);  // at least one group pair per part
    if (parts < 1) parts = 1;
    ikq_job job = {isa, w, q, d, s, tokens, out, out_stride, parts, NULL, NULL};
    return ikq_pool_run(job);
}

int ikq_parallel_pooled(void (*fn)(void *context, int part, int parts), void *context, int parts) {
    if (parts > IKQ_POOL_MAX_WORKERS + 1) parts = IKQ_POOL_MAX_WORKERS + 1;
    if (parts > ikq_online_cpus()) parts = ikq_online_cpus();
    if (parts < 1) parts = 1;
    ikq_job job = {0, NULL, NULL, NULL, NULL, 0, NULL, 0, parts, fn, context};
    return ikq_pool_run(job);
}

static int ikq_pool_run(ikq_job job) {
    const int parts = job.parts;
    if (parts == 1) {
        ikq_run_part(&job, 0);
        return 0;
    }
    if (pthread_mutex_trylock(&ikq_pool.busy) != 0) return -1;
    pthread_once(&ikq_pool_fork_once, ikq_pool_register_fork_handler);
    while (ikq_pool.workers < parts - 1) {
        ikq_worker_start *start = malloc(sizeof *start);
        if (!start) break;
        start->index = ikq_pool.workers + 1;
        start->generation = __atomic_load_n(&ikq_pool.generation, __ATOMIC_RELAXED);
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int ok = pthread_create(&thread, &attr, ikq_worker, start) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) {
            free(start);
            break;
        }
        ikq_pool.workers++;
    }
    if (ikq_pool.workers < parts - 1) {  // could not start enough threads
        pthread_mutex_unlock(&ikq_pool.busy);
        return -1;
    }
    ikq_pool.job = job;
    // Every started worker sees the bump and counts itself out; those whose index is ≥ parts do no work.
    __atomic_store_n(&ikq_pool.remaining, ikq_pool.workers, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ikq_pool.generation, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&ikq_pool.lock);
    if (ikq_pool.sleepers > 0) pthread_cond_broadcast(&ikq_pool.wake);
    pthread_mutex_unlock(&ikq_pool.lock);
    ikq_run_part(&job, 0);
    for (int spins = 0; __atomic_load_n(&ikq_pool.remaining, __ATOMIC_ACQUIRE) > 0; spins++) {
        ikq_pause();
        if ((spins & 1023) == 1023) sched_yield();  // a descheduled worker needs this core back
    }
    pthread_mutex_unlock(&ikq_pool.busy);
    return 0;
}

#else

int ikq_parallel_pooled(void (*fn)(void *context, int part, int parts), void *context, int parts) {
    (void)fn; (void)context; (void)parts;
    return -1;
}

int ikq_matmul_pooled(int isa, const ikq_packed_matrix *w, const int8_t *q, const float *d, const float *s, int64_t tokens,
                      float *out, int64_t out_stride, int threads) {
    (void)isa; (void)w; (void)q; (void)d; (void)s; (void)tokens; (void)out; (void)out_stride; (void)threads;
    return -1;
}

#endif
