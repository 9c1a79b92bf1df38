// Experiments on a frozen model (issue 24): the domain analysis (metrics/domain_analysis.h) and bias
// calibration without retraining (infer/calibrate.h), on the tiny random checkpoints of
// scripts/hf_tiny_models.py.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>

#include "hf_tiny.h"
#include "infer/calibrate.h"
#include "infer/eval.h"
#include "io/hf_model.h"
#include "metrics/domain_analysis.h"
#include "metrics/routing_report.h"

namespace fs = std::filesystem;
using namespace rl;

namespace {

std::unique_ptr<HfModel> open_tiny(const std::string& name, bool tokenizer) {
    const fs::path d = test::hf_tiny_case(name);
    if (tokenizer && !fs::exists(d / "tokenizer.json"))  // each printable byte, space and newline a token
        fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/tokenizers/ascii_byte_level.json", d / "tokenizer.json");
    auto hf = hf_model_open(d.string(), tokenizer);
    EXPECT_TRUE(hf) << hf.status.msg;
    return hf ? std::move(*hf) : nullptr;
}

// Each layer's first expert for a window of `n` copies of one token (every position routes alike:
// attention over identical values gives the same output).
std::vector<int> first_experts_of_repeated(const Model& m, int id, int n) {
    std::vector<int> ids(n, id), out(m.cfg.n_layers, -1);
    Activations a;
    activations_create(a, m.cfg, 1, n);
    model_forward(m, a, ids.data(), nullptr, 1, n);
    std::vector<std::vector<std::pair<float, int>>> te;
    for (int l = 0; l < m.cfg.n_layers; l++) {
        if (!m.w.layers[l].moe.router) continue;
        routing_token_experts(a.layers[l], n, te);
        out[l] = te[0][0].second;
        for (int t = 1; t < n; t++) EXPECT_EQ(te[t][0].second, out[l]) << "layer " << l << " position " << t;
    }
    return out;
}

}  // namespace

// Two domains, each one token repeated: a token's experts are fixed, so wherever the two tokens' first
// experts differ the first expert names the domain (NMI 1) and every token always goes to the same
// experts (vocabulary specialisation 1); where they agree NMI is 0. Shuffling the first experts over
// the tokens (a random router of the same load) scores near 0 either way.
TEST(Analyse, RepeatedTokenDomainsAreSpecialisedExactlyWhereTheirExpertsDiffer) {
    auto hf = open_tiny("mixtral", true);
    ASSERT_TRUE(hf);
    const Model& m = hf->model;
    const int a_id = hf->tok->encode("a").back(), b_id = hf->tok->encode("b").back(), n = 300, K = m.cfg.moe.top_k;
    ASSERT_NE(a_id, b_id);
    const std::vector<AnalysisDomain> domains = {{"a", std::vector<int>(n, a_id)}, {"b", std::vector<int>(n, b_id)}};
    AnalysisOptions o;
    o.context = 100;
    const Analysis an = analysis_run(m, *hf->tok, domains, o);
    ASSERT_EQ(an.tokens, 2 * n);
    ASSERT_EQ(an.layers.size(), 3u);
    const std::vector<int> fa = first_experts_of_repeated(m, a_id, 100), fb = first_experts_of_repeated(m, b_id, 100);
    int differ = 0;
    for (const LayerAnalysis& l : an.layers) {
        for (int d = 0; d < 2; d++) {
            double sum = 0;
            for (const auto& row : l.by_domain) sum += row[d];
            EXPECT_EQ(sum, (double)n * K) << "layer " << l.layer;  // every (token, expert) pair once
        }
        EXPECT_EQ(l.by_domain[fa[l.layer]][0], n);
        EXPECT_NEAR(l.nmi_domain, fa[l.layer] != fb[l.layer] ? 1.0 : 0.0, 1e-9) << "layer " << l.layer;
        differ += fa[l.layer] != fb[l.layer];
        EXPECT_LT(l.nmi_domain_random_router, 0.05) << "layer " << l.layer;
        EXPECT_NEAR(l.vocab_specialisation, 1.0, 1e-12);
        ASSERT_FALSE(l.top_tokens[fa[l.layer]].empty());
        const ExpertToken& top = l.top_tokens[fa[l.layer]][0];
        EXPECT_TRUE(top.id == a_id || top.id == b_id);
        EXPECT_DOUBLE_EQ(top.share, 1.0);
        if (l.next_layer >= 0) {  // each token's path through the layers is fixed
            double total = 0;
            for (const auto& row : l.next_counts)
                for (double v : row) total += v;
            EXPECT_EQ(total, 2.0 * n);
            EXPECT_GE(l.next_counts[fa[l.layer]][fa[l.next_layer]], n);
        }
    }
    EXPECT_GE(differ, 1) << "the two tokens share their first expert in every layer: pick other tokens";
}

// A cancel flag raised after the first window stops the analysis there.
TEST(Analyse, CancelStopsBetweenWindows) {
    auto hf = open_tiny("olmoe", true);
    ASSERT_TRUE(hf);
    std::atomic<bool> cancel{false};
    AnalysisOptions o;
    o.context = 64;
    o.cancel = &cancel;
    int calls = 0;
    o.progress = [&](int64_t done, int64_t total) {
        calls++;
        EXPECT_EQ(done, 64);
        EXPECT_EQ(total, 1000);
        cancel = true;
    };
    const Analysis an = analysis_run(hf->model, *hf->tok, {{"x", std::vector<int>(1000, 5)}}, o);
    EXPECT_TRUE(an.cancelled);
    EXPECT_EQ(an.tokens, 64);
    EXPECT_EQ(calls, 1);
}

// Must-show 2 of issue 24: a router skewed on purpose is balanced by the aux-loss-free rule over
// forward passes alone. The skew is the kind real models carry: one channel of the residual stream
// large and of one sign for every token (a "massive activation"), here channel 0 of every embedding
// set to 3, which the routers of experts 0 and 1 read with weight +2 in every layer.
TEST(Calibrate, ASkewedRouterIsBalancedWithoutGradients) {
    auto hf = open_tiny("olmoe", false);
    ASSERT_TRUE(hf);
    Model& m = hf->model;
    const int C = m.cfg.d_model, V = m.cfg.vocab_size;
    std::mt19937 rng(7);
    std::vector<int> ids(1024);
    for (int& i : ids) i = (int)(rng() % V);
    auto mean_cv = [](const EvalReport& r) {
        double cv = 0;
        for (const EvalLayer& l : r.layers) cv += l.load_cv / r.layers.size();
        return cv;
    };
    const double cv_as_drawn = mean_cv(*model_eval(m, ids, {64}));
    for (int v = 0; v < V; v++) m.w.tok_emb[(size_t)v * C] = 3.f;
    for (int l = 0; l < m.cfg.n_layers; l++)
        for (int e = 0; e < 2; e++) m.w.layers[l].moe.router[(size_t)e * C] += 2.f;
    const EvalReport skewed = *model_eval(m, ids, {64});
    CalibrationOptions o;
    o.context = 64;
    o.progress = [](const CalibrationPass& p) {
        std::printf("pass %d: load CV %.3f (layers", p.pass, p.load_cv);
        for (double v : p.layer_cv) std::printf(" %.3f", v);
        std::printf("), perplexity %.2f, max |bias| %.3f, %.2f s\n", p.perplexity, p.max_abs_bias, p.seconds);
    };
    auto r = calibrate_expert_bias(m, ids, o);
    ASSERT_TRUE(r) << r.status.msg;
    std::printf("load CV as drawn %.3f; skewed %.3f -> %.3f after %d passes (best %d); perplexity %.2f -> %.2f\n", cv_as_drawn, r->load_cv_before,
                r->load_cv_after, (int)r->passes.size(), r->best_pass, r->perplexity_before, r->perplexity_after);
    EXPECT_NEAR(r->perplexity_before, skewed.perplexity, 1e-6 * skewed.perplexity);
    EXPECT_GT(r->load_cv_before, 2 * cv_as_drawn);  // the skew took: experts 0 and 1 take most tokens
    EXPECT_LT(r->load_cv_after, 0.25 * r->load_cv_before);
    EXPECT_LT(r->load_cv_after, cv_as_drawn);
    EXPECT_GE(r->best_pass, 1);
    EXPECT_LE(r->best_pass, 10);
    // The model keeps the biases: eval now routes as the last pass did.
    const EvalReport calibrated = *model_eval(m, ids, {64});
    EXPECT_NEAR(calibrated.perplexity, r->perplexity_after, 1e-6 * calibrated.perplexity);
    EXPECT_NEAR(mean_cv(calibrated), r->load_cv_after, 1e-6);
    // Taking the bias away gives the skewed routing back.
    model_set_expert_bias(m, false);
    EXPECT_NEAR(model_eval(m, ids, {64})->perplexity, skewed.perplexity, 1e-6 * skewed.perplexity);
}
