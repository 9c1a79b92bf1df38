// OpenMP thread index/count (1 and 0 without OpenMP), parallel_for, and a monotonic clock in seconds.
#pragma once
#include <chrono>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace rl {

constexpr int k_max_threads = 64;  // per-thread partial sums live in arrays of this size

inline int thread_count() {
#ifdef _OPENMP
    return omp_get_max_threads() < k_max_threads ? omp_get_max_threads() : k_max_threads;
#else
    return 1;
#endif
}

// Threads of the calling thread's later parallel regions (OpenMP's nthreads ICV is per thread).
inline void set_thread_count(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Inside an OpenMP parallel region. A nested `omp parallel` there runs on one thread anyway but
// still allocates a team in libgomp (even under a false `if` clause), so ops that may be called
// from a parallel region (an expert's FFN) go through parallel_for.
inline bool in_parallel() {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
}

// for (i in [0, n)) body(i): over the threads when `wide`, more than one thread is set and not
// already in a parallel region; otherwise a plain loop (libgomp mallocs and frees a team for every
// one-thread region, so none is opened). dynamic: iterations of uneven cost (experts).
template <class Body>
void parallel_for(int n, bool wide, Body&& body, bool dynamic = false) {
    if (wide && n > 1 && thread_count() > 1 && !in_parallel()) {
        if (dynamic) {
#pragma omp parallel for schedule(dynamic) num_threads(thread_count())
            for (int i = 0; i < n; i++) body(i);
        } else {
#pragma omp parallel for schedule(static) num_threads(thread_count())
            for (int i = 0; i < n; i++) body(i);
        }
    } else {
        for (int i = 0; i < n; i++) body(i);
    }
}

inline double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace rl
