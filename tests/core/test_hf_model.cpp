// Hugging Face model folders (io/hf_model.h) against an independent forward: scripts/hf_tiny_models.py
// writes tiny random checkpoints in the hub's layout (one per architecture, F32, BF16, F16, sharded) and
// the logits and expert choices of its own PyTorch forward, written from the transformers modeling
// files. RouteLab must reproduce the logits within 1e-4 and every token's expert set in every layer;
// each architecture's quirk, removed from RouteLab, must break that. Needs PyTorch (CI installs it):
// without it these tests fail, they do not skip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "config/presets.h"
#include "io/export.h"
#include "io/hf_inspect.h"
#include "io/hf_model.h"
#include "metrics/routing_report.h"
#include "model/model.h"
#include "hf_tiny.h"
#include "subprocess.h"
#include "tensor/gemm_bf16.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace rl;

namespace {

fs::path case_dir(const std::string& name) { return test::hf_tiny_case(name); }

struct Outcome {
    double max_dlogit = 0;
    bool experts_identical = true;  // and the head choices, under a head rule
    int heads_compared = 0;         // (token, layer) head choices compared
    std::string first_difference;
};

// RouteLab's forward of the model on expected.json's ids, compared with the reference's outputs.
Outcome compare(const Model& m, const json& expected) {
    const std::vector<int> ids = expected["ids"].get<std::vector<int>>();
    const int T = (int)ids.size(), V = m.cfg.vocab_size;
    Activations a;
    activations_create(a, m.cfg, 1, T);
    model_forward(m, a, ids.data(), nullptr, 1, T);
    Outcome o;
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++)
            o.max_dlogit = std::max(o.max_dlogit, std::fabs((double)a.logits[(size_t)t * V + v] -
                                                            expected["logits"][t][v].get<double>()));
    std::set<int> sparse;
    for (const json& layer : expected["moe_layers"]) {
        const int l = layer["layer"].get<int>(), K = m.cfg.moe.top_k;
        sparse.insert(l);
        if (!m.w.layers[l].moe.router) {
            o.experts_identical = false;
            o.first_difference = "layer " + std::to_string(l) + " is dense in RouteLab";
            continue;
        }
        for (int t = 0; t < T; t++) {
            const int* ch = a.layers[l].ms.choice + (size_t)t * K;
            const std::set<int> ours(ch, ch + K), ref = layer["experts"][t].get<std::set<int>>();
            if (ours != ref && o.experts_identical) {
                o.experts_identical = false;
                o.first_difference = "layer " + std::to_string(l) + " token " + std::to_string(t);
            }
        }
    }
    for (int l = 0; l < m.cfg.n_layers; l++)
        if (m.w.layers[l].moe.router && !sparse.count(l)) o.experts_identical = false;
    // A head rule (MoH-LLaMA3): each token's routed heads that are on, against the reference's.
    const int H = m.cfg.n_heads, S = m.cfg.attention.heads.n_shared;
    if (expected.contains("head_layers") && !expected["head_layers"].empty()) {
        if (m.cfg.attention.heads.kind != HeadSelection::moh) {
            o.experts_identical = false;
            o.first_difference = "RouteLab routes no heads";
        }
        for (const json& layer : expected["head_layers"]) {
            const int l = layer["layer"].get<int>();
            for (int t = 0; t < T && m.cfg.attention.heads.kind == HeadSelection::moh; t++) {
                std::set<int> ours;
                for (int h = S; h < H; h++)
                    if (a.layers[l].head_gates[(size_t)t * H + h] != 0.f) ours.insert(h);
                o.heads_compared++;
                if (ours != layer["heads"][t].get<std::set<int>>() && o.experts_identical) {
                    o.experts_identical = false;
                    o.first_difference = "heads of layer " + std::to_string(l) + " token " + std::to_string(t);
                }
            }
        }
    }
    // JetMoE's attention experts: expert e is on for a token when its heads (h % E == e) are, all of them.
    if (expected.contains("attention_expert_layers") && !expected["attention_expert_layers"].empty()) {
        const HeadsConfig& hc = m.cfg.attention.heads;
        const bool experts = hc.kind == HeadSelection::moh && hc.router == HeadRouterKind::experts;
        if (!experts) {
            o.experts_identical = false;
            o.first_difference = "RouteLab has no attention experts";
        }
        for (const json& layer : expected["attention_expert_layers"]) {
            const int l = layer["layer"].get<int>(), E = hc.n_experts;
            for (int t = 0; t < T && experts; t++) {
                std::set<int> ours;
                bool whole = true;  // every head of an expert on or off together
                for (int h = 0; h < H; h++) {
                    const bool on = a.layers[l].head_gates[(size_t)t * H + h] != 0.f;
                    if (on) ours.insert(h % E);
                    whole = whole && on == (a.layers[l].head_gates[(size_t)t * H + h % E] != 0.f);
                }
                o.heads_compared++;
                if ((!whole || ours != layer["experts"][t].get<std::set<int>>()) && o.experts_identical) {
                    o.experts_identical = false;
                    o.first_difference = "attention experts of layer " + std::to_string(l) + " token " + std::to_string(t);
                }
            }
        }
    }
    return o;
}

json expected_of(const std::string& name) {
    std::ifstream in(case_dir(name) / "expected.json");
    EXPECT_TRUE(in) << "no expected.json for " << name;
    return json::parse(in);
}

class HfTiny : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTiny, LogitsAndExpertChoicesMatchTheReference) {
    const std::string name = GetParam();
    auto hf = hf_model_open(case_dir(name).string());
    ASSERT_TRUE(hf) << hf.status.msg;
    const json e = expected_of(name);
    const Outcome o = compare((*hf)->model, e);
    EXPECT_LE(o.max_dlogit, 1e-4) << name;
    EXPECT_TRUE(o.experts_identical) << name << ": " << o.first_difference;
    // A BF16 checkpoint's matrices (experts, attention, dense FFNs, an untied LM head) are read from the
    // mapped shards as BF16 (none copied as float32); the other dtypes are widened.
    const ModelConfig& c = (*hf)->cfg.model;
    const bool bf16 = (*hf)->info.dtype == "BF16";
    // JetMoE's query and output matrices are reordered at load (heads numbered expert-fastest): float32 copies.
    const uint64_t reordered = c.attention.heads.router == HeadRouterKind::experts
                                   ? (uint64_t)c.n_layers * 2 * c.n_heads * c.head_dim * c.d_model
                                   : 0;
    EXPECT_EQ((*hf)->mapped_elements, bf16 ? hf_held_elements(c) - reordered : 0) << name;
    EXPECT_EQ(model_param_layout(c).total() - (*hf)->model.layout.total() > 0, bf16) << name;
    RecordProperty("max_dlogit", std::to_string(o.max_dlogit));
    std::printf("%-18s %-22s %-5s max|dlogit| %.2e experts identical: %s%s\n", name.c_str(),
                (*hf)->info.architecture.c_str(), (*hf)->info.dtype.c_str(), o.max_dlogit,
                o.experts_identical ? "yes" : "no",
                o.heads_compared ? (", head choices compared: " + std::to_string(o.heads_compared)).c_str() : "");
    // every token, every layer
    if (name.rfind("moh_llama3", 0) == 0 || name.rfind("jetmoe", 0) == 0) EXPECT_EQ(o.heads_compared, 3 * 14) << name;
}

INSTANTIATE_TEST_SUITE_P(Cases, HfTiny,
                         ::testing::Values("llama", "mixtral", "granitemoe", "olmoe", "qwen2moe", "qwen3moe",
                                           "llama_bf16", "mixtral_bf16", "granitemoe_bf16", "olmoe_bf16",
                                           "qwen2moe_bf16", "qwen3moe_bf16", "mixtral_sharded", "qwen3moe_sharded",
                                           "olmoe_f16", "moh_llama3", "moh_llama3_bf16", "jetmoe", "jetmoe_bf16",
                                           "jetmoe_original"));

// JetMoE's attention experts through the paths a routed model takes besides the full forward: the skip
// path (only the chosen experts' heads computed: generation, cost) and KV-cache decoding, each on the
// reference's ids, give the full forward's logits.
TEST(HfJetMoe, SkipPathAndDecodeGiveTheFullForwardsLogits) {
    auto hf = hf_model_open(case_dir("jetmoe").string());
    ASSERT_TRUE(hf) << hf.status.msg;
    const Model& m = (*hf)->model;
    const std::vector<int> ids = expected_of("jetmoe")["ids"].get<std::vector<int>>();
    const int T = (int)ids.size(), V = m.cfg.vocab_size;
    Activations full, skip, one;
    activations_create(full, m.cfg, 1, T);
    activations_create(skip, m.cfg, 1, T);
    model_forward(m, full, ids.data(), nullptr, 1, T);
    model_forward(m, skip, ids.data(), nullptr, 1, T, {.skip = true});
    double dskip = 0, ddecode = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) dskip = std::max(dskip, (double)std::fabs(full.logits[i] - skip.logits[i]));
    activations_create(one, m.cfg, 1, 1);
    KVCache kv;
    kvcache_create(kv, m.cfg, T);
    for (int t = 0; t < T; t++) {
        model_decode_step(m, one, kv, ids[t], {.skip = t % 2 == 0});
        for (int v = 0; v < V; v++) ddecode = std::max(ddecode, (double)std::fabs(one.logits[v] - full.logits[(size_t)t * V + v]));
    }
    EXPECT_LE(dskip, 1e-4);  // the reference's bar: float32 sums in another order (measured ~1e-5)
    EXPECT_LE(ddecode, 1e-4);
    std::printf("jetmoe: skip path max|dlogit| %.2e, decode %.2e\n", dskip, ddecode);
}

// With the AVX512-BF16 kernel asked for before opening (the CLI's --bf16-activations), a BF16 folder's
// matrices are packed at open (gemm_bf16w_packed) instead of read from the mapping by the dot kernel:
// the same BF16 products summed in another order. The activations are rounded to BF16 again in every
// layer, so a float32 difference that lands on a rounding midpoint can grow to 2^-9 of one value; the
// bars leave room for a rare such flip (measured: 2.4e-7 to 9.5e-7, no choice differing), and a wrong
// packing is far outside them. The activations' rounding itself is checked in Gemm.Bf16WeightsMatchRef.
TEST(HfPacked, PackedAtOpenComputesWhatTheMappedWeightsDo) {
    if (!bf16_dot_available()) GTEST_SKIP() << "no AVX512-BF16 on this CPU: nothing is packed";
    struct KernelReset {
        ~KernelReset() { gemm_bf16_set_kernel(Bf16Kernel::widen); }
    } reset;
    for (const std::string name : {"llama_bf16", "mixtral_bf16", "granitemoe_bf16", "olmoe_bf16", "qwen2moe_bf16", "qwen3moe_bf16"}) {
        gemm_bf16_set_kernel(Bf16Kernel::widen);
        auto mapped = hf_model_open(case_dir(name).string());
        gemm_bf16_set_kernel(Bf16Kernel::bf16);
        auto packed = hf_model_open(case_dir(name).string());
        ASSERT_TRUE(mapped && packed) << name;
        EXPECT_FALSE((*mapped)->packed) << name;
        EXPECT_TRUE((*packed)->packed) << name;
        EXPECT_EQ((*packed)->mapped_elements, (*mapped)->mapped_elements) << name;
        const ModelConfig& c = (*packed)->cfg.model;
        const std::vector<int> ids = expected_of(name)["ids"].get<std::vector<int>>();
        const int T = (int)ids.size(), V = c.vocab_size, K = c.moe.top_k;
        Activations am, ap;  // both forwards on the bf16 kernel now
        activations_create(am, c, 1, T);
        activations_create(ap, c, 1, T);
        model_forward((*mapped)->model, am, ids.data(), nullptr, 1, T);
        model_forward((*packed)->model, ap, ids.data(), nullptr, 1, T);
        double between = 0, scale = 0;
        for (size_t i = 0; i < (size_t)T * V; i++) {
            between = std::max(between, (double)std::fabs(am.logits[i] - ap.logits[i]));
            scale = std::max(scale, (double)std::fabs(am.logits[i]));
        }
        EXPECT_LT(between, 1e-3 * (1.0 + scale)) << name;
        int differ = 0;
        for (int l = 0; l < c.n_layers; l++)
            if ((*packed)->model.w.layers[l].moe.router)
                for (int t = 0; t < T * K; t++) differ += am.layers[l].ms.choice[t] != ap.layers[l].ms.choice[t];
        int layers = 0;
        for (int l = 0; l < c.n_layers; l++) layers += (*packed)->model.w.layers[l].moe.router != nullptr;
        EXPECT_LE(differ, std::max(1, layers * T * K / 100)) << name;  // one flip, or 1% of the choices
        std::printf("%-16s packed vs mapped: max|dlogit| %.2e, expert choices differing %d\n", name.c_str(), between, differ);
    }
}

// A quirk, taken out of RouteLab's model: the reference must then disagree.
struct Quirk {
    const char* model;
    const char* what;
    std::function<void(Model&)> remove;
};

void each_layer(Model& m, const std::function<void(LayerWeights&)>& f) {
    for (LayerWeights& w : m.w.layers) f(w);
}

const std::vector<Quirk>& quirks() {
    static const std::vector<Quirk> q = {
        {"llama", "rope_theta 500000", [](Model& m) { m.cfg.attention.rope_theta = 10000.f; }},
        {"llama", "rope_scaling llama3", [](Model& m) { m.cfg.attention.rope_scaling.kind = RopeScaling::none; }},
        {"mixtral", "renormalised top-k weights", [](Model& m) { m.cfg.moe.topk_weights = TopkWeights::probs; }},
        {"granitemoe", "embedding_multiplier", [](Model& m) { m.cfg.embedding_multiplier = 1.f; }},
        {"granitemoe", "residual_multiplier", [](Model& m) { m.cfg.residual_multiplier = 1.f; }},
        {"granitemoe", "logits_scaling", [](Model& m) { m.cfg.logits_scaling = 1.f; }},
        {"granitemoe", "attention_multiplier", [](Model& m) { m.cfg.attention.scale = 0.f; }},
        {"granitemoe", "input_linear's gate half first",
         [](Model& m) { each_layer(m, [](LayerWeights& w) { for (auto& e : w.moe.experts) std::swap(e.w_gate, e.w_up); }); }},
        {"olmoe", "QK-norm", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.q_norm = w.k_norm = nullptr; }); }},
        {"olmoe", "QK-norm over the whole width", [](Model& m) { m.cfg.attention.qk_norm = QkNorm::head; }},
        {"olmoe", "norm_topk_prob false", [](Model& m) { m.cfg.moe.topk_weights = TopkWeights::renormalised; }},
        {"qwen2moe", "q/k/v biases", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.bq = w.bk = w.bv = nullptr; }); }},
        {"qwen2moe", "shared expert gate", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.moe.shared_gate = nullptr; }); }},
        {"qwen2moe", "norm_topk_prob false", [](Model& m) { m.cfg.moe.topk_weights = TopkWeights::renormalised; }},
        {"qwen3moe", "per-head QK-norm", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.q_norm = w.k_norm = nullptr; }); }},
        {"qwen3moe", "norm_topk_prob true", [](Model& m) { m.cfg.moe.topk_weights = TopkWeights::probs; }},
        {"jetmoe", "attention experts' bias", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.bo = nullptr; }); }},
        {"jetmoe", "MoE output bias", [](Model& m) { each_layer(m, [](LayerWeights& w) { w.moe_out_bias = nullptr; }); }},
        {"jetmoe", "attention top-k (num_experts_per_tok)", [](Model& m) { m.cfg.attention.heads.n_active_routed *= 2; }},
    };
    return q;
}

TEST(HfQuirks, EachQuirkIsLoadBearing) {
    for (const Quirk& q : quirks()) {
        auto hf = hf_model_open(case_dir(q.model).string());
        ASSERT_TRUE(hf) << hf.status.msg;
        q.remove((*hf)->model);
        const Outcome o = compare((*hf)->model, expected_of(q.model));
        EXPECT_TRUE(o.max_dlogit > 1e-3 || !o.experts_identical) << q.model << " without " << q.what << " still matches";
        std::printf("%-11s without %-32s max|dlogit| %.2e experts identical: %s\n", q.model, q.what, o.max_dlogit,
                    o.experts_identical ? "yes" : "no");
    }
}

// The one model reads the dense layers of a sparse model (Qwen's mlp_only_layers) as dense.
TEST(HfQuirks, DenseLayerOfASparseModel) {
    auto hf = hf_model_open(case_dir("qwen2moe").string());
    ASSERT_TRUE(hf) << hf.status.msg;
    EXPECT_EQ((*hf)->cfg.model.moe.dense_layers, "1");
    EXPECT_EQ((*hf)->model.w.layers[1].moe.router, nullptr);
    EXPECT_NE((*hf)->model.w.layers[1].w_gate, nullptr);
    EXPECT_NE(config_training_blocker((*hf)->cfg.model), "");
}

// export --format hf --weights, opened again: RouteLab's own logits.
void export_import(const std::string& preset, const std::vector<std::string>& sets) {
    auto cfg = preset_load(preset);
    ASSERT_TRUE(cfg) << cfg.status.msg;
    for (const auto& s : sets) ASSERT_TRUE(config_apply_override(*cfg, s)) << s;
    cfg->model.vocab_size = 211;
    ASSERT_TRUE(config_validate(*cfg));
    Model m;
    model_create(m, cfg->model, 7, 0.05f);
    const fs::path dir = fs::temp_directory_path() / ("routelab_hf_export_" + preset + std::to_string(::getpid()));
    ASSERT_TRUE(export_hf_weights(dir.string(), m));
    std::ofstream(dir / "config.json") << export_hf_config(*cfg).dump(2);
    auto hf = hf_model_open(dir.string());
    ASSERT_TRUE(hf) << hf.status.msg;
    const int T = 24;
    std::vector<int> ids(T);
    for (int t = 0; t < T; t++) ids[t] = (t * 37 + 5) % 211;
    Activations a, b;
    activations_create(a, m.cfg, 1, T);
    activations_create(b, (*hf)->model.cfg, 1, T);
    model_forward(m, a, ids.data(), nullptr, 1, T);
    model_forward((*hf)->model, b, ids.data(), nullptr, 1, T);
    double d = 0;
    for (size_t i = 0; i < (size_t)T * 211; i++) d = std::max(d, (double)std::fabs(a.logits[i] - b.logits[i]));
    EXPECT_LE(d, 1e-6) << preset;
    std::printf("export -> import %-12s %s max|dlogit| %.2e\n", preset.c_str(), (*hf)->info.architecture.c_str(), d);
    fs::remove_all(dir);
}

TEST(HfExport, ExportedWeightsOpenAgainWithTheSameLogits) {
    export_import("moe-top2-8", {"model.attention.positional=rope", "model.final_norm=true"});
    export_import("default", {"model.attention.positional=rope", "model.final_norm=true"});
}

// A folder opened to inspect in the window (io/hf_inspect.h): refused without a tokenizer; with one,
// frozen with nothing to train, the embedded corpus read by its tokenizer, the expert x domain counts
// measured in short windows of it, and the probe's perplexity that of the logits.
TEST(HfInspect, AFolderOpensFrozenWithItsCorpusCountsAndPerplexity) {
    const fs::path d = case_dir("mixtral");
    fs::remove(d / "tokenizer.json");
    auto none = hf_inspect_state(d.string());
    ASSERT_FALSE(none);
    EXPECT_NE(none.status.msg.find("no tokenizer.json or tokenizer.model"), std::string::npos) << none.status.msg;
    // An ASCII byte-level BPE tokenizer with no merges: each printable byte, space and newline a token
    // (96 fit the tiny models' vocabularies).
    fs::copy_file(fs::path(ROUTELAB_SOURCE_DIR) / "tests/data/tokenizers/ascii_byte_level.json", d / "tokenizer.json");
    auto st = hf_inspect_state(d.string());
    ASSERT_TRUE(st) << st.status.msg;
    TrainState& s = **st;
    EXPECT_TRUE(model_frozen(s.model));
    EXPECT_EQ(s.cfg.train.steps, 0);
    EXPECT_EQ(s.cfg.name, "mixtral");
    ASSERT_GT(s.data->val.ids.size(), 2000u);
    const int n = 512, window = 64;
    const Specialization sp = specialization_measure(s.model, s.data->tok, s.data->val, n, 1, window);
    EXPECT_EQ(sp.tokens, n);
    ASSERT_EQ((int)sp.layers.size(), s.cfg.model.n_layers);
    for (const LayerSpecialization& L : sp.layers) {
        double total = 0;
        std::set<int> domains;
        for (const auto& row : L.by_domain)
            for (size_t c = 0; c < row.size(); c++) total += row[c], row[c] > 0 ? (void)domains.insert((int)c) : (void)0;
        EXPECT_EQ(total, n);  // every token's top-1 expert counted once
        EXPECT_GE(domains.size(), 2u);
    }
    // A progress that says stop (the window's session closing) ends the measurement after that window.
    int calls = 0;
    const Specialization part = specialization_measure(s.model, s.data->tok, s.data->val, n, 1, window, [&](double f) {
        calls++;
        EXPECT_NEAR(f, (double)window / n, 1e-12);
        return false;
    });
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(part.tokens, window);
    const ProbeSnapshot p = probe_run(s.model, s.data->tok, "abc 12, def.");
    const int T = (int)p.tokens.size(), V = s.cfg.model.vocab_size;
    ASSERT_EQ(T, 12);
    std::vector<int> ids;
    for (const auto& t : p.tokens) ids.push_back(t.id);
    Activations a;
    activations_create(a, s.model.cfg, 1, T);
    model_forward(s.model, a, ids.data(), nullptr, 1, T);
    double nll = 0;
    for (int t = 0; t + 1 < T; t++) {
        double se = 0;
        for (int v = 0; v < V; v++) se += std::exp((double)a.logits[(size_t)t * V + v]);
        nll += std::log(se) - a.logits[(size_t)t * V + ids[t + 1]];
    }
    EXPECT_NEAR(p.perplexity, std::exp(nll / (T - 1)), 1e-4 * p.perplexity);
    EXPECT_EQ(p.token_nll.size(), (size_t)T - 1);
}

TEST(HfErrors, UnsupportedArchitectureAndBrokenFoldersSayWhatToDo) {
    const fs::path dir = fs::temp_directory_path() / ("routelab_hf_bad_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::copy(case_dir("mixtral"), dir, fs::copy_options::recursive);
    auto edit = [&](const std::function<void(json&)>& f) {
        std::ifstream in(dir / "config.json");
        json j = json::parse(in);
        f(j);
        std::ofstream(dir / "config.json") << j.dump();
    };
    auto message = [&]() {
        auto hf = hf_model_open(dir.string());
        EXPECT_FALSE(hf);
        return hf ? std::string() : hf.status.msg;
    };
    edit([](json& j) { j["architectures"] = {"GPT2LMHeadModel"}; });
    std::string msg = message();
    EXPECT_NE(msg.find("GPT2LMHeadModel"), std::string::npos) << msg;
    EXPECT_NE(msg.find("OlmoeForCausalLM"), std::string::npos) << msg;
    // Settings read wrong would be silent: a RoPE other than default or llama3 in either spelling is
    // refused, so is a llama3 one without its keys, and a bad value.
    edit([](json& j) { j["architectures"] = {"MixtralForCausalLM"}; j["rope_scaling"] = {{"rope_type", 3}}; });
    msg = message();
    EXPECT_NE(msg.find("rope_scaling"), std::string::npos) << msg;
    edit([](json& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}}; });
    msg = message();
    EXPECT_NE(msg.find("yarn"), std::string::npos) << msg;
    edit([](json& j) {
        j.erase("rope_scaling");
        j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0}};
    });
    msg = message();
    EXPECT_NE(msg.find("rope_parameters of type llama3 has no 'low_freq_factor'"), std::string::npos) << msg;
    edit([](json& j) {
        j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 32.0},
                                {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                {"original_max_position_embeddings", 8192}};
    });
    auto l3 = hf_config_read(dir.string(), nullptr);
    ASSERT_TRUE(l3) << l3.status.msg;
    EXPECT_EQ(l3->model.attention.rope_scaling.kind, RopeScaling::llama3);
    EXPECT_EQ(l3->model.attention.rope_scaling.factor, 32.f);
    EXPECT_EQ(l3->model.attention.rope_scaling.original_max_positions, 8192);
    edit([](json& j) { j["rope_parameters"]["high_freq_factor"] = 0.5; });  // below low_freq_factor
    msg = message();
    EXPECT_NE(msg.find("high_freq_factor"), std::string::npos) << msg;
    edit([](json& j) { j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 250000.0}}; });
    auto v5 = hf_config_read(dir.string(), nullptr);
    ASSERT_TRUE(v5) << v5.status.msg;
    EXPECT_EQ(v5->model.attention.rope_theta, 250000.f);  // transformers 5 keeps rope_theta in rope_parameters
    edit([](json& j) { j.erase("rope_parameters"); j["num_hidden_layers"] = 80; });
    msg = message();
    EXPECT_NE(msg.find("at most 64 layers; this one has 80"), std::string::npos) << msg;
    {  // nesting deep enough to exhaust a recursive parser's stack
        const std::string deep(200000, '[');
        std::ofstream(dir / "config.json") << deep;
        msg = message();
        EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
        fs::copy_file(case_dir("mixtral") / "config.json", dir / "config.json", fs::copy_options::overwrite_existing);
    }
    edit([](json& j) { j["eos_token_id"] = {2, 7}; });
    HfModelInfo info;
    ASSERT_TRUE(hf_config_read(dir.string(), &info));
    EXPECT_EQ(info.eos_id, 2);  // a list's first entry (Llama 3.x Instruct lists several)
    edit([](json& j) { j["eos_token_id"] = 100000; });
    ASSERT_TRUE(hf_config_read(dir.string(), &info));
    EXPECT_EQ(info.eos_id, -1);  // outside the vocabulary: none
    edit([](json& j) { j["architectures"] = {"MixtralForCausalLM"}; j["hidden_size"] = 48; j["eos_token_id"] = 2; });
    msg = message();
    EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
    edit([](json& j) { j["hidden_size"] = 16384; });  // a limit of RouteLab's, said in config.json's terms
    msg = message();
    EXPECT_NE(msg.find("hidden_size (RouteLab's model.d_model) must be in 1..8192"), std::string::npos) << msg;
    edit([](json& j) { j["hidden_size"] = 40; j["num_hidden_layers"] = 2; });
    msg = message();  // the third layer's tensors are read by nothing
    EXPECT_NE(msg.find("has no place"), std::string::npos) << msg;
    // Tied, with the file's own lm_head.weight: transformers ties it to embed_tokens at load and never
    // reads it (PreTrainedModel.tie_weights), so RouteLab opens the folder the same way.
    edit([](json& j) { j["num_hidden_layers"] = 3; j["tie_word_embeddings"] = true; });
    {
        auto tied = hf_model_open(dir.string());
        ASSERT_TRUE(tied) << tied.status.msg;
        EXPECT_TRUE((*tied)->cfg.model.tie_embeddings);
        EXPECT_EQ((*tied)->model.layout.find("lm_head"), nullptr);
    }
    edit([](json& j) { j["tie_word_embeddings"] = false; });
    fs::resize_file(dir / "model.safetensors", fs::file_size(dir / "model.safetensors") - 100);
    msg = message();
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
    fs::remove(dir / "model.safetensors");
    msg = message();
    EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
    for (const std::string& m : {msg}) EXPECT_EQ(m.find('\n'), std::string::npos);
    fs::remove_all(dir);
}

}  // namespace
