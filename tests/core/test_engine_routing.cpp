// Engine routing (docs/routing-math.md §12) at the level of the model and the trainer, and against an
// independent PyTorch re-implementation of the same rules (tests/peer/router_ref.py): selection,
// weights, capacity, f, P, every balance loss, the z-loss and the bias update, to 1e-6 on the logits
// RouteLab computed. The peer part is skipped, saying why, where the interpreter has no torch.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/export.h"
#include "layers/head_router.h"
#include "layers/moe_router.h"
#include "model/model.h"
#include "train/trainer.h"
#include "subprocess.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

using test::python;
using test::torch_importable;
test::Captured run(const std::string& cmd) { return test::run_captured(cmd); }

Config small_moe(const std::string& preset) {
    auto cfg = preset_load(preset);
    EXPECT_TRUE(cfg.is_ok()) << cfg.status.msg;
    Config c = *cfg;
    c.model.n_layers = 2;
    c.model.seq_len = 16;
    c.train.batch_size = 4;
    c.train.steps = 6;
    c.data.synthetic_docs = 40;
    return c;
}

}  // namespace

// The trainer moves every expert's and routed head's bias by exactly +-u or 0 per step against its
// load, reports it in StepStats, and a checkpoint keeps it (a buffer, not a parameter).
TEST(EngineTrain, BiasesMoveAgainstLoadAndCheckpointsKeepThem) {
    Config c = small_moe("deepseek-v3-style");
    c.model.attention.heads = HeadsConfig{HeadSelection::moh, 8, 2, 2, 0.f, GateScaling::official, true, 0.01f};
    c.model.moe.bias_update_rate = 0.02f;
    auto st = trainer_create(c);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    TrainState& s = **st;
    ASSERT_NE(s.model.w.layers[0].moe.bias, nullptr);
    ASSERT_NE(s.model.w.layers[0].head_bias, nullptr);
    EXPECT_EQ(s.model.g.layers[0].moe.bias, nullptr) << "no gradient for a buffer";
    EXPECT_EQ(s.model.layout.find("layers.0.moe.expert_bias"), nullptr) << "not a parameter";
    ASSERT_NE(s.model.buffer_layout.find("layers.0.moe.expert_bias"), nullptr);
    const int E = c.model.moe.n_experts;
    std::vector<float> before;
    StepStats last;
    for (int i = 0; i < 3; i++) {
        before.assign(s.model.w.layers[1].moe.bias, s.model.w.layers[1].moe.bias + E);
        last = trainer_step(s);
        const float* b = s.model.w.layers[1].moe.bias;
        const std::vector<float>& load = s.acts.layers[1].mst.f;
        float mean = 0.f;
        for (float v : load) mean += v / E;
        for (int e = 0; e < E; e++) {
            const float step = b[e] - before[e];
            const float want = load[e] < mean ? 0.02f : load[e] > mean ? -0.02f : 0.f;
            EXPECT_NEAR(step, want, 1e-6) << "expert " << e << " load " << load[e] << " mean " << mean;
        }
    }
    ASSERT_TRUE(last.layers[1].has_expert_bias && last.layers[1].has_head_bias);
    for (int e = 0; e < E; e++) EXPECT_EQ(last.layers[1].expert_bias[e], s.model.w.layers[1].moe.bias[e]);
    double moved = 0;
    for (int i = 0; i < 6; i++) moved += std::abs(last.layers[0].head_bias[i]);
    EXPECT_GT(moved, 0.) << "head biases moved";

    const fs::path path = fs::temp_directory_path() / ("rl_engine_" + std::to_string(getpid()) + ".safetensors");
    ASSERT_TRUE(checkpoint_save(path.string(), s.model, s.cfg, s.data->tok, {s.step, 0.f}).is_ok());
    auto ck = checkpoint_load(path.string());
    ASSERT_TRUE(ck.is_ok()) << ck.status.msg;
    EXPECT_EQ((*ck)->model.buffers.data, s.model.buffers.data) << "biases round-trip";
    EXPECT_EQ((*ck)->model.params.data, s.model.params.data);
    fs::remove(path);
}

// global_aux_loss: the ring holds the last W-1 steps' choice counts, and the aux loss's f is
// (those + this step's) / (rows * K) over the window.
TEST(EngineTrain, GlobalBalanceWindowAccumulatesTheLastSteps) {
    Config c = small_moe("qwen-global-balance");
    c.model.moe.global_aux_window = 3;
    auto st = trainer_create(c);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    TrainState& s = **st;
    const int E = c.model.moe.n_experts, K = c.model.moe.top_k, N = c.train.batch_size * c.model.seq_len;
    std::vector<std::vector<float>> counts;  // per step, layer 0
    for (int i = 0; i < 5; i++) {
        trainer_step(s);
        const LayerActs& L = s.acts.layers[0];
        std::vector<float> n(E);
        for (int e = 0; e < E; e++) n[e] = L.mst.counts[e];
        EXPECT_NEAR(std::accumulate(n.begin(), n.end(), 0.f), (float)N * K, 1e-3);
        if (i >= 2) {  // f_bal of step i = steps i-2, i-1 and i
            for (int e = 0; e < E; e++) {
                const float want = (counts[i - 2][e] + counts[i - 1][e] + n[e]) / (3.f * N * K);
                EXPECT_NEAR(L.mst.f_bal[e], want, 1e-5) << "step " << i << " expert " << e;
            }
        }
        counts.push_back(n);
        for (int e = 0; e < E; e++)  // after the update the ring holds this step and the one before
            EXPECT_NEAR(L.moe_ring_sum[e], n[e] + (i ? counts[i - 1][e] : 0.f), 1e-3);
    }
}

// Configs that mix the engine keys with routings they do not apply to are refused, naming the key.
TEST(EngineConfig, ValidationNamesTheKey) {
    auto cfg = preset_load("moe-top2-8");
    ASSERT_TRUE(cfg.is_ok());
    auto refused = [&](const std::string& set, const std::string& key) {
        Config c = *cfg;
        for (size_t i = 0, j; i < set.size(); i = j + 1) {
            j = set.find(' ', i);
            if (j == std::string::npos) j = set.size();
            if (Status o = config_apply_override(c, set.substr(i, j - i)); !o) {  // a bad enum fails parsing
                EXPECT_NE(o.msg.find(key), std::string::npos) << o.msg;
                return;
            }
        }
        Status v = config_validate(c);
        EXPECT_FALSE(v.is_ok()) << set;
        EXPECT_NE(v.msg.find(key), std::string::npos) << v.msg;
    };
    refused("model.moe.routing=expert_choice model.moe.score_function=sigmoid", "model.moe.score_function");
    refused("model.moe.routing=noisy_topk model.moe.expert_bias=true", "model.moe.expert_bias");
    refused("model.moe.n_groups=3", "model.moe.n_groups");
    refused("model.moe.n_groups=4 model.moe.group_topk=3", "model.moe.group_topk");
    refused("model.moe.group_topk=1", "model.moe.group_topk");
    refused("model.moe.topk_scaling_factor=0", "model.moe.topk_scaling_factor");
    refused("model.moe.score_function=tanh", "model.moe.score_function");
    refused("model.attention.heads.head_bias=true", "model.attention.heads.head_bias");
    Config ok = *cfg;
    ASSERT_TRUE(config_apply_override(ok, "model.moe.n_groups=4").is_ok());
    ASSERT_TRUE(config_apply_override(ok, "model.moe.group_topk=2").is_ok());
    EXPECT_TRUE(config_validate(ok).is_ok()) << config_validate(ok).msg;
}

// ---- RouteLab's router against tests/peer/router_ref.py on the same logits ----

namespace {

struct PeerCase {
    std::string name;
    MoeRouting routing = MoeRouting::topk;
    int E = 8, K = 2, n_shared = 0;
    ScoreFunction score = ScoreFunction::softmax;
    LoadBalancing balance = LoadBalancing::aux_loss;
    AuxConvention aux = AuxConvention::switch_t;
    TokenDropPolicy drop = TokenDropPolicy::position;
    bool bias = false;
    float gamma = 1.f, cf = 1.25f;
    int n_groups = 1, group_topk = 0;
};

// Runs the router on random inputs and writes the case (inputs: its logits; out: RouteLab's results).
nlohmann::json router_case(const PeerCase& pc, unsigned seed) {
    MoeDims d;
    d.N = 48, d.C = 8, d.E = pc.E, d.K = pc.K, d.F = 2, d.n_shared = pc.n_shared;
    d.routing = pc.routing, d.score = pc.score, d.balance = pc.balance, d.aux = pc.aux, d.drop = pc.drop;
    d.topk_scale = pc.gamma, d.capacity_factor = pc.cf, d.n_groups = pc.n_groups, d.group_topk = pc.group_topk;
    d.seq_rows = 12, d.training = true;
    std::mt19937 g(seed);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x((size_t)d.N * d.C), router((size_t)d.E * d.C), bias(d.E), gc(d.E);
    for (auto& v : x) v = nd(g);
    for (auto& v : router) v = 0.7f * nd(g);
    for (auto& v : bias) v = 0.2f * nd(g);
    for (int e = 0; e < d.E; e++) gc[e] = (float)(int)(60 + 40 * std::abs(nd(g)));
    if (pc.bias) d.bias = bias.data();
    if (pc.balance == LoadBalancing::global_aux_loss) d.global_counts = gc.data(), d.global_rows = 96;
    const size_t N = d.N, E = d.E, A = d.max_assign();
    std::vector<float> logits(N * E), probs(N * E), xr(N * d.C), jit(N * d.C), a_w(A), cw(N * d.K);
    std::vector<int> ints(2 * A + E + 1 + N * d.K + 1 + moe_work_ints(d));
    MoeSaved sv;
    sv.xr = xr.data(), sv.jit = jit.data(), sv.logits = logits.data(), sv.probs = probs.data(), sv.a_w = a_w.data();
    sv.cw = cw.data();
    sv.a_token = ints.data(), sv.a_expert = sv.a_token + A, sv.offset = sv.a_expert + A;
    sv.choice = sv.offset + E + 1, sv.n_assign = sv.choice + N * d.K, sv.work = sv.n_assign + 1;
    MoeWeights w;
    w.router = router.data();
    MoeStats st;
    moe_route(st, sv, x.data(), w, d);
    moe_stats(st, sv, d);
    nlohmann::json j;
    j["name"] = pc.name;
    j["N"] = d.N, j["E"] = d.E, j["K"] = d.K, j["T"] = d.seq_rows;
    j["score_function"] = score_function_name(pc.score);
    j["renormalise"] = moe_renormalised(d);
    j["bias"] = pc.bias ? nlohmann::json(bias) : nlohmann::json(nullptr);
    j["n_groups"] = pc.n_groups, j["group_topk"] = pc.group_topk, j["scaling_factor"] = pc.gamma;
    j["capacity"] = d.capacity();
    j["drop_policy"] = token_drop_policy_name(pc.drop);
    j["balance"] = load_balancing_name(pc.balance);
    j["aux_scale"] = pc.aux == AuxConvention::hf ? (float)d.E * d.K : (float)d.E;
    j["global_counts"] = gc, j["global_tokens"] = (int)d.global_rows;
    j["bias_update_rate"] = 1e-3;
    j["logits"] = logits;
    nlohmann::json out;
    out["choice"] = std::vector<int>(sv.choice, sv.choice + N * d.K);
    nlohmann::json assign = nlohmann::json::array();
    for (int r = 0; r < *sv.n_assign; r++) assign.push_back({sv.a_token[r], sv.a_expert[r], sv.a_w[r]});
    out["assign"] = assign;
    out["scores"] = probs;
    out["f"] = st.f, out["P"] = st.P, out["aux"] = st.aux, out["zloss"] = st.zloss, out["entropy"] = st.entropy;
    out["dropped_frac"] = st.dropped_frac;
    if (pc.bias) {
        std::vector<float> after = bias;
        route_bias_update(after.data(), st.counts.data(), d.E, 1e-3f);
        out["bias_after"] = after;
    } else {
        out["bias_after"] = nullptr;
    }
    j["out"] = out;
    return j;
}

}  // namespace

TEST(RouterPeer, MatchesAPyTorchReimplementationOfTheRules) {
    if (!torch_importable()) GTEST_SKIP() << python() << " cannot import torch (scripts/setup.sh --with-torch installs it)";
    const std::vector<PeerCase> cases = {
        {"softmax_topk_renorm"},
        {"softmax_shared_plain", MoeRouting::topk, 8, 2, 1},
        {"sigmoid_top2", MoeRouting::topk, 8, 2, 0, ScoreFunction::sigmoid},
        {"sigmoid_bias_groups_gamma_seq", MoeRouting::topk, 16, 4, 1, ScoreFunction::sigmoid,
         LoadBalancing::seq_aux_loss, AuxConvention::switch_t, TokenDropPolicy::position, true, 2.5f, 1.25f, 4, 2},
        {"softmax_bias_global_hf", MoeRouting::topk, 8, 2, 0, ScoreFunction::softmax, LoadBalancing::global_aux_loss,
         AuxConvention::hf, TokenDropPolicy::position, true},
        {"switch_capacity_position", MoeRouting::top1_capacity, 4, 1, 0, ScoreFunction::softmax,
         LoadBalancing::aux_loss, AuxConvention::switch_t, TokenDropPolicy::position, false, 1.f, 0.8f},
        {"switch_capacity_probs_sigmoid_bias", MoeRouting::top1_capacity, 4, 1, 0, ScoreFunction::sigmoid,
         LoadBalancing::seq_aux_loss, AuxConvention::switch_t, TokenDropPolicy::probs, true, 1.f, 0.8f},
        {"groups_softmax_none", MoeRouting::topk, 8, 4, 0, ScoreFunction::softmax, LoadBalancing::none,
         AuxConvention::switch_t, TokenDropPolicy::position, false, 1.f, 1.25f, 4, 2},
    };
    nlohmann::json file;
    for (size_t i = 0; i < cases.size(); i++) file["cases"].push_back(router_case(cases[i], 100 + (unsigned)i));
    const fs::path dir = fs::temp_directory_path() / ("rl_router_peer_" + std::to_string(getpid()));
    fs::create_directories(dir);
    std::ofstream(dir / "cases.json") << file.dump();
    const std::string script = std::string(ROUTELAB_SOURCE_DIR) + "/tests/peer/router_ref.py";
    auto [code, out] = run("'" + python() + "' '" + script + "' '" + (dir / "cases.json").string() + "'");
    std::printf("%s", out.c_str());
    EXPECT_EQ(code, 0) << out;
    for (const PeerCase& pc : cases) EXPECT_NE(out.find("case " + pc.name + ":"), std::string::npos) << out;
    // The check can fail: one weight off by 1e-5 must be reported.
    file["cases"][2]["out"]["assign"][3][2] = file["cases"][2]["out"]["assign"][3][2].get<double>() + 1e-5;
    std::ofstream(dir / "bad.json") << file.dump();
    auto [bad, bad_out] = run("'" + python() + "' '" + script + "' '" + (dir / "bad.json").string() + "'");
    EXPECT_EQ(bad, 1) << bad_out;
    fs::remove_all(dir);
}

// ---- export (docs/export.md) ----

namespace {

// A small RoPE model trained a few steps, so routers and experts are not at their initial values.
std::unique_ptr<TrainState> trained(const std::string& preset, std::vector<std::string> sets) {
    Config c = small_moe(preset);
    sets.push_back("model.attention.positional=rope");
    sets.push_back("model.final_norm=true");
    for (const auto& s : sets) EXPECT_TRUE(config_apply_override(c, s).is_ok()) << s;
    auto st = trainer_create(c);
    EXPECT_TRUE(st.is_ok()) << st.status.msg;
    if (!st) return nullptr;
    for (int i = 0; i < 5; i++) trainer_step(**st);
    return std::move(*st);
}

// RouteLab's logits on two fixed sequences, and the exported folder; hf_forward.py must match them.
void expect_hf_forward_matches(TrainState& s, const std::string& arch) {
    const fs::path dir = fs::temp_directory_path() / ("rl_export_" + arch + std::to_string(getpid()));
    fs::remove_all(dir);
    ASSERT_TRUE(export_hf_weights(dir.string(), s.model).is_ok()) << export_hf_weights(dir.string(), s.model).msg;
    const nlohmann::json cfg = export_hf_config(s.cfg);
    EXPECT_EQ(cfg["architectures"][0], arch);
    std::ofstream(dir / "config.json") << cfg.dump(2);
    const ModelConfig& m = s.model.cfg;
    const int B = 2, T = m.seq_len;
    std::vector<int> tok(B * T);
    for (int i = 0; i < B * T; i++) tok[i] = (i * 7 + 3) % m.vocab_size;
    Activations a;
    activations_create(a, m, B, T);
    model_forward(s.model, a, tok.data(), nullptr, B, T, {});
    nlohmann::json c;
    c["tokens"] = {std::vector<int>(tok.begin(), tok.begin() + T), std::vector<int>(tok.begin() + T, tok.end())};
    c["logits"] = std::vector<float>(a.logits, a.logits + (size_t)B * T * m.vocab_size);
    c["tol"] = 1e-4;
    std::ofstream(dir / "case.json") << c.dump();
    const std::string script = std::string(ROUTELAB_SOURCE_DIR) + "/tests/peer/hf_forward.py";
    auto [code, out] = run("'" + python() + "' '" + script + "' '" + dir.string() + "' '" + (dir / "case.json").string() + "'");
    std::printf("%s", out.c_str());
    EXPECT_EQ(code, 0) << out;
    // ... and it can fail: one logit moved by 1e-2.
    c["logits"][5] = c["logits"][5].get<double>() + 1e-2;
    std::ofstream(dir / "bad.json") << c.dump();
    auto [bad, bad_out] = run("'" + python() + "' '" + script + "' '" + dir.string() + "' '" + (dir / "bad.json").string() + "'");
    EXPECT_EQ(bad, 1) << bad_out;
    fs::remove_all(dir);
}

}  // namespace

TEST(Export, MixtralWeightsReproduceRouteLabLogitsInPyTorch) {
    if (!torch_importable()) GTEST_SKIP() << python() << " cannot import torch (scripts/setup.sh --with-torch installs it)";
    auto s = trained("moe-top2-8", {});
    ASSERT_TRUE(s);
    expect_hf_forward_matches(*s, "MixtralForCausalLM");
}

TEST(Export, LlamaWeightsWithWoAndTiedEmbeddingsReproduceLogits) {
    if (!torch_importable()) GTEST_SKIP() << python() << " cannot import torch (scripts/setup.sh --with-torch installs it)";
    auto s = trained("seed-baseline", {"model.attention.use_wo=true", "model.tie_embeddings=true", "model.n_kv_heads=2"});
    ASSERT_TRUE(s);
    expect_hf_forward_matches(*s, "LlamaForCausalLM");
}

TEST(Export, RefusesWeightsThatDoNotMapAndNamesEveryUnmappedSetting) {
    auto cfg = preset_load("moe-top2-8");  // CoPE, no final norm
    ASSERT_TRUE(cfg.is_ok());
    cfg->model.vocab_size = 50;
    const std::string why = export_hf_weights_blocker(cfg->model);
    EXPECT_NE(why.find("positional"), std::string::npos) << why;
    Model m;
    model_create(m, cfg->model, 1, 0.02f);
    EXPECT_FALSE(export_hf_weights((fs::temp_directory_path() / "rl_never").string(), m).is_ok());
    auto moh = preset_load("moh-moe");
    ASSERT_TRUE(moh.is_ok());
    moh->model.vocab_size = 50;
    const auto un = export_hf_config(*moh)["_routelab_unmapped"];
    std::string all;
    for (const auto& u : un) all += u.get<std::string>() + "\n";
    EXPECT_NE(all.find("heads.kind=moh"), std::string::npos) << all;
    EXPECT_NE(all.find("cope"), std::string::npos) << all;
    const std::string meg = export_megatron(*moh);
    EXPECT_NE(meg.find("# unmapped: model.attention.heads.kind=moh"), std::string::npos) << meg;
}

TEST(Export, MegatronArgumentsOfDeepSeekV3Style) {
    auto cfg = preset_load("deepseek-v3-style");
    ASSERT_TRUE(cfg.is_ok());
    cfg->model.vocab_size = 605;
    const std::string t = export_megatron(*cfg);
    for (const char* want : {"--num-experts 16\n", "--moe-router-topk 4\n", "--moe-router-score-function sigmoid\n",
                             "--moe-router-enable-expert-bias\n", "--moe-router-bias-update-rate 0.001\n",
                             "--moe-router-load-balancing-type none\n", "--moe-aux-loss-coeff 0\n",
                             "--moe-ffn-hidden-size 64\n", "--moe-shared-expert-intermediate-size 64\n",
                             "--moe-router-num-groups 4\n", "--moe-router-group-topk 2\n",
                             "--moe-router-topk-scaling-factor 2.5\n", "--num-layers 3\n", "--hidden-size 128\n"})
        EXPECT_NE(t.find(want), std::string::npos) << want << " in\n" << t;
    EXPECT_EQ(t.find("--moe-router-pre-softmax"), std::string::npos);
    // Every non-comment line is one --flag [value] a launch script can paste.
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);)
        if (line[0] != '#') EXPECT_EQ(line.rfind("--", 0), 0u) << line;
    const nlohmann::json hf = export_hf_config(*cfg);
    EXPECT_EQ(hf["architectures"][0], "DeepseekV3ForCausalLM");
    EXPECT_EQ(hf["topk_method"], "noaux_tc");
    EXPECT_EQ(hf["n_group"], 4);
    // Through the CLI, as a user runs it.
    auto [code, out] = run(std::string("'") + ROUTELAB_CLI + "' export --preset deepseek-v3-style --format megatron");
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("--moe-router-enable-expert-bias"), std::string::npos) << out;
    auto [wcode, wout] = run(std::string("'") + ROUTELAB_CLI + "' export --preset moe-top2-8 --format hf --weights --out " +
                             (fs::temp_directory_path() / "rl_export_refused").string());
    EXPECT_EQ(wcode, 1) << wout;
    EXPECT_NE(wout.find("positional"), std::string::npos) << wout;
}

// The cluster's flags (issue 25): EP, node-limited routing sized to the nodes the EP group spans (one
// group a node, each token to ceil(K / 2) of them, never fewer than its experts need; only where it
// limits something), expert tensor parallelism where EP exceeds the experts, and the capacity flags.
TEST(Export, MegatronClusterFlags) {
    auto cfg = preset_load("moe-top2-8");
    ASSERT_TRUE(cfg.is_ok());
    cfg->model.vocab_size = 605;
    cfg->model.moe.n_experts = 64, cfg->model.moe.top_k = 8;  // DeepSeek-V3's reach: K 8 on 8 nodes -> 4
    std::string t = export_megatron(*cfg, {64, 8, 0, false});
    for (const char* want : {"--expert-model-parallel-size 64\n", "--moe-router-num-groups 8\n", "--moe-router-group-topk 4\n"})
        EXPECT_NE(t.find(want), std::string::npos) << want << " in\n" << t;
    EXPECT_EQ(t.find("capacity"), std::string::npos) << t;
    t = export_megatron(*cfg, {8, 8, 1.25, true});  // one node: no groups
    EXPECT_EQ(t.find("--moe-router-num-groups"), std::string::npos) << t;
    for (const char* want : {"--expert-model-parallel-size 8\n", "--moe-expert-capacity-factor 1.25\n", "--moe-pad-expert-input-to-capacity\n"})
        EXPECT_NE(t.find(want), std::string::npos) << want << " in\n" << t;
    cfg->model.moe.n_experts = 8, cfg->model.moe.top_k = 2;
    t = export_megatron(*cfg, {64, 8, 0, false});  // 8 experts on 64 GPUs: each expert over 8 ranks, one a node
    for (const char* want : {"--expert-model-parallel-size 8\n", "--expert-tensor-parallel-size 8\n"})
        EXPECT_NE(t.find(want), std::string::npos) << want << " in\n" << t;
    EXPECT_EQ(t.find("--moe-router-num-groups"), std::string::npos) << "a token's 2 experts are 2 nodes already\n" << t;
    std::istringstream in(t);
    for (std::string line; std::getline(in, line);)
        if (line[0] != '#') EXPECT_EQ(line.rfind("--", 0), 0u) << line;
    EXPECT_EQ(export_megatron(*cfg).find("expert-model-parallel"), std::string::npos) << "no cluster, no EP flag";
    auto [code, out] = run(std::string("'") + ROUTELAB_CLI + "' export --preset moe-top2-8 --format megatron --capacity-factor 1");
    EXPECT_EQ(code, 2) << out;
    EXPECT_NE(out.find("give --ep N too"), std::string::npos) << out;
}
