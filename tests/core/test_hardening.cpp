// Every bug the fuzzers and sanitizers found (docs/hardening.md), reproduced: a user's bad file gets
// a message naming what is wrong, never undefined behaviour, a wrapped value or a crash.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "train/tokenizer.h"

namespace fs = std::filesystem;
using namespace rl;

namespace {

void expect_has(const Status& s, const std::string& part) {
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.msg.find(part), std::string::npos) << s.msg;
}

}  // namespace

// fuzz_config: 1e300 for a whole-number key was converted to long long, which is undefined behaviour.
TEST(Hardening, HugeNumberForAWholeNumberKeyIsOutOfRange) {
    expect_has(config_from_json(R"({"model": {"d_model": 1e300}})").status, "'model.d_model' is out of range: got 1e+300");
    expect_has(config_from_json(R"({"train": {"steps": -1e19}})").status, "'train.steps' is out of range");
    Config c;
    expect_has(config_apply_override(c, "model.n_layers=1e300"), "'model.n_layers' is out of range");
}

// fuzz_config: a whole number beyond int wrapped silently (4294967304 read as d_model 8, a valid value).
TEST(Hardening, WholeNumberBeyondIntIsNotWrapped) {
    expect_has(config_from_json(R"({"model": {"d_model": 4294967304}})").status, "'model.d_model' is out of range: got 4294967304");
    expect_has(config_from_json(R"({"model": {"n_layers": 18446744073709551615}})").status, "'model.n_layers' is out of range");
    expect_has(config_from_json(R"({"train": {"seed": 4294967296}})").status, "'train.seed' is out of range");
    expect_has(config_from_json(R"({"train": {"seed": -1}})").status, "'train.seed' must be >= 0");
    auto ok = config_from_json(R"({"model": {"d_model": 2147483647}, "train": {"seed": 4294967295}})");
    ASSERT_TRUE(ok.is_ok()) << ok.status.msg;  // the limits themselves still parse (validation judges them)
    EXPECT_EQ(ok->model.d_model, 2147483647);
    EXPECT_EQ(ok->train.seed, 4294967295u);
}

// fuzz_safetensors: a checkpoint whose stored config passes config_validate but is huge (C 8192, 64
// layers, 1024 experts of 65536) made checkpoint_load allocate that model (~400 TB) before checking
// the file's tensors: std::bad_alloc, or the out-of-memory killer. Now the shapes are checked first.
TEST(Hardening, CheckpointWithAHugeStoredConfigIsRefusedBeforeAllocating) {
    auto cfg = config_from_json(R"({"model": {"d_model": 8, "n_layers": 1, "n_heads": 2, "n_kv_heads": 1,
                                    "head_dim": 4, "seq_len": 8, "ffn": {"d_ff": 8}}})");
    ASSERT_TRUE(cfg.is_ok()) << cfg.status.msg;
    auto tok = Tokenizer::train(TokenizerKind::word, {"the cat sat on the mat ."}, 0);
    ASSERT_TRUE(tok.is_ok()) << tok.status.msg;
    cfg->model.vocab_size = tok->vocab_size();
    Model m;
    model_create(m, cfg->model, 1, 0.02f);
    const fs::path path = fs::temp_directory_path() / ("routelab_test_" + std::to_string(::getpid()) + "_huge.safetensors");
    ASSERT_TRUE(checkpoint_save(path.string(), m, *cfg, *tok, {}).is_ok());

    auto file = safetensors_read(path.string());
    ASSERT_TRUE(file.is_ok()) << file.status.msg;
    auto j = nlohmann::json::parse(file->metadata.at("routelab_config"));
    j["model"].update(nlohmann::json::parse(R"({"d_model": 8192, "n_layers": 64, "n_heads": 128, "n_kv_heads": 128,
        "head_dim": 64, "ffn": {"d_ff": 65536}, "moe": {"kind": "moe", "n_experts": 1024, "top_k": 1, "d_ff_expert": 65536}})"),
                      true);
    auto huge = config_from_json(j.dump());
    ASSERT_TRUE(huge.is_ok()) << huge.status.msg;
    ASSERT_TRUE(config_validate(*huge).is_ok()) << "the stored config must be valid for this test";
    file->metadata["routelab_config"] = j.dump();
    std::vector<TensorView> views;
    for (const auto& [name, t] : file->tensors) views.push_back({name, t.shape, t.data.data()});
    ASSERT_TRUE(safetensors_write(path.string(), views, file->metadata).is_ok());

    auto ck = checkpoint_load(path.string());
    expect_has(ck.status, "but the config needs");
    expect_has(ck.status, "re-save the checkpoint");
    fs::remove(path);
}
