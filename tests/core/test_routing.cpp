// Routing layers: the MoH router and head gates, the MoE layer in every routing mode. Fast vs
// naive reference, and finite-difference gradients of every input and weight (router weights
// included) through the gates, the balance / aux losses and the z-loss. Top-k selections are held
// fixed while perturbing: they are part of the piece signature (gradcheck.h).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <optional>
#include <set>

#include "gradcheck.h"
#include "layers/head_router.h"
#include "layers/moe.h"
#include "layers/moe_router.h"
#include "config/presets.h"
#include "metrics/routing_report.h"
#include "train/step_stats.h"
#include "model/model.h"

using namespace rl;
using namespace rl::test;

namespace {
constexpr double k_tol = 2e-2;
double max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = std::max(m, (double)std::fabs(a[i] - b[i]));
    return m;
}
}  // namespace

TEST(TopK, TiesGoToTheLowestIndex) {
    const float v[] = {0.5f, 0.9f, 0.5f, 0.9f, 0.1f};
    int idx[3];
    topk_indices(idx, v, 5, 3);
    EXPECT_EQ(idx[0], 1);
    EXPECT_EQ(idx[1], 3);
    EXPECT_EQ(idx[2], 0);
}

struct RouterCase {
    const char* name;
    int H, S, K;
    bool paper;
};
class HeadRouter : public ::testing::TestWithParam<RouterCase> {};

TEST_P(HeadRouter, MatchesRefAndFiniteDifferences) {
    const RouterCase& rc = GetParam();
    HeadRouterDims d{11, 6, rc.H, rc.S, rc.K, rc.paper};
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R();
    auto x = randn((size_t)N * C, 1), ws = randn((size_t)std::max(S, 1) * C, 2), wr = randn((size_t)R * C, 3),
         wt = randn(2 * C, 4), Rg = randn((size_t)N * H, 5);
    std::vector<float> gates((size_t)N * H), gref((size_t)N * H), mref((size_t)N * R);
    std::vector<float> r((size_t)N * R), mask((size_t)N * R), ss((size_t)N * std::max(S, 1)), alpha(2 * N);
    HeadRouterSaved sv{r.data(), mask.data(), ss.data(), alpha.data()};
    const float* wsp = S ? ws.data() : nullptr;
    const float* wtp = S ? wt.data() : nullptr;
    std::vector<float> fscratch(head_router_forward_scratch_floats(d));
    head_router_forward(gates.data(), sv, x.data(), wsp, wr.data(), wtp, d, fscratch.data());
    head_router_forward_ref(gref.data(), mref.data(), x.data(), wsp, wr.data(), wtp, d);
    EXPECT_LT(max_abs_diff(gates.data(), gref.data(), gates.size()), 1e-5);
    EXPECT_EQ(mask, mref);
    for (int t = 0; t < N; t++) EXPECT_FLOAT_EQ(std::accumulate(&mask[t * R], &mask[t * R] + R, 0.f), (float)rc.K);
    if (!rc.paper && S > 0) {
        // Official scaling: sum of gates = 2 (a1 S) + 2 (a2 K) ... each part sums to 2 a S / 2 a K.
        for (int t = 0; t < N; t++) {
            float gs = 0, gr = 0;
            for (int i = 0; i < S; i++) gs += gates[t * H + i];
            for (int i = S; i < H; i++) gr += gates[t * H + i];
            EXPECT_NEAR(gs, 2 * alpha[2 * t] * S, 1e-4);
            EXPECT_NEAR(gr, 2 * alpha[2 * t + 1] * rc.K, 1e-4);
        }
    }

    const float lambda = 5.f;  // weight of the balance loss in the test loss (large: K = 1 learns only through it)
    std::vector<float> f(R), P(R);
    auto loss = [&] {
        head_router_forward(gates.data(), sv, x.data(), wsp, wr.data(), wtp, d, fscratch.data());
        return dot(gates, Rg) + lambda * head_router_balance(f.data(), P.data(), sv, d);
    };
    loss();
    std::vector<float> dx((size_t)N * C), dws(ws.size()), dwr(wr.size()), dwt(wt.size()),
        scratch(head_router_scratch_floats(d));
    head_router_backward(dx.data(), dws.data(), dwr.data(), dwt.data(), scratch.data(), Rg.data(), lambda, f.data(),
                         sv, x.data(), wsp, wr.data(), wtp, d);
    auto piece = [&] { return mask_piece(mask.data(), mask.size()); };
    std::vector<std::tuple<const char*, std::vector<float>*, std::vector<float>*>> checks = {{"x", &x, &dx}, {"w_routed", &wr, &dwr}};
    if (S) checks.push_back({"w_shared", &ws, &dws}), checks.push_back({"w_type", &wt, &dwt});
    for (auto& [name, p, g] : checks) {
        auto res = gradcheck(loss, p->data(), g->data(), p->size(), 0, 1e-2f, 1, piece);
        EXPECT_LT(res.max_err, k_tol) << res.describe(std::string(rc.name) + " d" + name);
    }
}
INSTANTIATE_TEST_SUITE_P(Variants, HeadRouter,
                         ::testing::Values(RouterCase{"official_s2_k4", 8, 2, 4, false},
                                           RouterCase{"paper_s2_k4", 8, 2, 4, true},
                                           RouterCase{"official_s0_k2", 6, 0, 2, false},
                                           RouterCase{"paper_s0_k2", 6, 0, 2, true},
                                           RouterCase{"official_k1", 6, 2, 1, false},
                                           RouterCase{"official_all_on", 6, 1, 5, false},
                                           RouterCase{"official_s6_k1", 8, 6, 1, false},
                                           RouterCase{"paper_s6_k1", 8, 6, 1, true}),
                         [](const auto& info) { return std::string(info.param.name); });

// MoH-LLaMA3's rule: the fast gates (threaded, float norms) equal the naive double-precision choice,
// the shared heads are always on, exactly K routed heads are, and r is a distribution.
TEST(HeadQueryNorm, MatchesRef) {
    const int N = 300, H = 8, S = 4, K = 2, D = 12;  // over k_parallel_rows: the threaded path
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    std::vector<float> q((size_t)N * H * D);
    for (auto& v : q) v = nd(rng);
    for (int t = 0; t < N; t++)  // heads of different scales, as in real projections
        for (int h = 0; h < H; h++)
            for (int j = 0; j < D; j++) q[((size_t)t * H + h) * D + j] *= 0.5f + 0.2f * h;
    const HeadRouterDims d{N, 1, H, S, K};
    std::vector<float> gates((size_t)N * H), ref((size_t)N * H), r((size_t)N * (H - S)), mask((size_t)N * (H - S));
    head_gates_query_norm(gates.data(), HeadRouterSaved{r.data(), mask.data(), nullptr, nullptr}, q.data(), d, D);
    head_gates_query_norm_ref(ref.data(), q.data(), d, D);
    EXPECT_EQ(gates, ref);
    for (int t = 0; t < N; t++) {
        float on = 0, sum = 0;
        for (int h = 0; h < S; h++) EXPECT_EQ(gates[(size_t)t * H + h], 1.f);
        for (int i = 0; i < H - S; i++) on += mask[(size_t)t * (H - S) + i], sum += r[(size_t)t * (H - S) + i];
        EXPECT_EQ(on, (float)K);
        EXPECT_NEAR(sum, 1.f, 1e-6);
    }
}

// JetMoE's attention experts: the fast gates (threaded) equal the naive double-precision ones; a head's
// gate is its expert's (head h in expert h % E), exactly k experts are on with gates summing to 1, and r
// is a distribution over the heads.
TEST(HeadExperts, MatchesRef) {
    const int N = 300, C = 16, E = 6, per = 2, H = E * per, k = 2;  // over k_parallel_rows: the threaded path
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    std::vector<float> x((size_t)N * C), w((size_t)E * C);
    for (auto& v : x) v = nd(rng);
    for (auto& v : w) v = 0.5f * nd(rng);
    const HeadRouterDims d{N, C, H, 0, k * per};
    std::vector<float> gates((size_t)N * H), ref((size_t)N * H), r((size_t)N * H), mask((size_t)N * H),
        scratch(head_router_forward_scratch_floats(d));
    head_gates_experts(gates.data(), HeadRouterSaved{r.data(), mask.data(), nullptr, nullptr}, x.data(), w.data(), d, E,
                       scratch.data());
    head_gates_experts_ref(ref.data(), x.data(), w.data(), d, E);
    for (size_t i = 0; i < gates.size(); i++) ASSERT_NEAR(gates[i], ref[i], 1e-6) << i;
    for (int t = 0; t < N; t++) {
        float on = 0, gsum = 0, rsum = 0;
        for (int h = 0; h < H; h++) {
            EXPECT_EQ(gates[(size_t)t * H + h], gates[(size_t)t * H + h % E]);
            EXPECT_EQ(mask[(size_t)t * H + h], gates[(size_t)t * H + h] != 0.f ? 1.f : 0.f);
            on += mask[(size_t)t * H + h], rsum += r[(size_t)t * H + h];
        }
        for (int e = 0; e < E; e++) gsum += gates[(size_t)t * H + e];
        EXPECT_EQ(on, (float)(k * per));
        EXPECT_NEAR(gsum, 1.f, 1e-5);
        EXPECT_NEAR(rsum, 1.f, 1e-5);
    }
}

TEST(HeadRouter, BackwardStaysInsideItsScratchWithMoreSharedThanRoutedHeads) {
    // H=8, S=6, K=1 passes validation; the shared heads' row once overflowed a scratch sized for
    // the routed ones. Canaries after the scratch must survive (ASan also sees it).
    for (bool paper : {false, true}) {
        HeadRouterDims d{7, 5, 8, 6, 1, paper};
        const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R();
        auto x = randn((size_t)N * C, 1), ws = randn((size_t)S * C, 2), wr = randn((size_t)R * C, 3),
             wt = randn(2 * C, 4), Rg = randn((size_t)N * H, 5);
        std::vector<float> gates((size_t)N * H), r((size_t)N * R), mask((size_t)N * R), ss((size_t)N * S), alpha(2 * N);
        std::vector<float> f(R), P(R), dx((size_t)N * C), dws(ws.size()), dwr(wr.size()), dwt(wt.size());
        HeadRouterSaved sv{r.data(), mask.data(), ss.data(), alpha.data()};
        std::vector<float> fscratch(head_router_forward_scratch_floats(d));
        head_router_forward(gates.data(), sv, x.data(), ws.data(), wr.data(), wt.data(), d, fscratch.data());
        head_router_balance(f.data(), P.data(), sv, d);
        const size_t n = head_router_scratch_floats(d), guard = 64;
        std::vector<float> scratch(n + guard, 12345.f);
        head_router_backward(dx.data(), dws.data(), dwr.data(), dwt.data(), scratch.data(), Rg.data(), 0.1f, f.data(),
                             sv, x.data(), ws.data(), wr.data(), wt.data(), d);
        for (size_t i = n; i < n + guard; i++) ASSERT_EQ(scratch[i], 12345.f) << "scratch overrun at +" << i - n;
    }
}

TEST(HeadRouter, KEqualsOneGivesTheRouterNoTaskGradient) {
    // The renormalised gate of the single active head is constant (minimind #858): with the
    // balance weight at 0 the routed weights receive exactly zero gradient.
    HeadRouterDims d{5, 4, 4, 0, 1, false};
    auto x = randn(20, 1), wr = randn(16, 2), Rg = randn(20, 3);
    std::vector<float> gates(20), r(20), mask(20), f(4), P(4), dx(20), dwr(16), scratch(head_router_scratch_floats(d));
    HeadRouterSaved sv{r.data(), mask.data(), nullptr, nullptr};
    head_router_forward(gates.data(), sv, x.data(), nullptr, wr.data(), nullptr, d, scratch.data());
    head_router_balance(f.data(), P.data(), sv, d);
    head_router_backward(dx.data(), nullptr, dwr.data(), nullptr, scratch.data(), Rg.data(), 0.f, f.data(), sv, x.data(),
                         nullptr, wr.data(), nullptr, d);
    for (float g : dwr) EXPECT_NEAR(g, 0.f, 1e-6);
}

TEST(HeadGate, FiniteDifferences) {
    const int N = 4, H = 3, D = 5;
    auto in = randn(N * H * D, 1), g = randn(N * H, 2), R = randn(N * H * D, 3);
    std::vector<float> out(in.size()), din(in.size()), dg(g.size());
    head_gate_backward(din.data(), dg.data(), R.data(), in.data(), g.data(), N, H, D);
    auto loss = [&] { head_gate_forward(out.data(), in.data(), g.data(), N, H, D); return dot(out, R); };
    auto r1 = gradcheck(loss, in.data(), din.data(), in.size());
    auto r2 = gradcheck(loss, g.data(), dg.data(), g.size());
    EXPECT_LT(r1.max_err, k_tol) << r1.describe("gate din");
    EXPECT_LT(r2.max_err, k_tol) << r2.describe("gate dgates");
}

// ---- MoE layer ----

struct MoeCase {
    const char* name;
    MoeRouting routing;
    int E, K, n_shared;
    float cf, jitter;
    void (*engine)(MoeDims&) = nullptr;  // engine-routing options (docs/routing-math.md §12)
    bool bias = false;                   // a random selection bias
    bool global = false;                 // global_aux_loss window counts
};

struct MoeFixture {
    MoeDims d;
    std::vector<float> router, noise;
    std::vector<std::vector<float>> ew;  // per expert (then shared): gate, up, down concatenated
    MoeWeights w, g;
    std::vector<std::vector<float>> gw;
    std::vector<float> gr, gn;
    std::vector<float> bufs;
    std::vector<float> bias, gcounts;    // (E) selection bias, window counts of earlier steps
    std::vector<int> ints;
    MoeSaved sv{};
    MoeStats st;

    explicit MoeFixture(const MoeDims& dd) : d(dd) {
        const int C = d.C, F = d.F, E = d.E;
        router = randn((size_t)E * C, 11, 0.8f);
        noise = randn((size_t)E * C, 12, 0.3f);
        gr.assign(router.size(), 0.f);
        gn.assign(noise.size(), 0.f);
        const int n_all = E + d.n_shared, Fs = d.shared_width();
        for (int e = 0; e < n_all; e++) {
            const int Fe = e < E ? F : Fs;
            ew.push_back(randn((size_t)3 * Fe * C, 100 + e, 0.5f));
            gw.emplace_back((size_t)3 * Fe * C, 0.f);
        }
        w.router = router.data();
        w.noise = noise.data();
        g.router = gr.data();
        g.noise = gn.data();
        for (int e = 0; e < n_all; e++) {
            const int Fe = e < E ? F : Fs;
            ExpertWeights a{ew[e].data(), ew[e].data() + Fe * C, ew[e].data() + 2 * Fe * C};
            ExpertWeights b{gw[e].data(), gw[e].data() + Fe * C, gw[e].data() + 2 * Fe * C};
            (e < E ? w.experts : w.shared).push_back(a);
            (e < E ? g.experts : g.shared).push_back(b);
        }
        const size_t N = d.N, A = d.max_assign(), ns = d.n_shared;
        bias = randn(E, 13, 0.3f);
        gcounts.assign(E, 0.f);
        for (int e = 0; e < E; e++) gcounts[e] = (float)(3 * e + 1);
        const size_t sizes[] = {N * C, N * C, N * E, N * E, N * E, N * E, N * E, A * C, A * F, A * F, A * F, A * C,
                                ns * N * Fs, ns * N * Fs, ns * N * Fs, ns * N * C, A, N * (size_t)d.K};
        bufs.assign(std::accumulate(std::begin(sizes), std::end(sizes), (size_t)0) + 16, 0.f);
        float* p = bufs.data();
        float** slots[] = {&sv.xr, &sv.jit, &sv.logits, &sv.probs, &sv.noisy, &sv.eps, &sv.noise_pre, &sv.xg, &sv.fa,
                           &sv.fb, &sv.fh, &sv.ye, &sv.sfa, &sv.sfb, &sv.sfh, &sv.sye, &sv.a_w, &sv.cw};
        for (int i = 0; i < 18; i++) *slots[i] = p, p += sizes[i];
        ints.assign(2 * A + E + 1 + N * d.K + 1 + moe_work_ints(d), 0);
        sv.a_token = ints.data();
        sv.a_expert = sv.a_token + A;
        sv.offset = sv.a_expert + A;
        sv.choice = sv.offset + E + 1;
        sv.n_assign = sv.choice + N * d.K;
        sv.work = sv.n_assign + 1;
    }
};

class Moe : public ::testing::TestWithParam<MoeCase> {};

// Qwen2-MoE's shared expert: wider than the routed ones and gated by sigmoid(w . x); plain top-k
// probabilities (norm_topk_prob false). Forward only (config_training_blocker).
TEST(MoeShared, WiderGatedSharedExpertMatchesRef) {
    MoeDims d;
    d.N = 10; d.C = 6; d.E = 5; d.K = 2; d.F = 4; d.n_shared = 1; d.Fs = 9; d.norm_topk = 0; d.training = false;
    MoeFixture fx(d);
    std::vector<float> gate = randn(d.C, 31, 0.7f);
    fx.w.shared_gate = gate.data();
    const auto x = randn((size_t)d.N * d.C, 32);
    std::vector<float> out((size_t)d.N * d.C), ref(out.size()), ungated(out.size());
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    moe_forward_ref(ref.data(), x.data(), fx.w, d);
    EXPECT_LT(max_abs_diff(out.data(), ref.data(), out.size()), 1e-5);
    for (int t = 0; t < d.N; t++) {  // plain probabilities: the two weights sum to less than 1
        const float* cw = fx.sv.cw + (size_t)t * d.K;
        EXPECT_LT(cw[0] + cw[1], 0.999f);
    }
    fx.w.shared_gate = nullptr;  // the gate is load-bearing
    moe_forward(ungated.data(), fx.st, fx.sv, x.data(), fx.w, d);
    EXPECT_GT(max_abs_diff(out.data(), ungated.data(), out.size()), 1e-3);
}

TEST_P(Moe, MatchesRefAndFiniteDifferences) {
    const MoeCase& mc = GetParam();
    MoeDims d;
    d.N = 12; d.C = 6; d.E = mc.E; d.K = mc.K; d.F = 5; d.n_shared = mc.n_shared;
    d.routing = mc.routing; d.capacity_factor = mc.cf; d.jitter = mc.jitter; d.training = true; d.noise_seed = 9;
    d.seq_rows = 4;
    if (mc.engine) mc.engine(d);
    MoeFixture fx(d);
    if (mc.bias) d.bias = fx.bias.data();
    if (mc.global) d.global_counts = fx.gcounts.data(), d.global_rows = 30;
    auto x = randn((size_t)d.N * d.C, 21), R = randn((size_t)d.N * d.C, 22);
    std::vector<float> out((size_t)d.N * d.C), ref(out.size());
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    const int A = *fx.sv.n_assign;
    if (mc.jitter == 0.f) {
        moe_forward_ref(ref.data(), x.data(), fx.w, d);
        EXPECT_LT(max_abs_diff(out.data(), ref.data(), out.size()), 1e-4) << "gather-based vs per-token reference";
    }
    // Every assignment is a real (token, expert) pair, grouped by expert.
    for (int e = 0; e < d.E; e++)
        for (int r = fx.sv.offset[e]; r < fx.sv.offset[e + 1]; r++) EXPECT_EQ(fx.sv.a_expert[r], e);
    if (mc.routing == MoeRouting::top1_capacity) {
        EXPECT_LE(A, d.E * d.capacity());
        for (int e = 0; e < d.E; e++) EXPECT_LE(fx.sv.offset[e + 1] - fx.sv.offset[e], d.capacity());
    }
    if (mc.routing == MoeRouting::expert_choice) {
        EXPECT_EQ(A, d.E * d.capacity());
    }
    float load_sum = 0;
    for (float l : fx.st.load) load_sum += l;
    EXPECT_NEAR(load_sum, 1.f, 1e-5);

    const float wa = 0.3f, wz = 0.05f;
    auto loss = [&] {
        moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
        return dot(out, R) + wa * fx.st.aux + wz * fx.st.zloss;
    };
    loss();
    std::vector<float> dx(x.size()), scratch(moe_scratch_floats(d));
    moe_backward(dx.data(), fx.g, scratch.data(), R.data(), x.data(), fx.st, fx.sv, fx.w, d, wa, wz);
    auto piece = [&] { return moe_piece(fx.sv, fx.ints.size()); };
    std::vector<std::tuple<std::string, float*, float*, size_t>> checks = {
        {"x", x.data(), dx.data(), x.size()}, {"router", fx.router.data(), fx.gr.data(), fx.router.size()}};
    if (mc.routing == MoeRouting::noisy_topk) checks.push_back({"noise", fx.noise.data(), fx.gn.data(), fx.noise.size()});
    for (size_t e = 0; e < fx.ew.size(); e++)
        checks.push_back({"expert" + std::to_string(e), fx.ew[e].data(), fx.gw[e].data(), fx.ew[e].size()});
    for (auto& [name, p, gp, n] : checks) {
        auto res = gradcheck(loss, p, gp, n, 60, 1e-2f, 1, piece);
        EXPECT_LT(res.max_err, k_tol) << res.describe(std::string(mc.name) + " d" + name);
    }
}
INSTANTIATE_TEST_SUITE_P(
    Routings, Moe,
    ::testing::Values(MoeCase{"topk", MoeRouting::topk, 4, 2, 0, 1.25f, 0.f},
                      MoeCase{"top1_capacity_drops", MoeRouting::top1_capacity, 4, 1, 0, 0.7f, 0.f},
                      MoeCase{"noisy_topk", MoeRouting::noisy_topk, 4, 2, 0, 1.25f, 1.f},
                      MoeCase{"expert_choice", MoeRouting::expert_choice, 4, 2, 0, 1.5f, 0.f},
                      MoeCase{"shared_unnormalised", MoeRouting::topk, 5, 2, 2, 1.25f, 0.f},
                      MoeCase{"topk_input_jitter", MoeRouting::topk, 4, 2, 0, 1.25f, 0.1f},
                      // engine routing: sigmoid scores, balance variants, gamma, groups, drop policy, bias
                      MoeCase{"sigmoid_top2", MoeRouting::topk, 6, 2, 0, 1.25f, 0.f,
                              [](MoeDims& d) { d.score = ScoreFunction::sigmoid; }},
                      MoeCase{"sigmoid_top1_capacity_probs", MoeRouting::top1_capacity, 4, 1, 0, 0.7f, 0.f,
                              [](MoeDims& d) { d.score = ScoreFunction::sigmoid, d.drop = TokenDropPolicy::probs; }},
                      MoeCase{"softmax_top1_capacity_probs", MoeRouting::top1_capacity, 4, 1, 0, 0.7f, 0.f,
                              [](MoeDims& d) { d.drop = TokenDropPolicy::probs; }},
                      MoeCase{"seq_aux", MoeRouting::topk, 4, 2, 0, 1.25f, 0.f,
                              [](MoeDims& d) { d.balance = LoadBalancing::seq_aux_loss; }},
                      MoeCase{"sigmoid_seq_aux_hf", MoeRouting::topk, 5, 2, 0, 1.25f, 0.f,
                              [](MoeDims& d) {
                                  d.score = ScoreFunction::sigmoid, d.balance = LoadBalancing::seq_aux_loss;
                                  d.aux = AuxConvention::hf;
                              }},
                      MoeCase{"global_aux", MoeRouting::topk, 4, 2, 0, 1.25f, 0.f,
                              [](MoeDims& d) { d.balance = LoadBalancing::global_aux_loss; }, false, true},
                      MoeCase{"no_balance_scaled", MoeRouting::topk, 4, 2, 1, 1.25f, 0.f,
                              [](MoeDims& d) { d.balance = LoadBalancing::none, d.topk_scale = 2.5f; }},
                      MoeCase{"softmax_bias_renormalised", MoeRouting::topk, 4, 2, 0, 1.25f, 0.f, nullptr, true},
                      MoeCase{"deepseek_v3_style", MoeRouting::topk, 8, 2, 1, 1.25f, 0.f,
                              [](MoeDims& d) {
                                  d.score = ScoreFunction::sigmoid, d.n_groups = 4, d.group_topk = 2;
                                  d.topk_scale = 2.5f, d.balance = LoadBalancing::seq_aux_loss;
                              },
                              true},
                      MoeCase{"groups_softmax_top4", MoeRouting::topk, 8, 4, 0, 1.25f, 0.f,
                              [](MoeDims& d) { d.n_groups = 4, d.group_topk = 2; }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Moe, CapacityDropsTheLatestTokensAndCountsThem) {
    MoeDims d;
    d.N = 12; d.C = 6; d.E = 4; d.K = 1; d.F = 5; d.routing = MoeRouting::top1_capacity; d.capacity_factor = 0.5f;
    MoeFixture fx(d);
    // Send every token to expert 2: make its router row dominate.
    for (int c = 0; c < d.C; c++) fx.router[2 * d.C + c] = 0.f;
    std::vector<float> x((size_t)d.N * d.C, 0.f), out(x.size());
    for (int t = 0; t < d.N; t++) x[(size_t)t * d.C] = 1.f;
    fx.router[2 * d.C] = 50.f;
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    const int cap = d.capacity();  // ceil(12/4 * 0.5) = 2
    EXPECT_EQ(cap, 2);
    EXPECT_EQ(*fx.sv.n_assign, cap);
    EXPECT_EQ(fx.sv.a_token[0], 0);  // earliest tokens win
    EXPECT_EQ(fx.sv.a_token[1], 1);
    EXPECT_NEAR(fx.st.dropped_frac, 10.f / 12.f, 1e-6);
    for (int t = cap; t < d.N; t++)
        for (int c = 0; c < d.C; c++) EXPECT_EQ(out[(size_t)t * d.C + c], 0.f) << "dropped tokens output 0";
    // Collapse shows in the aux loss: all f on one expert -> E * P_2 ~ E.
    EXPECT_GT(fx.st.aux, 3.5f);
    d.training = false;  // inference routes every token
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    EXPECT_EQ(*fx.sv.n_assign, d.N);
}

// Switch's capacity is ceil(N/E * cf). Where the product is a whole number every expert holds exactly
// that many tokens: a floor(x) + 1 rule (the same as ceil at every fractional product, which is all
// the test above uses) would keep one token too many.
TEST(Moe, CapacityAtAWholeNumberProductKeepsExactlyThatMany) {
    struct Case {
        int N, E;
        float cf;
        int cap;
    };
    for (const Case k : {Case{16, 4, 1.0f, 4}, Case{16, 4, 1.25f, 5}, Case{12, 4, 0.5f, 2}, Case{8, 2, 1.5f, 6}, Case{12, 3, 2.0f, 8}}) {
        MoeDims d;
        d.N = k.N; d.C = 6; d.E = k.E; d.K = 1; d.F = 5; d.routing = MoeRouting::top1_capacity; d.capacity_factor = k.cf;
        EXPECT_EQ(d.capacity(), k.cap) << k.N << "/" << k.E << " x " << k.cf;
        MoeFixture fx(d);
        for (int c = 0; c < d.C; c++) fx.router[(size_t)(k.E - 1) * d.C + c] = 0.f;
        fx.router[(size_t)(k.E - 1) * d.C] = 50.f;  // every token to the last expert: it fills and drops the rest
        std::vector<float> x((size_t)d.N * d.C, 0.f), out(x.size());
        for (int t = 0; t < d.N; t++) x[(size_t)t * d.C] = 1.f;
        moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
        EXPECT_EQ(*fx.sv.n_assign, k.cap) << k.N << "/" << k.E << " x " << k.cf;
        EXPECT_NEAR(fx.st.dropped_frac, float(k.N - k.cap) / k.N, 1e-6);
    }
    MoeDims ec;  // expert choice: each expert takes ceil(N * cf / E), whole here too
    ec.N = 16; ec.E = 4; ec.K = 1; ec.routing = MoeRouting::expert_choice; ec.capacity_factor = 2.0f;
    EXPECT_EQ(ec.capacity(), 8);
}

TEST(Moe, BalancedRouterGivesAuxOfOne) {
    // Switch convention: uniform probabilities and uniform choices give L_aux = E * sum (1/E)(1/E) = 1.
    MoeDims d;
    d.N = 8; d.C = 4; d.E = 4; d.K = 1; d.F = 3;
    MoeFixture fx(d);
    std::fill(fx.router.begin(), fx.router.end(), 0.f);
    std::vector<float> x((size_t)d.N * d.C), out(x.size());
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    // All ties -> expert 0 for every token (lowest index), P uniform: aux = E * 1 * 1/E = 1.
    EXPECT_NEAR(fx.st.aux, 1.f, 1e-6);
    EXPECT_NEAR(fx.st.zloss, std::pow(std::log(4.f), 2.f), 1e-5);
    EXPECT_NEAR(fx.st.entropy, std::log(4.f), 1e-5);
}

// ---- engine routing (docs/routing-math.md §12) ----

// The selection bias moves which experts a token takes, never the weights of the ones it takes:
// each kept weight is the rule's weight of the unbiased scores (DeepSeek-V3's gate).
TEST(EngineRouting, BiasChangesSelectionNotWeights) {
    MoeDims d;
    d.N = 12; d.C = 6; d.E = 6; d.K = 2; d.F = 4; d.score = ScoreFunction::sigmoid; d.topk_scale = 1.5f;
    MoeFixture fx(d);
    auto x = randn((size_t)d.N * d.C, 31);
    std::vector<float> out((size_t)d.N * d.C);
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    const std::vector<int> before(fx.sv.choice, fx.sv.choice + d.N * d.K);
    // An expert no token picked as its first choice gets a bias larger than any score gap.
    std::vector<int> first(d.E, 0);
    for (int t = 0; t < d.N; t++) first[before[(size_t)t * d.K]]++;
    const int boosted = (int)(std::min_element(first.begin(), first.end()) - first.begin());
    std::vector<float> bias(d.E, 0.f);
    bias[boosted] = 2.f;
    d.bias = bias.data();
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    int changed = 0;
    for (int t = 0; t < d.N; t++) {
        const int* ch = fx.sv.choice + (size_t)t * d.K;
        EXPECT_EQ(ch[0], boosted) << "token " << t << ": the bias puts the boosted expert first";
        changed += ch[0] != before[(size_t)t * d.K] || ch[1] != before[(size_t)t * d.K + 1];
        const float* s = fx.sv.probs + (size_t)t * d.E;  // sigmoid scores: the bias is not in them
        const float S = s[ch[0]] + s[ch[1]];
        for (int k = 0; k < d.K; k++) EXPECT_NEAR(fx.sv.cw[(size_t)t * d.K + k], 1.5f * s[ch[k]] / S, 1e-6);
    }
    EXPECT_EQ(changed, d.N) << "every token's selection moved";
    std::vector<float> ref(out.size());
    moe_forward_ref(ref.data(), x.data(), fx.w, d);
    EXPECT_LT(max_abs_diff(out.data(), ref.data(), out.size()), 1e-4);
}

// Interventions on a frozen model (MoeConfig::masked_experts): a masked expert is never chosen, each
// token takes its next best instead (the unmasked ranking otherwise kept), and the weights follow the
// same rule over the new choices; the naive reference agrees.
TEST(Interventions, MaskedExpertsAreNeverChosenAndTheNextBestTakeTheirPlace) {
    MoeDims d;
    d.N = 16; d.C = 6; d.E = 6; d.K = 2; d.F = 4; d.training = false;
    MoeFixture fx(d);
    auto x = randn((size_t)d.N * d.C, 41);
    std::vector<float> out((size_t)d.N * d.C), ref(out.size());
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    std::vector<int> count(d.E, 0);
    for (int i = 0; i < d.N * d.K; i++) count[fx.sv.choice[i]]++;
    const int busiest = (int)(std::max_element(count.begin(), count.end()) - count.begin());
    ASSERT_GT(count[busiest], 0);
    d.masked[busiest >> 6] |= uint64_t{1} << (busiest & 63), d.any_masked = true;
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    for (int t = 0; t < d.N; t++) {
        // expected: the top K of the router's logits with the masked one left out
        std::vector<int> order(d.E);
        std::iota(order.begin(), order.end(), 0);
        const float* z = fx.sv.logits + (size_t)t * d.E;
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return z[a] > z[b]; });
        order.erase(std::find(order.begin(), order.end(), busiest));
        for (int k = 0; k < d.K; k++) EXPECT_EQ(fx.sv.choice[(size_t)t * d.K + k], order[k]) << "token " << t;
    }
    moe_forward_ref(ref.data(), x.data(), fx.w, d);
    EXPECT_LT(max_abs_diff(out.data(), ref.data(), out.size()), 1e-4);
}

// MoeConfig::inference_capacity_factor: top-k routing outside training keeps at most ceil(N K cf / E)
// choices per expert (the earliest tokens under the position policy) and counts the rest as dropped;
// in training, and at 0, nothing changes.
TEST(Interventions, InferenceCapacityDropsOverflowOutsideTrainingOnly) {
    MoeDims d;
    d.N = 12; d.C = 6; d.E = 4; d.K = 2; d.F = 5; d.training = false; d.inference_capacity_factor = 0.5f;
    MoeFixture fx(d);
    for (int c = 0; c < d.C; c++) fx.router[2 * d.C + c] = fx.router[1 * d.C + c] = 0.f;
    fx.router[2 * d.C] = 50.f, fx.router[1 * d.C] = 40.f;  // every token: experts 2 then 1
    std::vector<float> x((size_t)d.N * d.C, 0.f), out(x.size());
    for (int t = 0; t < d.N; t++) x[(size_t)t * d.C] = 1.f;
    EXPECT_EQ(d.capacity(), 3);  // ceil(12 * 2 * 0.5 / 4)
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    EXPECT_EQ(*fx.sv.n_assign, 6) << "experts 1 and 2 keep 3 tokens each";
    for (int r = 0; r < *fx.sv.n_assign; r++) EXPECT_LT(fx.sv.a_token[r], 3) << "the earliest tokens win";
    EXPECT_NEAR(fx.st.dropped_frac, 9.f / 12.f, 1e-6);  // tokens that reached no expert
    d.training = true;
    EXPECT_EQ(d.capacity(), d.N);
    d.training = false, d.inference_capacity_factor = 0.f;
    EXPECT_EQ(d.capacity(), d.N);
}

// Over capacity the probs policy keeps an expert's highest-weight tokens, position its earliest.
TEST(EngineRouting, DropPolicyProbsKeepsTheHighestWeights) {
    MoeDims d;
    d.N = 12; d.C = 6; d.E = 4; d.K = 1; d.F = 5; d.routing = MoeRouting::top1_capacity; d.capacity_factor = 0.5f;
    MoeFixture fx(d);
    std::fill(fx.router.begin(), fx.router.end(), 0.f);
    fx.router[2 * d.C] = 1.f;  // logit of expert 2 = x_t0: every token picks 2, later tokens more surely
    std::vector<float> x((size_t)d.N * d.C, 0.f), out(x.size());
    for (int t = 0; t < d.N; t++) x[(size_t)t * d.C] = 1.f + 0.25f * t;
    for (TokenDropPolicy pol : {TokenDropPolicy::position, TokenDropPolicy::probs}) {
        d.drop = pol;
        moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
        ASSERT_EQ(*fx.sv.n_assign, 2);
        const bool probs = pol == TokenDropPolicy::probs;
        EXPECT_EQ(fx.sv.a_token[0], probs ? 10 : 0) << token_drop_policy_name(pol);
        EXPECT_EQ(fx.sv.a_token[1], probs ? 11 : 1) << token_drop_policy_name(pol);
        std::vector<float> ref(out.size());
        moe_forward_ref(ref.data(), x.data(), fx.w, d);
        EXPECT_LT(max_abs_diff(out.data(), ref.data(), out.size()), 1e-4) << token_drop_policy_name(pol);
    }
}

// Group-limited routing: a token's experts come from at most group_topk groups, and those are the
// groups whose best K/group_topk keys sum highest.
TEST(EngineRouting, GroupLimitedChoicesStayInTheirBestGroups) {
    MoeDims d;
    d.N = 40; d.C = 6; d.E = 8; d.K = 4; d.F = 3; d.n_groups = 4; d.group_topk = 2;
    MoeFixture fx(d);
    auto x = randn((size_t)d.N * d.C, 41);
    std::vector<float> out((size_t)d.N * d.C);
    moe_forward(out.data(), fx.st, fx.sv, x.data(), fx.w, d);
    int crossed = 0;  // tokens whose plain top-4 would have used more than 2 groups
    for (int t = 0; t < d.N; t++) {
        const float* z = fx.sv.logits + (size_t)t * d.E;
        std::vector<std::pair<float, int>> g;
        for (int k = 0; k < 4; k++) g.push_back({-(std::max(z[2 * k], z[2 * k + 1]) + std::min(z[2 * k], z[2 * k + 1])), k});
        std::sort(g.begin(), g.end());
        std::set<int> allowed = {g[0].second, g[1].second}, used;
        for (int k = 0; k < d.K; k++) used.insert(fx.sv.choice[(size_t)t * d.K + k] / 2);
        EXPECT_EQ(used, allowed) << "token " << t;
        std::vector<int> plain(d.K);
        topk_indices(plain.data(), z, d.E, d.K);
        std::set<int> pg;
        for (int e : plain) pg.insert(e / 2);
        crossed += pg.size() > 2;
    }
    EXPECT_GT(crossed, 0) << "the test needs tokens the group limit changes";
}

TEST(EngineRouting, BiasUpdateMovesAgainstTheLoad) {
    std::vector<float> b = {0.f, 0.f, 0.f, 0.f};
    const float load[] = {8.f, 5.f, 5.f, 2.f};  // choices per expert, mean 5
    route_bias_update(b.data(), load, 4, 1e-3f);
    EXPECT_FLOAT_EQ(b[0], -1e-3f);
    EXPECT_FLOAT_EQ(b[1], 0.f) << "sign(0) = 0";
    EXPECT_FLOAT_EQ(b[3], 1e-3f);
}

// head_bias: the routed-head mask follows r + b, the gates r; the reference agrees.
TEST(EngineRouting, HeadBiasChangesTheMaskNotTheGates) {
    HeadRouterDims d{10, 8, 6, 2, 2};
    auto x = randn((size_t)d.N * d.C, 51), ws = randn((size_t)d.S * d.C, 52), wr = randn((size_t)d.R() * d.C, 53),
         wt = randn((size_t)2 * d.C, 54);
    std::vector<float> gates((size_t)d.N * d.H), r((size_t)d.N * d.R()), mask(r.size()), ss((size_t)d.N * d.S),
        alpha((size_t)d.N * 2), scratch(head_router_scratch_floats(d));
    HeadRouterSaved sv{r.data(), mask.data(), ss.data(), alpha.data()};
    std::vector<float> bias = {0.f, 0.f, 0.f, 5.f};  // routed head 3 always chosen
    d.bias = bias.data();
    head_router_forward(gates.data(), sv, x.data(), ws.data(), wr.data(), wt.data(), d, scratch.data());
    std::vector<float> gref(gates.size()), mref(mask.size());
    head_router_forward_ref(gref.data(), mref.data(), x.data(), ws.data(), wr.data(), wt.data(), d);
    EXPECT_LT(max_abs_diff(gates.data(), gref.data(), gates.size()), 1e-5);
    EXPECT_EQ(mask, mref);
    for (int t = 0; t < d.N; t++) {
        EXPECT_EQ(mask[(size_t)t * d.R() + 3], 1.f);
        // official scaling: routed gate = 2 a2 K r_i m_i / sum r m, from the unbiased r
        float sel = 0.f;
        for (int i = 0; i < d.R(); i++) sel += r[(size_t)t * d.R() + i] * mask[(size_t)t * d.R() + i];
        const float a2 = alpha[2 * t + 1];
        EXPECT_NEAR(gates[(size_t)t * d.H + d.S + 3], 2.f * a2 * d.K * r[(size_t)t * d.R() + 3] / sel, 1e-5);
    }
}

TEST(MhMoe, FlopsMatchHelperFollowsTheSpec) {
    // d = 128, h = 2, SMoE of 8 experts of 256, top-2, SwiGLU (c = 3):
    // d_ff' = 256 - 2*128/(2*3) = 213.3 -> 213; E' = 2*8*256/213 = 19.2 -> 19.
    MhMoeMatch m = mh_moe_match_flops(128, 2, 8, 256, 2);
    EXPECT_EQ(m.d_ff_expert, 213);
    EXPECT_EQ(m.n_experts, 19);
    // Per-token expert FLOPs of the match stay within 2% of the SMoE's plus the head and merge layers.
    const double smoe = 2.0 * 3 * 128 * 256;
    const double mh = 2.0 * 2 * 3 * 64 * m.d_ff_expert + 2.0 * 128 * 128;
    EXPECT_NEAR(mh / smoe, 1.0, 0.02);
}

TEST(Nmi, IsOneForAFunctionAndZeroForIndependence) {
    EXPECT_NEAR(nmi({{10, 0, 0}, {0, 5, 0}, {0, 0, 7}}), 1.0, 1e-12);
    EXPECT_NEAR(nmi({{10, 20}, {5, 10}}), 0.0, 1e-12);
    const double mid = nmi({{10, 2}, {3, 9}});
    EXPECT_GT(mid, 0.0);
    EXPECT_LT(mid, 1.0);
}

TEST(Stats, CoefficientOfVariation) {
    const float flat[] = {0.25f, 0.25f, 0.25f, 0.25f};
    const float one[] = {1.f, 0.f, 0.f, 0.f};
    EXPECT_NEAR(stats_cv(flat, 4), 0.f, 1e-7);
    EXPECT_NEAR(stats_cv(one, 4), std::sqrt(3.f), 1e-6);  // collapse onto one of E: sqrt(E - 1)
}

TEST(LexClass, ClassifiesTokens) {
    EXPECT_EQ(lex_class_of("."), lex_punct);
    EXPECT_EQ(lex_class_of("42"), lex_number);
    EXPECT_EQ(lex_class_of("Paris"), lex_capitalised);
    EXPECT_EQ(lex_class_of("the"), lex_function);
    EXPECT_EQ(lex_class_of("The"), lex_function);
    EXPECT_EQ(lex_class_of("river"), lex_other);
    EXPECT_EQ(lex_class_of("\xe2\x96\x81" "river"), lex_other);  // SentencePiece word start
}

TEST(Config, RoutingWarningsAndGenerationBlocker) {
    Config c = *preset_load("seed-moh");
    EXPECT_TRUE(config_warnings(c).empty());
    c.model.attention.heads.n_active_routed = 1;
    auto w = config_warnings(c);
    ASSERT_EQ(w.size(), 1u);
    EXPECT_NE(w[0].find("balance loss"), std::string::npos);
    Config e = *preset_load("moe-top2-8");
    EXPECT_TRUE(config_generation_blocker(e.model).empty());
    e.model.moe.routing = MoeRouting::expert_choice;
    EXPECT_NE(config_generation_blocker(e.model).find("not causal"), std::string::npos);
    EXPECT_FALSE(config_warnings(e).empty());
    Config bad = *preset_load("moe-top2-8");
    bad.model.moe.top_k = 9;
    EXPECT_NE(config_validate(bad).msg.find("'model.moe.top_k'"), std::string::npos);
    bad = *preset_load("mh-moe-h2");
    bad.model.moe.n_heads = 3;
    EXPECT_NE(config_validate(bad).msg.find("'model.moe.n_heads' must divide d_model"), std::string::npos);
}

// moh-moe on a small corpus: its tokenizer and a fresh model (seed, init std) to probe.
struct ProbeFixture {
    std::optional<Dataset> ds;
    Model m;
    ProbeFixture(unsigned seed, float init_std) {
        Config cfg = *preset_load("moh-moe");
        cfg.model.vocab_size = 0;
        cfg.data.synthetic_docs = 50;
        auto built = dataset_build(cfg.data);
        if (!built.is_ok()) return;
        ds = std::move(*built);
        cfg.model.vocab_size = ds->tok.vocab_size();
        model_create(m, cfg.model, seed, init_std);
    }
};

TEST(Probe, ReportsGatesAndExpertsPerToken) {
    ProbeFixture fx(1, 0.02f);
    ASSERT_TRUE(fx.ds);
    ProbeSnapshot p = probe_run(fx.m, fx.ds->tok, "User: What is the sky? Assistant: Blue.");
    ASSERT_EQ(p.layers.size(), 3u);
    const size_t T = p.tokens.size();
    ASSERT_GT(T, 5u);
    for (const auto& L : p.layers) {
        ASSERT_EQ(L.head_gates.size(), T);
        ASSERT_EQ(L.experts.size(), T);
        for (size_t t = 0; t < T; t++) {
            int on = 0;
            for (float g : L.head_gates[t]) on += g != 0.f;
            EXPECT_EQ(on, 6);  // 2 shared + 4 routed
            EXPECT_EQ(L.experts[t].size(), 2u);
            EXPECT_NEAR(L.expert_weights[t][0] + L.expert_weights[t][1], 1.f, 1e-5);
            EXPECT_GE(L.expert_weights[t][0], L.expert_weights[t][1]);
        }
    }
    const std::string j = probe_to_json(p);
    EXPECT_NE(j.find("\"head_gates\""), std::string::npos);
    EXPECT_NE(j.find("\"experts\""), std::string::npos);
}

// The routing diagram redraws the router's arithmetic from the probe: probabilities -> top-k ->
// weights. Recompute the gates and combine weights from the stored probabilities and compare.
TEST(Probe, RouterInternalsReproduceGatesWeightsAndAttention) {
    ProbeFixture fx(3, 0.5f);  // large init: routers far from uniform
    ASSERT_TRUE(fx.ds);
    ProbeSnapshot p = probe_run(fx.m, fx.ds->tok, "User: What is the sky? Assistant: Blue. 3 + 4 = 7.");
    const int S = p.n_shared_heads, H = p.n_heads, R = H - S, K = p.head_top_k, E = p.n_experts;
    ASSERT_EQ(p.head_kind, "moh");
    ASSERT_EQ(p.expert_kind, "topk");
    ASSERT_EQ(K, 4);
    ASSERT_EQ(p.expert_top_k, 2);
    const size_t T = p.tokens.size();
    for (const auto& L : p.layers) {
        ASSERT_EQ(L.head_probs.size(), T);
        ASSERT_EQ(L.expert_probs.size(), T);
        ASSERT_EQ(L.attention.size(), (size_t)H);
        for (size_t t = 0; t < T; t++) {
            // MoH, official scaling (docs/routing-math.md §3.2): shared g_i = 2*a1*S*ss_i; routed g = 2*a2*K*r*m/sum(r*m).
            std::vector<int> order(R);
            for (int i = 0; i < R; i++) order[i] = i;
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return L.head_probs[t][a] > L.head_probs[t][b]; });
            float sel = 0;
            for (int k = 0; k < K; k++) sel += L.head_probs[t][order[k]];
            for (int i = 0; i < S; i++) EXPECT_NEAR(L.head_gates[t][i], 2 * L.head_type[t][0] * S * L.shared_probs[t][i], 1e-5);
            for (int k = 0; k < R; k++) {
                const int i = order[k];
                const float want = k < K ? 2 * L.head_type[t][1] * K * L.head_probs[t][i] / sel : 0.f;
                EXPECT_NEAR(L.head_gates[t][S + i], want, 1e-5) << "token " << t << " head " << S + i;
            }
            // Top-2 experts of the router softmax, weights renormalised over the two.
            std::vector<int> eo(E);
            for (int e = 0; e < E; e++) eo[e] = e;
            std::stable_sort(eo.begin(), eo.end(), [&](int a, int b) { return L.expert_probs[t][a] > L.expert_probs[t][b]; });
            ASSERT_EQ(L.experts[t].size(), 2u);
            const float s2 = L.expert_probs[t][eo[0]] + L.expert_probs[t][eo[1]];
            EXPECT_EQ(L.experts[t][0], eo[0]);
            EXPECT_EQ(L.experts[t][1], eo[1]);
            EXPECT_NEAR(L.expert_weights[t][0], L.expert_probs[t][eo[0]] / s2, 1e-5);
        }
        for (int h = 0; h < H; h++)
            for (size_t q = 0; q < T; q++) {
                float sum = 0;
                for (size_t k = 0; k < T; k++) {
                    const float a = L.attention[h][q * T + k];
                    if (k > q) {
                        EXPECT_EQ(a, 0.f) << "causal";
                    }
                    sum += a;
                }
                EXPECT_NEAR(sum, 1.f, 1e-4);
            }
    }
    EXPECT_TRUE(probe_run(fx.m, fx.ds->tok, "Blue.", 0, false).layers[0].attention.empty());
}

// The probe names its routing with the config's own names: each reads back as a config value.
TEST(Probe, RoutingKindsAreConfigNames) {
    ProbeFixture fx(1, 0.02f);
    ASSERT_TRUE(fx.ds);
    for (HeadSelection h : {HeadSelection::all_heads, HeadSelection::static_pruning, HeadSelection::moh})
        for (FfnRouting f : {FfnRouting::dense, FfnRouting::moe, FfnRouting::mh_moe})
            for (MoeRouting r : {MoeRouting::topk, MoeRouting::top1_capacity, MoeRouting::noisy_topk, MoeRouting::expert_choice}) {
                Config cfg;
                cfg.model = fx.m.cfg;
                cfg.model.attention.heads.kind = h;
                cfg.model.moe.kind = f;
                cfg.model.moe.routing = r;
                cfg.model.moe.top_k = r == MoeRouting::top1_capacity ? 1 : 2;
                ASSERT_TRUE(config_validate(cfg).is_ok()) << config_validate(cfg).msg;
                Model m;
                model_create(m, cfg.model, 1, 0.02f);
                const ProbeSnapshot p = probe_run(m, fx.ds->tok, "User: hi", 0, false);
                Config back;
                ASSERT_TRUE(config_apply_override(back, "model.attention.heads.kind=" + p.head_kind).is_ok()) << p.head_kind;
                EXPECT_EQ(back.model.attention.heads.kind, h) << p.head_kind;
                if (f == FfnRouting::dense) {
                    EXPECT_EQ(p.expert_kind, "");
                } else if (f == FfnRouting::mh_moe) {
                    ASSERT_TRUE(config_apply_override(back, "model.moe.kind=" + p.expert_kind).is_ok()) << p.expert_kind;
                    EXPECT_EQ(back.model.moe.kind, f);
                } else {
                    ASSERT_TRUE(config_apply_override(back, "model.moe.routing=" + p.expert_kind).is_ok()) << p.expert_kind;
                    EXPECT_EQ(back.model.moe.routing, r);
                }
            }
}
