// Router-only fine-tuning (train/router_tune.h) on the tiny random checkpoints of
// scripts/hf_tiny_models.py: the routers' gradient through a frozen model against finite differences
// (through qk_norm, GraniteMoE's multipliers, Qwen2-MoE's gated shared expert, Qwen3's dense layers,
// BF16 weights mapped from the file, and JetMoE's attention-expert router beside its MoE router), and a tuning run that changes the routers and nothing else.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "hf_tiny.h"
#include "infer/eval.h"
#include "io/hf_inspect.h"
#include "io/hf_model.h"
#include "metrics/routing_report.h"
#include "train/router_tune.h"

using namespace rl;

namespace {

std::unique_ptr<HfModel> open_case(const std::string& name) {
    auto hf = hf_model_open(test::hf_tiny_case(name).string(), false);
    EXPECT_TRUE(hf) << hf.status.msg;
    return hf ? std::move(*hf) : nullptr;
}

std::vector<int> draw_ids(int n, int vocab, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int> ids(n);
    for (int& t : ids) t = (int)(rng() % (unsigned)vocab);
    return ids;
}

// Every sparse layer's chosen experts per token, and every routed layer's heads that are on (what a
// finite difference must not change).
std::vector<std::vector<int>> choices(const Model& m, const Activations& a, int N) {
    std::vector<std::vector<int>> out;
    std::vector<std::vector<std::pair<float, int>>> te;
    const int H = m.cfg.n_heads;
    for (int l = 0; l < m.cfg.n_layers && m.cfg.attention.heads.kind == HeadSelection::moh; l++)
        for (int t = 0; t < N; t++) {
            out.emplace_back();
            for (int h = 0; h < H; h++)
                if (a.layers[l].head_gates[(size_t)t * H + h] != 0.f) out.back().push_back(h);
        }
    for (int l = 0; l < m.cfg.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        routing_token_experts(a.layers[l], N, te);
        for (const auto& row : te) {
            out.emplace_back();
            for (const auto& [w, e] : row) out.back().push_back(e);
            std::sort(out.back().begin(), out.back().end());  // the set: an order swap is no jump
        }
    }
    return out;
}

}  // namespace

// d loss / d (the routers along a random direction v): the backward's g . v against the central
// difference (L(theta + eps v) - L(theta - eps v)) / 2 eps, in double around float32 forwards. Per case
// once along every router at once and once along layer 0's alone, whose gradient comes back through
// every later layer (qk_norm, the residual multiplier, BF16 experts and head). eps shrinks until no
// token's experts differ between the two sides (a flipped choice is a jump, not a slope).
TEST(RouterTune, GradientThroughAFrozenModelMatchesFiniteDifferences) {
    for (const std::string name :
         {"mixtral", "olmoe", "qwen2moe", "qwen3moe", "granitemoe", "mixtral_bf16", "olmoe_bf16", "jetmoe"}) {
        auto hf = open_case(name);
        ASSERT_TRUE(hf);
        Model& m = hf->model;
        ASSERT_EQ(router_tune_blocker(m), "") << name;
        const int T = 24;
        const std::vector<int> ids = draw_ids(T + 1, m.cfg.vocab_size, 7);
        const std::vector<int> tokens(ids.begin(), ids.end() - 1), targets(ids.begin() + 1, ids.end());
        const Layout gl = model_grads_for(m, router_tensor);
        ASSERT_GT(gl.total(), 0u);
        Activations a;
        activations_create(a, m.cfg, 1, T);
        auto loss = [&] { return model_forward(m, a, tokens.data(), targets.data(), 1, T, {.training = true, .seed = 1}); };
        model_zero_grad(m);
        loss();
        const auto base = choices(m, a, T);
        model_backward(m, a, tokens.data(), targets.data());
        for (const bool layer0_only : {false, true}) {
            // v = g / |g| + r / |r| (r random): the slope along the gradient itself (the largest there
            // is, so float32's noise in the loss stays small against it) plus one along a random direction.
            std::mt19937 rng(11);
            std::normal_distribution<double> nd;
            std::vector<float*> at;
            std::vector<double> g, r;
            for (const TensorSpec& s : gl.specs()) {
                if (layer0_only && s.name.rfind("layers.0.", 0) != 0) continue;
                float* p = m.params.ptr(m.layout, s.name);
                ASSERT_NE(p, nullptr) << s.name;
                for (size_t i = 0; i < s.numel; i++) {
                    at.push_back(p + i);
                    g.push_back(m.grads.data[s.offset + i]);
                    r.push_back(nd(rng));
                }
            }
            ASSERT_FALSE(at.empty());
            double gg = 0, rr = 0;
            for (size_t i = 0; i < g.size(); i++) gg += g[i] * g[i], rr += r[i] * r[i];
            ASSERT_GT(std::sqrt(gg), 1e-4) << name << ": a gradient that is (nearly) zero checks nothing";
            std::vector<double> v(g.size());
            double g_dot_v = 0;
            for (size_t i = 0; i < g.size(); i++) {
                v[i] = g[i] / std::sqrt(gg) + r[i] / std::sqrt(rr);
                g_dot_v += g[i] * v[i];
            }
            std::vector<float> kept;
            for (float* p : at) kept.push_back(*p);
            // 2.5e-3: JetMoE's attention router curves enough that 1e-2 leaves a 0.3% truncation error
            double fd = 0, eps = 2.5e-3;
            bool clean = false;
            for (int tries = 0; tries < 8 && !clean; tries++, eps /= 2) {
                auto shift = [&](double by) {
                    for (size_t i = 0; i < at.size(); i++) *at[i] = (float)(kept[i] + by * v[i]);
                };
                shift(eps);
                const double up = loss();
                const auto cu = choices(m, a, T);
                shift(-eps);
                const double down = loss();
                const auto cd = choices(m, a, T);
                for (size_t i = 0; i < at.size(); i++) *at[i] = kept[i];
                fd = (up - down) / (2 * eps);
                clean = cu == base && cd == base;
            }
            ASSERT_TRUE(clean) << name << ": every step flipped some token's experts";
            EXPECT_NEAR(fd, g_dot_v, 0.005 * std::fabs(g_dot_v))
                << name << (layer0_only ? " (layer 0's router)" : " (all routers)") << ", eps " << eps * 2;
            std::printf("%-13s %-16s g.v %.6f  finite difference %.6f  (eps %.2g)\n", name.c_str(),
                        layer0_only ? "layer 0's router" : "all routers", g_dot_v, fd, eps * 2);
        }
    }
}

// 40 steps on a text of 300 ids: only router tensors change (every other float32 parameter is
// bit-for-bit as it was; the BF16 ones are the read-only mapped file), the model comes back with no
// gradients, and the text's loss falls. Refused: a model with no learned router.
TEST(RouterTune, OnlyTheRoutersChangeAndTheLossFalls) {
    for (const std::string name : {"olmoe", "mixtral_bf16"}) {
        auto hf = open_case(name);
        ASSERT_TRUE(hf);
        Model& m = hf->model;
        const std::vector<int> ids = draw_ids(300, std::min(m.cfg.vocab_size, 20), 3);  // few distinct tokens: learnable
        const std::vector<float> before(m.params.data.begin(), m.params.data.end());
        auto eval = [&] { return model_eval(m, ids, {.context = 60})->nll; };
        const double nll0 = eval();
        RouterTuneOptions o;
        o.steps = 40;
        o.context = 60;
        o.lr = 1e-2f;
        int calls = 0;
        o.progress = [&](int, double) { calls++; };
        auto r = router_tune(m, ids, o);
        ASSERT_TRUE(r) << r.status.msg;
        EXPECT_EQ(calls, 40);
        EXPECT_EQ((int)r->steps.size(), 40);
        EXPECT_TRUE(model_frozen(m)) << "gradients kept past the call";
        size_t router_changed = 0, other_changed = 0;
        for (const TensorSpec& s : m.layout.specs())
            for (size_t i = 0; i < s.numel; i++) {
                const bool moved = m.params.data[s.offset + i] != before[s.offset + i];
                (router_tensor(s.name) ? router_changed : other_changed) += moved;
            }
        EXPECT_EQ(other_changed, 0u) << name;
        EXPECT_GT(router_changed, (size_t)r->trainable / 2) << name;
        EXPECT_GT(r->frozen, 10 * r->trainable) << name;
        const double nll1 = eval();
        EXPECT_LT(nll1, nll0 - 0.01) << name << ": the routers learned nothing (" << nll0 << " -> " << nll1 << ")";
        EXPECT_GT(r->memory.weights, 0);
        EXPECT_NEAR(r->memory.moments, 2 * r->memory.grads, 1e-9);
    }
    auto llama = open_case("llama");
    ASSERT_TRUE(llama);
    EXPECT_NE(router_tune_blocker(llama->model).find("no learned router"), std::string::npos);
    EXPECT_FALSE(router_tune(llama->model, draw_ids(100, 50, 1), {}));
}
