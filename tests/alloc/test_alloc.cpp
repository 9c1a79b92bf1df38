// No heap allocation in a training step: malloc and friends are interposed for this test binary
// (glibc's __libc_* entry points do the work) and counted while a step runs, on every thread.
// Eigen's temporaries and std containers all reach malloc, so a count of 0 means the step ran on
// the arenas alone. Not built under a sanitizer, which interposes malloc itself.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "config/presets.h"
#include "train/trainer.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0};
// ROUTELAB_ALLOC_TRAP=1 stops at the first counted allocation (run under gdb, `bt` names the caller).
const bool g_trap = std::getenv("ROUTELAB_ALLOC_TRAP") != nullptr;
void count() {
    if (!g_counting.load(std::memory_order_relaxed)) return;
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    if (g_trap) std::raise(SIGTRAP);
}
}  // namespace

extern "C" {
void* malloc(size_t n) { return count(), __libc_malloc(n); }
void* calloc(size_t n, size_t s) { return count(), __libc_calloc(n, s); }
void* realloc(void* p, size_t n) { return count(), __libc_realloc(p, n); }
void free(void* p) { __libc_free(p); }
void* memalign(size_t a, size_t n) { return count(), __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { return count(), __libc_memalign(a, n); }
int posix_memalign(void** out, size_t a, size_t n) {
    count();
    *out = __libc_memalign(a, n);
    return *out ? 0 : ENOMEM;
}
}

namespace rl {

long allocations_in_steps(const char* preset, int steps) {
    auto cfg = preset_load(preset);
    EXPECT_TRUE(cfg.is_ok()) << preset;
    cfg->train.steps = 100;
    cfg->train.batch_size = 4;
    cfg->data.synthetic_docs = 100;
    auto s = trainer_create(*cfg);
    EXPECT_TRUE(s.is_ok()) << s.status.msg;
    trainer_step(**s);  // the first step may warm up thread pools and lazily made tables
    g_allocs = 0;
    g_counting = true;
    for (int i = 0; i < steps; i++) trainer_step(**s);
    g_counting = false;
    return g_allocs.load();
}

TEST(Alloc, InterposedMallocCounts) {
    g_allocs = 0;
    g_counting = true;
    void* p = std::malloc(64);
    g_counting = false;
    std::free(p);
    EXPECT_EQ(g_allocs.load(), 1) << "the counter must see a plain malloc, or the tests below prove nothing";
}

// No heap allocation in a training step, for every family of preset. What used to allocate, and
// would again if it came back: Eigen's GEMM packing buffers and GEMV temporaries, oneDNN's sgemm
// packing (a malloc per call), and libgomp's team for a parallel region nested in another one
// (parallel_for in util/threads.h avoids it). ROUTELAB_ALLOC_TRAP=1 under gdb names the caller.
class AllocFree : public ::testing::TestWithParam<const char*> {};
TEST_P(AllocFree, TrainingStepsTouchNoHeap) {
    const long n = allocations_in_steps(GetParam(), 3);
    std::printf("[alloc] %s: %ld heap allocations in 3 training steps\n", GetParam(), n);
    EXPECT_EQ(n, 0);
}
INSTANTIATE_TEST_SUITE_P(Presets, AllocFree,
                         ::testing::Values("seed-baseline", "seed-moh", "moe-top2-8", "switch-top1", "deepseek-shared",
                                           "mh-moe-h2", "moh-moe", "rustgpt-upstream", "deepseek-v3-style",
                                           "qwen-global-balance", "moh-head-bias"),
                         [](const auto& info) {
                             std::string n = info.param;
                             for (auto& ch : n) if (ch == '-') ch = '_';
                             return n;
                         });

}  // namespace rl
