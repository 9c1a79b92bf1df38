#include "infer/speed.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "backend/ops.h"
#include "infer/generate.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "model/model.h"
#include "optim/optim.h"
#include "util/threads.h"

namespace rl {

namespace {

using clock_t_ = std::chrono::steady_clock;

// Runs fn repeatedly for at least `seconds`; returns calls per second. Median over `repeats`.
template <class Fn>
double rate(Fn&& fn, double seconds, int repeats) {
    fn();  // warm up caches and the thread pool
    std::vector<double> r;
    for (int k = 0; k < repeats; k++) {
        int calls = 0;
        const auto t0 = clock_t_::now();
        double el = 0;
        do {
            fn();
            calls++;
            el = std::chrono::duration<double>(clock_t_::now() - t0).count();
        } while (el < seconds);
        r.push_back(calls / el);
    }
    std::sort(r.begin(), r.end());
    return r[r.size() / 2];
}

}  // namespace

SpeedReport speed_measure(const Config& cfg, double seconds, int repeats) {
    SpeedReport rep;
    rep.threads = thread_count();
    const ModelConfig& c = cfg.model;
    const int T = c.seq_len, V = c.vocab_size;
    Model m;
    model_create(m, c, cfg.train.seed, cfg.train.init_std);
    std::vector<float> am(m.params.data.size()), av(m.params.data.size());
    std::vector<unsigned char> mask(m.params.data.size(), 1);
    std::mt19937_64 rng(1);
    // Training as the trainer runs it (train.heads_path); the forward as inference runs it (skipping).
    const bool train_skip = cfg.train.heads_path == HeadsPath::skip;
    auto train_rate = [&](int B) {
        Activations a;
        activations_create(a, c, B, T);
        std::vector<int> tok((size_t)B * T), tgt((size_t)B * T);
        for (size_t i = 0; i < tok.size(); i++) tok[i] = (int)(rng() % V), tgt[i] = (int)(rng() % V);
        int t = 1;
        // A full optimizer step, as the trainer does it (AdamW at a tiny lr keeps the weights put).
        return B * T * rate([&] {
            model_zero_grad(m);
            model_forward(m, a, tok.data(), tgt.data(), B, T, {.skip = train_skip});
            model_backward(m, a, tok.data(), tgt.data());
            m.ops->grad_clip(m.grads.data.data(), m.grads.data.size(), 1.f);
            m.ops->adamw_update(m.params.data.data(), m.grads.data.data(), am.data(), av.data(), mask.data(),
                                m.params.data.size(), AdamWParams{1e-9f, 0.9f, 0.95f, 1e-8f, 0.f, t++});
        }, seconds, repeats);
    };
    rep.train_tok_s_b1 = train_rate(1);
    rep.train_tok_s_b16 = train_rate(16);
    {
        const int B = 16;
        Activations a;
        activations_create(a, c, B, T);
        std::vector<int> tok((size_t)B * T);
        for (auto& x : tok) x = (int)(rng() % V);
        rep.forward_tok_s_b16 =
            B * T * rate([&] { model_forward(m, a, tok.data(), nullptr, B, T, {.skip = true}); }, seconds, repeats);
    }
    {
        // Decode: a one-token prompt, then seq_len-1 cached steps (greedy, no early stop).
        const int n = T - 1;
        const int window = model_window(c, T, 4.f);
        SampleOptions o;
        o.temperature = 0.f;
        const double per_s = rate([&] { generate(m, {1}, n, o, -1, window); }, seconds, repeats);
        rep.decode_ms_per_token = 1000.0 / (per_s * T);
    }
    {
        const int N = 16 * T, C = c.d_model;
        std::vector<float> x((size_t)N * C), w((size_t)V * C), dx((size_t)N * C), dw((size_t)V * C),
            logits((size_t)N * V), losses(N);
        std::vector<int> tgt(N);
        for (auto& t : tgt) t = (int)(rng() % V);
        std::normal_distribution<float> nd(0.f, 0.02f);
        for (auto& v : x) v = nd(rng) * 50.f;
        for (auto& v : w) v = nd(rng);
        const double per_s = rate([&] {
            linear_forward(logits.data(), x.data(), w.data(), nullptr, N, C, V);
            crossentropy_forward(losses.data(), logits.data(), logits.data(), tgt.data(), N, V, nullptr);
            crossentropy_backward(logits.data(), logits.data(), tgt.data(), N, V, 1.f / N);  // in place, as dlogits
            linear_backward(dx.data(), dw.data(), nullptr, logits.data(), x.data(), w.data(), N, C, V);
        }, seconds, repeats);
        rep.lm_head_gflops = per_s * 3.0 * 2.0 * N * C * V / 1e9;
    }
    rep.flops_per_token_fwd = model_flops_per_token(c, T).total();
    rep.achieved_gflops = 3.0 * rep.flops_per_token_fwd * rep.train_tok_s_b16 / 1e9;
    rep.peak_gflops = speed_peak_gflops(std::min(seconds, 0.3), repeats);
    return rep;
}

namespace {

// 64-byte vectors: one zmm register with AVX-512, two ymm with AVX2 (GCC splits them).
typedef float v16f __attribute__((vector_size(64)));
constexpr int k_chains = 12;  // independent accumulators: enough to cover the FMA latency on 2 ports

// Runs `iters` rounds of k_chains vector FMAs; returns a value so the work is not optimised away.
__attribute__((noinline)) float fma_chains(long iters, float seed) {
    v16f acc[k_chains];
    for (int i = 0; i < k_chains; i++) acc[i] = v16f{} + seed * (i + 1);
    const v16f a = v16f{} + 0.999999f, b = v16f{} + 1e-7f;
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < k_chains; i++) acc[i] = acc[i] * a + b;  // contracted to one FMA (-ffp-contract=fast)
    float s = 0.f;
    for (int i = 0; i < k_chains; i++)
        for (int j = 0; j < 16; j++) s += acc[i][j];
    return s;
}

}  // namespace

double speed_peak_gflops(double seconds, int repeats) {
    const long iters = 1 << 20;  // 12 x 16 x 2 x 2^20 = 403 MFLOP per call per thread
    const double flops_per_call = 2.0 * 16 * k_chains * iters * thread_count();
    volatile float sink = 0.f;
    // The best of the measurements, not their median: a ceiling, which other work on the machine
    // can only lower.
    double best = 0;
    for (int k = 0; k < repeats; k++)
        best = std::max(best, rate(
                                  [&] {
                                      float s = 0.f;
#pragma omp parallel reduction(+ : s)
                                      s += fma_chains(iters, 1.f + thread_index());
                                      sink = sink + s;
                                  },
                                  seconds / repeats, 1));
    return best * flops_per_call / 1e9;
}

}  // namespace rl
