// OpenMP thread index/count (1 and 0 without OpenMP) and a monotonic clock in seconds.
#pragma once
#include <chrono>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace rl {

inline int thread_count() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
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

// for (i in [0, n)) body(i): over the threads when `wide` and not already in a parallel region.
template <class Body>
void parallel_for(int n, bool wide, Body&& body) {
    if (wide && n > 1 && !in_parallel()) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) body(i);
    } else {
        for (int i = 0; i < n; i++) body(i);
    }
}

inline double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace rl
