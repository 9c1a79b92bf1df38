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

inline double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace rl
