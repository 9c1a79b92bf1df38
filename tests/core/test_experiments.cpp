// Experiments on a frozen model (issue 24): the domain analysis (metrics/domain_analysis.h), bias
// calibration without retraining (infer/calibrate.h) and the window's experiments that run them
// (experiments/experiment.h), on the tiny random checkpoints of scripts/hf_tiny_models.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>

#include "experiments/experiment.h"
#include "hf_tiny.h"
#include "infer/calibrate.h"
#include "infer/eval.h"
#include "io/hf_model.h"
#include "lessons/real_model.h"
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

// ---- The window's experiments (experiments/experiment.h) ----

namespace {

std::vector<int> repeated_text(const Tokenizer& tok, int n) {
    std::vector<int> ids;
    const std::vector<int> piece = tok.encode("the cat sat on the mat; 12 + 7 = 19. def f(x): return x * 2\n");
    while ((int)ids.size() < n) ids.insert(ids.end(), piece.begin(), piece.end());
    ids.resize(n);
    return ids;
}

}  // namespace

// A compare is model_eval twice: the model as it is, then with the intervention as interventions_apply
// sets it; afterwards m is exactly as before (config and biases), and the second compare on the same
// text reuses the first one's unchanged report.
TEST(Experiment, CompareIsTheUnchangedModelBesideTheInterventionAndPutsTheModelBack) {
    auto hf = open_tiny("olmoe", true);
    ASSERT_TRUE(hf);
    Model& m = hf->model;
    const std::vector<int> val = repeated_text(*hf->tok, 300);
    const std::string cfg_before = config_to_json(Config{.model = m.cfg});
    ExperimentRequest r;
    r.iv.top_k = 1;
    r.iv.mask = "2";
    r.tokens = 256;
    r.context = 64;
    ExperimentCache cache;
    int updates = 0;
    const ExperimentResult got = experiment_run(m, hf->cfg, *hf->tok, val, r, cache, [&](const ExperimentResult&) { updates++; });
    ASSERT_TRUE(got.error.empty()) << got.error;
    EXPECT_TRUE(got.done);
    EXPECT_EQ(got.text_tokens, 256);
    EXPECT_GT(updates, 0);
    EXPECT_EQ(config_to_json(Config{.model = m.cfg}), cfg_before);

    const std::vector<int> ids(val.begin(), val.begin() + 256);
    auto base = model_eval(m, ids, {.context = 64});
    ASSERT_TRUE(base);
    EXPECT_DOUBLE_EQ(got.base.perplexity, base->perplexity);
    Config c = hf->cfg;
    ASSERT_TRUE(interventions_apply(c, r.iv));
    m.cfg = c.model;
    auto changed = model_eval(m, ids, {.context = 64});
    m.cfg = hf->cfg.model;
    ASSERT_TRUE(changed);
    EXPECT_DOUBLE_EQ(got.changed.perplexity, changed->perplexity);
    EXPECT_NE(got.changed.perplexity, got.base.perplexity);
    for (const EvalLayer& l : got.changed.layers) {
        EXPECT_NEAR(l.experts_per_token, 1.0, 1e-9);
        EXPECT_EQ(l.rows[2], 0) << "expert 2 is masked in layer " << l.layer;
    }
    EXPECT_LT(got.changed.active_params, got.base.active_params);

    // The unchanged report comes from the cache: a cache holding another report is what the next
    // compare shows as unchanged (so a stale cache would show here).
    cache.base.perplexity = 123.0;
    r.iv.top_k = 2;
    const ExperimentResult again = experiment_run(m, hf->cfg, *hf->tok, val, r, cache);
    EXPECT_EQ(again.base.perplexity, 123.0);
    r.context = 32;  // other windows: measured again
    const ExperimentResult other = experiment_run(m, hf->cfg, *hf->tok, val, r, cache);
    EXPECT_NE(other.base.perplexity, 123.0);
}

// "Biases off" routes with every selection bias at 0 and puts them back afterwards; a request the model
// cannot take is refused before anything runs, the model untouched.
TEST(Experiment, BiasesOffRoutesWithoutThemAndRefusalsLeaveTheModelAlone) {
    auto hf = open_tiny("mixtral", true);
    ASSERT_TRUE(hf);
    Model& m = hf->model;
    const std::vector<int> val = repeated_text(*hf->tok, 200);
    ExperimentCache cache;
    ExperimentRequest r;
    r.bias_off = true;
    r.context = 50;
    EXPECT_NE(experiment_run(m, hf->cfg, *hf->tok, val, r, cache).error.find("no selection biases"), std::string::npos);
    model_set_expert_bias(m, true);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 2.f);
    std::vector<std::vector<float>> bias(m.cfg.n_layers);
    for (int l = 0; l < m.cfg.n_layers; l++)
        if (float* b = m.w.layers[l].moe.bias)
            for (int e = 0; e < m.cfg.moe.n_experts; e++) bias[l].push_back(b[e] = nd(rng));
    const ExperimentResult got = experiment_run(m, hf->cfg, *hf->tok, val, r, cache);
    ASSERT_TRUE(got.error.empty()) << got.error;
    for (int l = 0; l < m.cfg.n_layers; l++)
        for (int e = 0; e < (int)bias[l].size(); e++) EXPECT_EQ(m.w.layers[l].moe.bias[e], bias[l][e]);
    std::vector<int> ids(val.begin(), val.end());
    for (int l = 0; l < m.cfg.n_layers; l++)  // the biases zeroed for good: what "off" must have routed
        if (float* b = m.w.layers[l].moe.bias) std::fill_n(b, m.cfg.moe.n_experts, 0.f);
    auto zero = model_eval(m, ids, {.context = 50});
    ASSERT_TRUE(zero);
    EXPECT_DOUBLE_EQ(got.changed.perplexity, zero->perplexity);
    EXPECT_NE(got.changed.perplexity, got.base.perplexity);  // the drawn biases moved some choices

    r.bias_off = false;
    r.iv.mask = "99";
    const ModelConfig before = m.cfg;
    const ExperimentResult bad = experiment_run(m, hf->cfg, *hf->tok, val, r, cache);
    EXPECT_FALSE(bad.error.empty());
    EXPECT_TRUE(bad.done);
    EXPECT_EQ(config_to_json(Config{.model = m.cfg}), config_to_json(Config{.model = before}));
}

// The sweep's default top-k are 1, 2, 4, ... E and the model's own, each point a model_eval with that
// top-k: active parameters rise with k.
TEST(Experiment, SweepCoversOneToEWithTheModelsOwnTopK) {
    auto hf = open_tiny("qwen2moe", true);
    ASSERT_TRUE(hf);
    Model& m = hf->model;
    const std::vector<int> val = repeated_text(*hf->tok, 120);
    ExperimentRequest r;
    r.kind = ExperimentKind::sweep;
    r.context = 60;
    ExperimentCache cache;
    const int E = m.cfg.moe.n_experts, K = m.cfg.moe.top_k;
    const ExperimentResult got = experiment_run(m, hf->cfg, *hf->tok, val, r, cache);
    ASSERT_TRUE(got.error.empty()) << got.error;
    ASSERT_EQ(got.ks.size(), got.sweep.size());
    EXPECT_EQ(got.ks.front(), 1);
    EXPECT_EQ(got.ks.back(), E);
    EXPECT_NE(std::find(got.ks.begin(), got.ks.end(), K), got.ks.end());
    for (size_t i = 1; i < got.sweep.size(); i++) {
        EXPECT_GT(got.ks[i], got.ks[i - 1]);
        EXPECT_GT(got.sweep[i].active_params, got.sweep[i - 1].active_params);
    }
    EXPECT_EQ(m.cfg.moe.top_k, K);
}

// The real-model lesson on a tiny OLMoE: the analysis covers every sparse layer and the embedded
// corpus's five domains, the sweep is top-k 1, K/2, K, 2K (here 1, 2, 4), and the conclusion quotes
// those numbers; on findings built by hand it says "no more than chance" where the router is no better
// than the shuffled baseline and names the expert with the largest domain share.
TEST(RealModelLesson, MeasuresAndConcludesFromTheModelsOwnNumbers) {
    auto hf = open_tiny("olmoe", true);
    ASSERT_TRUE(hf);
    auto f = real_model_lesson_measure(hf->model, hf->cfg, *hf->tok, 300, 64);
    ASSERT_TRUE(f) << f.status.msg;
    EXPECT_EQ(f->analysis.layers.size(), 3u);
    EXPECT_EQ(f->analysis.domains.size(), 5u);
    EXPECT_EQ(f->ks, std::vector<int>({1, 2, 4}));
    ASSERT_EQ(f->sweep.size(), 3u);
    EXPECT_EQ(hf->model.cfg.moe.top_k, 2);  // put back after the sweep
    const std::string c = real_model_lesson_conclude(*f);
    char own[64];
    std::snprintf(own, sizeof own, "At its own top-2 the perplexity is %.2f", f->sweep[1].perplexity);
    EXPECT_NE(c.find(own), std::string::npos) << c;
    EXPECT_NE(c.find("top-1: "), std::string::npos) << c;

    RealModelFindings h;  // by hand: two experts, two domains, no better than chance
    h.analysis.domains = {"code", "prose"};
    h.analysis.tokens = 200;
    LayerAnalysis l;
    l.by_domain = {{90, 10}, {10, 90}};
    l.nmi_domain = 0.30, l.nmi_domain_random_router = 0.29, l.vocab_specialisation = 0.6;
    h.analysis.layers = {l};
    h.model_top_k = 1;
    h.ks = {1, 2};
    h.sweep.resize(2);
    h.sweep[0].perplexity = 10, h.sweep[0].active_params = 1e6;
    h.sweep[1].perplexity = 9, h.sweep[1].active_params = 1.5e6;
    const std::string hc = real_model_lesson_conclude(h);
    EXPECT_NE(hc.find("no more than chance"), std::string::npos) << hc;
    EXPECT_NE(hc.find("domain-bound expert is 0 of layer 0, with 90% of its choices from code"), std::string::npos) << hc;
    EXPECT_NE(hc.find("top-2: 9.00 (-10.0%) with +50% active parameters"), std::string::npos) << hc;
}

// "Mask the k least used": each layer's k experts of fewest rows in the unchanged model's report on the
// text, masked in that layer only ("l:e"); the forward then never routes a layer's tokens to its own
// masked experts, while an expert masked in one layer still serves another. The compare experiment
// names the same mask.
TEST(Experiment, MaskLeastUsedMasksEachLayersOwnLeastUsedExperts) {
    auto hf = open_tiny("olmoe", true);
    ASSERT_TRUE(hf);
    Model& m = hf->model;
    std::mt19937 rng(3);
    std::vector<int> ids(400);
    for (int& t : ids) t = (int)(rng() % (unsigned)m.cfg.vocab_size);
    auto base = model_eval(m, ids, {.context = 200});
    ASSERT_TRUE(base) << base.status.msg;
    Interventions iv;
    iv.mask_least_used = 2;
    const Interventions applied = eval_mask_least_used(iv, *base);
    EXPECT_EQ(applied.mask_least_used, 0);
    std::vector<std::vector<int>> masked(m.cfg.n_layers);
    for (const EvalLayer& l : base->layers) {
        std::vector<int> order(l.rows.size());
        for (size_t e = 0; e < order.size(); e++) order[e] = (int)e;
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l.rows[a] < l.rows[b]; });
        masked[l.layer] = {order[0], order[1]};
        for (int e : masked[l.layer])
            EXPECT_NE(applied.mask.find(std::to_string(l.layer) + ":" + std::to_string(e)), std::string::npos) << applied.mask;
    }
    Config cfg = hf->cfg;
    ASSERT_TRUE(interventions_apply(cfg, applied));
    const ModelConfig kept = m.cfg;
    m.cfg = cfg.model;
    auto after = model_eval(m, ids, {.context = 200});
    m.cfg = kept;
    ASSERT_TRUE(after) << after.status.msg;
    bool served_elsewhere = false;
    for (const EvalLayer& l : after->layers)
        for (int e = 0; e < (int)l.rows.size(); e++) {
            const bool mine = std::count(masked[l.layer].begin(), masked[l.layer].end(), e) > 0;
            if (mine) EXPECT_EQ(l.rows[e], 0.0) << "layer " << l.layer << " expert " << e;
            bool other = false;
            for (int k = 0; k < m.cfg.n_layers; k++) other |= k != l.layer && std::count(masked[k].begin(), masked[k].end(), e);
            served_elsewhere |= !mine && other && l.rows[e] > 0;
        }
    EXPECT_TRUE(served_elsewhere) << "a mask of one layer reached another";
    // The window's compare: the same experts, named in its result.
    ExperimentRequest r;
    r.iv = iv;
    r.context = 200;
    ExperimentCache cache;
    const ExperimentResult out = experiment_run(m, hf->cfg, *hf->tok, ids, r, cache);
    ASSERT_EQ(out.error, "");
    EXPECT_EQ(out.applied.mask, applied.mask);
    // Refused in one line: more than E - top-k.
    iv.mask_least_used = m.cfg.moe.n_experts - m.cfg.moe.top_k + 1;
    Config c2 = hf->cfg;
    const Status s = interventions_apply(c2, iv);
    EXPECT_FALSE(s);
    EXPECT_NE(s.msg.find("least used"), std::string::npos) << s.msg;
}
