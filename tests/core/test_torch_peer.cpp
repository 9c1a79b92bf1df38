// The PyTorch peer of `routelab-cli bench --peer torch` (app/peer/torch_peer.py) against
// model_forward and model_backward, on weights where every tensor is random: the CoPE tables (zero
// at initialisation, so the bench's own loss check cannot see them), norm gains and biases
// included. The loss must match to 1e-4 and every gradient tensor to 1e-2 of its largest entry,
// so the peer's timed training step is the same computation. One python process checks every
// case; a wrong loss must fail and an unimplemented config must be refused. Skipped, saying why,
// where the interpreter has no torch.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "subprocess.h"
#include "train/tokenizer.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

const std::string k_peer = std::string(ROUTELAB_SOURCE_DIR) + "/app/peer/torch_peer.py";

using test::python;
using test::torch_importable;

struct PeerCase {
    std::string name;
    Config cfg;
};

Config preset(const std::string& name, const std::vector<std::string>& sets = {}) {
    auto cfg = preset_load(name);
    EXPECT_TRUE(cfg.is_ok()) << name;
    for (const auto& s : sets) EXPECT_TRUE(config_apply_override(*cfg, s).is_ok()) << s;
    cfg->model.vocab_size = 97;
    EXPECT_TRUE(config_validate(*cfg).is_ok()) << name << ": " << config_validate(*cfg).msg;
    return *cfg;
}

// Writes the checkpoint and tokens of one case into dir and returns its entry for --check-cases,
// with RouteLab's loss (plus `offset`, for the case that must fail) and, with `grads`, its gradients.
// Gradients are compared on CoPE tables that are affine in the position: the interpolated logit is
// then linear in p, so its derivative has no jump at integer positions. With a random table a
// position within rounding of an integer takes the derivative of one side in RouteLab and of the
// other in torch, which moves that row's dq by a few percent (docs/benchmarks.md).
nlohmann::json write_case(const fs::path& dir, const PeerCase& pc, bool grads, double offset = 0.0) {
    const ModelConfig& c = pc.cfg.model;
    Model m;
    model_create(m, c, 11, 0.02f);
    std::mt19937_64 rng(5);
    std::normal_distribution<float> n01(0.f, 1.f);
    for (const TensorSpec& s : m.layout.specs()) {
        float* p = m.params.data.data() + s.offset;
        if (s.name.find("cope_pos") != std::string::npos && grads) {  // e[n] = a + (n / 8) b, per head
            const int P = s.shape[s.shape.size() - 2], D = s.shape.back();
            for (size_t t = 0; t < s.numel / ((size_t)P * D); t++)
                for (int d = 0; d < D; d++) {
                    const float a = 0.5f * n01(rng), b = 0.5f * n01(rng);
                    for (int n = 0; n < P; n++) p[(t * P + n) * D + d] = a + (float)n / 8.f * b;
                }
            continue;
        }
        const bool table = s.name.find("cope_pos") != std::string::npos;
        const float mean = s.init == Init::ones ? 1.f : 0.f, sd = table ? 0.5f : 0.1f;
        for (size_t i = 0; i < s.numel; i++) p[i] = mean + sd * n01(rng);
    }
    const int B = 4, T = c.seq_len, N = B * T;
    std::vector<int> tok(N), tgt(N);
    for (int i = 0; i < N; i++) {
        tok[i] = (int)(rng() % c.vocab_size);
        tgt[i] = i % 7 == 3 ? -1 : (int)(rng() % c.vocab_size);  // some padding: masked out of the CE
    }
    Activations a;
    activations_create(a, c, B, T);
    const double loss = model_forward(m, a, tok.data(), tgt.data(), B, T);
    model_zero_grad(m);
    model_backward(m, a, tok.data(), tgt.data());
    std::string words;
    for (int i = 3; i < c.vocab_size; i++) words += "w" + std::to_string(i) + " ";
    auto tk = Tokenizer::train(TokenizerKind::word, {words}, 0);
    EXPECT_TRUE(tk.is_ok());
    const std::string stem = pc.name + (grads ? "-grads" : "");
    const fs::path ck = dir / (stem + ".safetensors"), tf = dir / (stem + ".i32"), gf = dir / (stem + ".grads");
    EXPECT_TRUE(checkpoint_save(ck.string(), m, pc.cfg, *tk, {}).is_ok());
    std::vector<TensorView> views;  // model_backward's gradients under the parameters' names
    for (const TensorSpec& s : m.layout.specs())
        views.push_back({s.name, std::vector<int64_t>(s.shape.begin(), s.shape.end()), m.grads.data.data() + s.offset});
    EXPECT_TRUE(safetensors_write(gf.string(), views, {}).is_ok());
    std::vector<int32_t> ids(tok.begin(), tok.end());
    ids.insert(ids.end(), tgt.begin(), tgt.end());
    std::ofstream(tf, std::ios::binary).write((const char*)ids.data(), (std::streamsize)(ids.size() * 4));
    nlohmann::json entry = {{"checkpoint", ck.string()}, {"tokens", tf.string()}, {"batch", B},
                            {"loss_routelab", loss + offset}};
    if (grads) entry["grads"] = gf.string();
    return entry;
}

class TorchPeer : public ::testing::Test {
protected:
    void SetUp() override {
        if (!torch_importable()) GTEST_SKIP() << python() << " cannot import torch (scripts/setup.sh --with-torch installs it)";
        dir = fs::temp_directory_path() / ("routelab_peer_" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    void TearDown() override {
        if (!dir.empty()) fs::remove_all(dir);
    }
    fs::path dir;
};

}  // namespace

TEST_F(TorchPeer, LossMatchesModelForwardOnRandomWeights) {
    const std::vector<PeerCase> cases = {
        {"seed-baseline", preset("seed-baseline")},
        {"seed-baseline-wo", preset("seed-baseline", {"model.attention.use_wo=true"})},
        {"seed-moh", preset("seed-moh")},
        {"moh-50-wo", preset("moh-50", {"model.attention.use_wo=true"})},
        {"moe-top2-8", preset("moe-top2-8")},
        {"deepseek-shared", preset("deepseek-shared")},
        {"default", preset("default")},  // W_O and a final norm
        // a shared CoPE table of 8 positions (the clamp binds), GQA 8/2, Switch routing under the hf aux
        {"cope-shared-switch", preset("moe-top2-8", {"model.attention.cope_shared=true", "model.attention.cope_npos=8",
                                                     "model.n_kv_heads=2", "model.moe.routing=top1_capacity",
                                                     "model.moe.top_k=1", "model.moe.aux_convention=hf"})},
        // noisy top-3 (no noise outside training, as in the bench's steps)
        {"noisy-top3", preset("moe-top2-8", {"model.moe.routing=noisy_topk", "model.moe.top_k=3",
                                             "model.moe.d_ff_expert=32"})},
        // RoPE, LayerNorm post-norm, tied head with a bias, GELU, a sliding window, MoH without shared heads, paper gates
        {"rope-post-paper", preset("seed-moh", {"model.attention.positional=rope", "model.norm=layernorm",
                                                "model.norm_position=post", "model.final_norm=true",
                                                "model.tie_embeddings=true", "model.lm_head_bias=true",
                                                "model.ffn.kind=gelu", "model.attention.window.kind=sliding",
                                                "model.attention.window.size=24", "model.attention.heads.n_shared=0",
                                                "model.attention.heads.n_active_routed=3",
                                                "model.attention.heads.gate_scaling=paper"})},
        // learned positions, ReLU, the adaptive seq_len window, static pruning
        {"learned-static-relu", preset("seed-baseline", {"model.attention.positional=learned", "model.ffn.kind=relu",
                                                         "model.attention.window.kind=adaptive",
                                                         "model.attention.window.max=32",
                                                         "model.attention.heads.kind=static_pruning",
                                                         "model.attention.heads.n_active=5"})},
    };
    nlohmann::json list = nlohmann::json::array();
    for (const PeerCase& pc : cases) list.push_back(write_case(dir, pc, false));
    for (const PeerCase& pc : cases) list.push_back(write_case(dir, pc, true));
    list.push_back(write_case(dir, {"wrong", preset("seed-baseline")}, false, 1e-3));  // must fail: the check can fail
    std::ofstream(dir / "cases.json") << list.dump();
    const test::Captured r = test::run_captured("'" + python() + "' " + k_peer + " --threads 2 --check-cases " + (dir / "cases.json").string() +
                      " --json-out " + (dir / "out.json").string());
    std::printf("%s", r.out.c_str());
    EXPECT_EQ(r.code, 1) << "the wrong case fails the run: " << r.out;
    std::ifstream in(dir / "out.json");
    const nlohmann::json out = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(out.is_discarded()) << r.out;
    ASSERT_EQ(out["cases"].size(), 2 * cases.size() + 1) << r.out;
    for (size_t i = 0; i < 2 * cases.size(); i++) {
        const nlohmann::json& c = out["cases"][i];
        const std::string name = cases[i % cases.size()].name + (i < cases.size() ? "" : " (gradients)");
        EXPECT_TRUE(c.value("passed", false)) << name << ": " << c.dump();
        EXPECT_LE(c.value("diff", 1.0), 1e-4) << name;
        if (i >= cases.size()) EXPECT_LE(c.value("grad_max_rel_err", 1.0), 1e-2) << name;
    }
    const nlohmann::json& wrong = out["cases"].back();
    EXPECT_FALSE(wrong.value("passed", true)) << wrong.dump();
    EXPECT_NEAR(wrong.value("diff", 0.0), 1e-3, 1e-4) << wrong.dump();
}

TEST_F(TorchPeer, RefusesAConfigItDoesNotImplement) {
    const nlohmann::json c = write_case(dir, {"mh-moe", preset("mh-moe-h2")}, false);
    const test::Captured r = test::run_captured("'" + python() + "' " + k_peer + " --checkpoint " + c["checkpoint"].get<std::string>() +
                      " --check-only");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("model.moe.kind = 'mh_moe' is not implemented by the torch peer"), std::string::npos) << r.out;
}
