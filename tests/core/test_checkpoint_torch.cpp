// A RouteLab checkpoint read in PyTorch: app/peer/torch_peer.py --logits builds the bench's peer
// model from the checkpoint's tensors by name and shape alone (no flat buffer, no order), runs its
// forward in float64 and must reproduce RouteLab's logits (model_forward without targets) on two
// fixed sequences to 1e-4 absolute. The weights are trained, not initial: a few trainer steps move
// every tensor, the CoPE tables included (zero at initialisation). A logit moved by 1e-2 must fail
// the check, and a checkpoint with a tensor missing, misshapen or unplaceable must be refused
// naming it. Skipped, saying why, where the interpreter has no torch.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/presets.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/corpus.h"
#include "train/trainer.h"
#include "subprocess.h"

using namespace rl;
namespace fs = std::filesystem;

namespace {

const std::string k_peer = std::string(ROUTELAB_SOURCE_DIR) + "/app/peer/torch_peer.py";

using test::python;
using test::torch_importable;
using test::shell_quoted;

struct PeerRun {
    int code = -1;
    std::string out;
    double max_diff = NAN;  // from "torch_peer logits: max|diff| X"
};

PeerRun run_logits(const fs::path& checkpoint, const fs::path& case_file) {
    PeerRun r;
    std::string cmd = shell_quoted(python());
    for (const std::string& arg : {k_peer, std::string("--threads"), std::string("2"), std::string("--logits"),
                                   checkpoint.string(), case_file.string()})
        (cmd += " ") += shell_quoted(arg);
    const test::Captured c = test::run_captured(cmd);
    r.code = c.code;
    r.out = c.out;
    const std::string key = "torch_peer logits: max|diff| ";
    if (const size_t at = r.out.find(key); at != std::string::npos) r.max_diff = std::strtod(r.out.c_str() + at + key.size(), nullptr);
    return r;
}

void write_case(const fs::path& path, const std::vector<std::vector<int>>& tokens, const std::vector<float>& logits) {
    nlohmann::json j = {{"tokens", tokens}, {"logits", logits}, {"tol", 1e-4}};
    std::ofstream(path) << j.dump();
}

// The preset's model at seq_len 32, trained for 30 steps of batch 4 on a small corpus.
Config small(const std::string& name) {
    auto cfg = preset_load(name);
    EXPECT_TRUE(cfg.is_ok()) << name << ": " << cfg.status.msg;
    cfg->model.seq_len = 32;
    cfg->train.batch_size = 4;
    cfg->train.steps = 30;
    cfg->train.warmup_steps = 1;  // full learning rate from the second step: the weights move
    cfg->data.synthetic_docs = 200;
    EXPECT_TRUE(config_validate(*cfg).is_ok()) << name << ": " << config_validate(*cfg).msg;
    return *cfg;
}

// Two fixed sequences of T ids: sentences in the run's own tokenizer, repeated to length T.
std::vector<std::vector<int>> fixed_sequences(const Tokenizer& tok, int T) {
    const char* texts[2] = {"User: What is two plus two? Assistant: Four. ",
                            "The cat sat on the mat and the dog ran to the park. "};
    std::vector<std::vector<int>> rows;
    for (const char* text : texts) {
        const std::vector<int> ids = tok.encode(text);
        std::vector<int> row;
        for (int t = 0; t < T; t++) row.push_back(ids.empty() ? t % tok.vocab_size() : ids[t % ids.size()]);
        rows.push_back(row);
    }
    return rows;
}

class TorchCheckpoint : public ::testing::Test {
protected:
    void SetUp() override {
        if (!torch_importable())
            GTEST_SKIP() << python() << " cannot import torch; scripts/setup.sh --with-torch installs python3-torch";
        dir = fs::temp_directory_path() / ("routelab_ckpt_torch_" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    void TearDown() override {
        if (!dir.empty()) fs::remove_all(dir);
    }
    fs::path dir;
};

}  // namespace

TEST_F(TorchCheckpoint, LogitsMatchRouteLabByNameAndShape) {
    // default: W_O and a final norm; seed-baseline: CoPE per head, no W_O; seed-moh: MoH gates
    // (2 shared + 4 of 6 routed); moe-top2-8: 8 SwiGLU experts, top-2 renormalised.
    const std::vector<std::string> names = {"default", "seed-baseline", "seed-moh", "moe-top2-8"};
    auto data = dataset_build(small(names[0]).data);  // one corpus and tokenizer for every config
    ASSERT_TRUE(data.is_ok()) << data.status.msg;
    for (const std::string& name : names) {
        SCOPED_TRACE(name);
        const auto t0 = std::chrono::steady_clock::now();
        const Config cfg = small(name);
        auto s = trainer_create(cfg, std::make_unique<Dataset>(*data));
        ASSERT_TRUE(s.is_ok()) << s.status.msg;
        TrainState& st = **s;
        const auto init = st.model.params.data;
        for (int i = 0; i < cfg.train.steps; i++) trainer_step(st);
        ASSERT_NE(st.model.params.data, init) << "training moved no weight";
        for (const TensorSpec& t : st.model.layout.specs()) {  // every tensor trained, the zero-initialised CoPE tables too
            const float* p = st.model.params.data.data() + t.offset;
            EXPECT_FALSE(std::equal(p, p + t.numel, init.data() + t.offset)) << t.name << " is still at its initial value";
        }
        const fs::path ck = dir / (name + ".safetensors");
        ASSERT_TRUE(checkpoint_save(ck.string(), st.model, st.cfg, st.data->tok, {st.step, st.prev_entropy}).is_ok());

        const ModelConfig& c = st.cfg.model;
        const int B = 2, T = c.seq_len, V = c.vocab_size;
        const std::vector<std::vector<int>> rows = fixed_sequences(st.data->tok, T);
        std::vector<int> tokens;
        for (const auto& r : rows) tokens.insert(tokens.end(), r.begin(), r.end());
        Activations a;
        activations_create(a, c, B, T);
        model_forward(st.model, a, tokens.data(), nullptr, B, T, {});
        std::vector<float> logits(a.logits, a.logits + (size_t)B * T * V);
        float max_logit = 0.f;
        for (float x : logits) max_logit = std::max(max_logit, std::fabs(x));

        write_case(dir / (name + ".json"), rows, logits);
        const PeerRun ok = run_logits(ck, dir / (name + ".json"));
        EXPECT_EQ(ok.code, 0) << ok.out;
        EXPECT_LE(ok.max_diff, 1e-4) << ok.out;

        // The check can fail: one logit moved by 1e-2.
        logits[(size_t)(B * T * V) / 2 + 7] += 1e-2f;
        write_case(dir / (name + "-moved.json"), rows, logits);
        const PeerRun moved = run_logits(ck, dir / (name + "-moved.json"));
        EXPECT_EQ(moved.code, 1) << moved.out;
        EXPECT_NEAR(moved.max_diff, 1e-2, 1e-4) << moved.out;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("[torch checkpoint] %-13s V %d, %dx%d logits (max |logit| %.2f) after %d steps: max|diff| %.2e "
                    "(exit %d); one logit moved by 1e-2: max|diff| %.2e (exit %d); %.1f s\n",
                    name.c_str(), V, B, T, max_logit, st.step, ok.max_diff, ok.code, moved.max_diff, moved.code, secs);
    }
}

TEST_F(TorchCheckpoint, RefusesATensorMissingMisshapenOrUnplaceable) {
    Config cfg = small("default");
    cfg.model.vocab_size = 97;
    Model m;
    model_create(m, cfg.model, 11, 0.02f);
    std::vector<TensorView> all;
    for (const TensorSpec& t : m.layout.specs())
        all.push_back({t.name, std::vector<int64_t>(t.shape.begin(), t.shape.end()), m.params.data.data() + t.offset});
    const std::map<std::string, std::string> meta = {{"routelab_config", config_to_json(cfg)}};
    const int T = 4;
    write_case(dir / "case.json", {{1, 2, 3, 4}, {5, 6, 7, 8}}, std::vector<float>((size_t)2 * T * 97, 0.f));

    struct Broken {
        std::string what, message;
        std::vector<TensorView> views;
    };
    std::vector<Broken> cases;
    {
        Broken b{"missing", "the checkpoint has no tensor 'layers.1.attn.wk'", {}};
        for (const TensorView& v : all)
            if (v.name != "layers.1.attn.wk") b.views.push_back(v);
        cases.push_back(b);
    }
    {
        Broken b{"transposed", "tensor 'lm_head' is F32 [128, 97], the peer needs F32 [97, 128]", all};
        for (TensorView& v : b.views)
            if (v.name == "lm_head") std::reverse(v.shape.begin(), v.shape.end());
        cases.push_back(b);
    }
    {
        Broken b{"extra", "checkpoint tensors the peer has no place for: layers.0.attn.w_extra", all};
        b.views.push_back({"layers.0.attn.w_extra", {128}, m.params.data.data()});
        cases.push_back(b);
    }
    for (const Broken& b : cases) {
        const fs::path ck = dir / (b.what + ".safetensors");
        ASSERT_TRUE(safetensors_write(ck.string(), b.views, meta).is_ok());
        const PeerRun r = run_logits(ck, dir / "case.json");
        EXPECT_EQ(r.code, 2) << b.what << ": " << r.out;
        EXPECT_NE(r.out.find(b.message), std::string::npos) << b.what << ": " << r.out;
    }
}
