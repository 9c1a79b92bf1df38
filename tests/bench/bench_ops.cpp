// Google Benchmark: each fast op next to its naive *_ref on the seed-baseline shapes
// (B 16, T 80, C 128, H 8, G 4, D 16, F 256), plus one full training step. Compare the
// fast/ref ratio printed in one run, not absolute times (the machine is shared).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "config/presets.h"
#include "layers/attention.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#ifdef ROUTELAB_BENCH_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif
#include "model/model.h"

using namespace rl;

namespace {
std::vector<float> randn(size_t n, unsigned seed) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}
constexpr int B = 16, T = 80, C = 128, H = 8, G = 4, D = 16, F = 256, P = 64;

template <bool Ref>
void BM_linear(benchmark::State& st) {
    auto x = randn((size_t)B * T * C, 1), w = randn((size_t)F * C, 2);
    std::vector<float> y((size_t)B * T * F);
    for (auto _ : st) {
        if (Ref) linear_forward_ref(y.data(), x.data(), w.data(), nullptr, B * T, C, F);
        else linear_forward(y.data(), x.data(), w.data(), nullptr, B * T, C, F);
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(st.iterations() * B * T);
}
BENCHMARK(BM_linear<false>)->Name("linear_forward/B16xT80 C128->F256");
BENCHMARK(BM_linear<true>)->Name("linear_forward_ref/B16xT80 C128->F256");

template <bool Ref>
void BM_attention(benchmark::State& st) {
    AttnDims d;
    d.B = B; d.T = T; d.H = H; d.G = G; d.D = D; d.npos = P;
    auto q = randn((size_t)B * T * H * D, 3), k = randn((size_t)B * T * G * D, 4), v = randn((size_t)B * T * G * D, 5);
    auto e = randn((size_t)H * P * D, 6);
    std::vector<float> y((size_t)B * T * H * D), att((size_t)B * H * T * T), gates(att.size()),
        scratch(attention_scratch_floats(d));
    for (auto _ : st) {
        if (Ref) attention_forward_ref(y.data(), att.data(), q.data(), k.data(), v.data(), e.data(), d);
        else attention_forward(y.data(), att.data(), gates.data(), nullptr, scratch.data(), q.data(), k.data(), v.data(), e.data(), d);
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(st.iterations() * B * T);
}
BENCHMARK(BM_attention<false>)->Name("attention_forward/CoPE B16xT80 H8 G4")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_attention<true>)->Name("attention_forward_ref/CoPE B16xT80 H8 G4")->Unit(benchmark::kMillisecond);

template <bool Ref>
void BM_rmsnorm(benchmark::State& st) {
    auto x = randn((size_t)B * T * C, 7), w = randn(C, 8);
    std::vector<float> y(x.size()), r(B * T);
    for (auto _ : st) {
        if (Ref) rmsnorm_forward_ref(y.data(), r.data(), x.data(), w.data(), B * T, C, 1e-5f);
        else rmsnorm_forward(y.data(), r.data(), x.data(), w.data(), B * T, C, 1e-5f);
        benchmark::DoNotOptimize(y.data());
    }
    st.SetItemsProcessed(st.iterations() * B * T);
}
BENCHMARK(BM_rmsnorm<false>)->Name("rmsnorm_forward/B16xT80 C128");
BENCHMARK(BM_rmsnorm<true>)->Name("rmsnorm_forward_ref/B16xT80 C128");

void BM_train_step(benchmark::State& st) {
    auto cfg = *preset_load("seed-baseline");
    cfg.model.vocab_size = 605;
    Model m;
    model_create(m, cfg.model, 1, 0.02f);
    Activations a;
    activations_create(a, cfg.model, B, T);
    std::vector<int> tok((size_t)B * T), tgt(tok.size());
    for (size_t i = 0; i < tok.size(); i++) tok[i] = (int)(i * 7 % 605), tgt[i] = (int)(i * 13 % 605);
    for (auto _ : st) {
        model_zero_grad(m);
        model_forward(m, a, tok.data(), tgt.data(), B, T);
        model_backward(m, a, tok.data(), tgt.data());
    }
    st.SetItemsProcessed(st.iterations() * B * T);
}
BENCHMARK(BM_train_step)->Name("forward+backward/seed-baseline B16 T80 V605")->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// Every GEMM shape of a seed-baseline step (W_O on, V 605) at B = 1 (80 rows) and B = 16 (1280 rows),
// forward y = x W^T and the two backward products dx += dy W, dW += dy^T x, through each library
// gemm.cpp can use. The fastest per case is what gemm_choice() picks (one thread: the bench pins
// none; run with OMP_NUM_THREADS=1 to compare kernels, 2 to see the threaded split).
namespace {
struct GemmCase {
    const char* name;
    bool ta, tb;
    int M, N, K;
};
// lib: "eigen", "xsmm" (through gemm_with) or "dnnl" (oneDNN's sgemm called here directly).
void BM_gemm(benchmark::State& st, std::string lib, GemmCase g) {
    const bool dnnl = lib == "dnnl";
    const GemmLib gl = lib == "xsmm" ? GemmLib::xsmm : GemmLib::eigen;
#ifndef ROUTELAB_BENCH_DNNL
    if (dnnl) {
        st.SkipWithError("oneDNN not found at configure time (apt install libdnnl-dev)");
        return;
    }
#endif
    if (!dnnl && !gemm_available(gl)) {
        st.SkipWithError("library not built in");
        return;
    }
    const int lda = g.ta ? g.M : g.K, ldb = g.tb ? g.K : g.N;
    auto a = randn((size_t)g.M * g.K, 11), b = randn((size_t)g.K * g.N, 12);
    std::vector<float> c((size_t)g.M * g.N);
    const float beta = g.ta ? 1.f : 0.f;
    for (auto _ : st) {
#ifdef ROUTELAB_BENCH_DNNL
        if (dnnl)
            dnnl_sgemm(g.ta ? 'T' : 'N', g.tb ? 'T' : 'N', g.M, g.N, g.K, 1.f, a.data(), lda, b.data(), ldb, beta,
                       c.data(), g.N);
        else
#endif
            gemm_with(gl, g.ta, g.tb, g.M, g.N, g.K, 1.f, a.data(), lda, b.data(), ldb, beta, c.data(), g.N);
        benchmark::DoNotOptimize(c.data());
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * g.M * g.N * g.K * st.iterations(), benchmark::Counter::kIsRate,
                                                benchmark::Counter::kIs1000);
}
const int k_gemm_registered = [] {
    std::vector<GemmCase> cases;
    // linear layers: (in, out) pairs of q, k/v, W_O, SwiGLU gate/up, down, LM head
    const int io[][2] = {{128, 128}, {128, 64}, {128, 256}, {256, 128}, {128, 605}};
    for (int rows : {80, 1280})
        for (auto [I, O] : io) {
            char buf[3][64];
            std::snprintf(buf[0], 64, "fwd_%dx%d.(%dx%d)^T", rows, I, O, I);
            std::snprintf(buf[1], 64, "dx_%dx%d.%dx%d", rows, O, O, I);
            std::snprintf(buf[2], 64, "dW_(%dx%d)^T.%dx%d", rows, O, rows, I);
            cases.push_back({strdup(buf[0]), false, true, rows, O, I});
            cases.push_back({strdup(buf[1]), false, false, rows, I, O});
            cases.push_back({strdup(buf[2]), true, false, O, I, rows});
        }
    // attention blocks: 16 query rows against up to 80 keys, head dim 16, CoPE 64 positions
    cases.push_back({"scores_16x16.16x80", false, false, 16, 80, 16});
    cases.push_back({"A.V_16x80.80x16", false, false, 16, 16, 80});
    cases.push_back({"dK_(16x80)^T.16x16", true, false, 80, 16, 16});
    cases.push_back({"copeZ_80x16.16x64", false, false, 80, 64, 16});
    for (const GemmCase& g : cases)
        for (std::string lib : {"eigen", "xsmm", "dnnl"})
            benchmark::RegisterBenchmark(("gemm/" + lib + "/" + g.name).c_str(),
                                         [lib, g](benchmark::State& st) { BM_gemm(st, lib, g); });
    return 0;
}();
}  // namespace

// BF16 weights (a checkpoint's experts, tensor/gemm_bf16.h): each kernel at the experts' shapes of
// granite-3.0-1b-a400m (C 1024, F 512) and OLMoE-1B-7B (C 2048, F 1024), with the rows one expert gets
// from a 256-token probe (256 x 8 / 32 = 64 and 256 x 8 / 64 = 32) and from one token. The weights cycle
// through 32 experts' worth (as a forward does), so they come from memory rather than cache, against
// float32 weights through gemm() at the same shapes. RL_BENCH_EXPERTS=1 keeps one expert's weights in
// cache instead (the kernels' own speed).
namespace {
struct Bf16Case {
    const char* name;
    int M, N, K;
};
constexpr int k_bench_packed = 3;  // gemm_bf16w_packed on weights packed before the timing
void BM_gemm_bf16(benchmark::State& st, int kernel, Bf16Case g) {  // kernel: a Bf16Kernel, k_bench_packed, or -1 float32
    const int experts = std::getenv("RL_BENCH_EXPERTS") ? std::atoi(std::getenv("RL_BENCH_EXPERTS")) : 32;
    auto a = randn((size_t)g.M * g.K, 21);
    std::vector<uint16_t> b((size_t)experts * g.N * g.K);
    std::vector<float> bf((size_t)experts * g.N * g.K);
    std::mt19937 gen(22);
    std::uniform_int_distribution<int> bits(0x3c00, 0x3d00);  // BF16 values near 0.01
    for (size_t i = 0; i < b.size(); i++) {
        b[i] = (uint16_t)bits(gen);
        const uint32_t u = (uint32_t)b[i] << 16;
        std::memcpy(&bf[i], &u, 4);
    }
    if (kernel >= 0 && kernel != (int)Bf16Kernel::widen && !bf16_dot_available()) {
        st.SkipWithError("no AVX512-BF16 on this CPU");
        return;
    }
    std::vector<uint16_t> packed;
    if (kernel == k_bench_packed) {
        const size_t per = bf16_packed_elements(g.N, g.K);
        packed.resize(per * experts);
        for (int x = 0; x < experts; x++) bf16_pack(b.data() + (size_t)x * g.N * g.K, g.N, g.K, packed.data() + per * x);
    }
    std::vector<float> c((size_t)g.M * g.N);
    int e = 0;
    for (auto _ : st) {
        const size_t off = (size_t)e * g.N * g.K;
        if (kernel < 0) gemm(false, true, g.M, g.N, g.K, 1.f, a.data(), g.K, bf.data() + off, g.K, 0.f, c.data(), g.N);
        else if (kernel == k_bench_packed)
            gemm_bf16w_packed(g.M, g.N, g.K, a.data(), g.K, packed.data() + bf16_packed_elements(g.N, g.K) * e, c.data(), g.N);
        else gemm_bf16w_with((Bf16Kernel)kernel, g.M, g.N, g.K, a.data(), g.K, b.data() + off, c.data(), g.N);
        benchmark::DoNotOptimize(c.data());
        e = (e + 1) % experts;
    }
    st.counters["GFLOP/s"] = benchmark::Counter(2.0 * g.M * g.N * g.K * st.iterations(), benchmark::Counter::kIsRate,
                                                benchmark::Counter::kIs1000);
}
const int k_gemm_bf16_registered = [] {
    const Bf16Case cases[] = {{"granite_up_64x(512x1024)^T", 64, 512, 1024},  {"granite_down_64x(1024x512)^T", 64, 1024, 512},
                              {"olmoe_up_32x(1024x2048)^T", 32, 1024, 2048},  {"olmoe_down_32x(2048x1024)^T", 32, 2048, 1024},
                              {"olmoe_up_1x(1024x2048)^T", 1, 1024, 2048}};
    const std::pair<const char*, int> kernels[] = {{"f32", -1}, {"widen", (int)Bf16Kernel::widen},
                                                   {"split", (int)Bf16Kernel::split}, {"bf16", (int)Bf16Kernel::bf16},
                                                   {"packed", k_bench_packed}};
    for (const Bf16Case& g : cases)
        for (auto [name, k] : kernels)
            benchmark::RegisterBenchmark((std::string("gemm_bf16/") + name + "/" + g.name).c_str(),
                                         [k = k, g](benchmark::State& st) { BM_gemm_bf16(st, k, g); });
    return 0;
}();
}  // namespace
