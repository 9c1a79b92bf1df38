// Config parsing and validation: unknown keys and bad values are rejected, naming the key.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "config/presets.h"
#include "model/model.h"
#include "train/trainer.h"
#include "util/json_leaves.h"

using namespace rl;

TEST(Config, RoundTripsThroughJson) {
    auto cfg = preset_load("seed-baseline");
    ASSERT_TRUE(cfg.is_ok()) << cfg.status.msg;
    auto again = config_from_json(config_to_json(*cfg));
    ASSERT_TRUE(again.is_ok()) << again.status.msg;
    EXPECT_EQ(config_to_json(*again), config_to_json(*cfg));
}

TEST(Config, UnknownKeyIsNamedWithItsPath) {
    auto r = config_from_json(R"({"model": {"attention": {"windw": {}}}})");
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status.msg.find("unknown key 'model.attention.windw'"), std::string::npos) << r.status.msg;
    EXPECT_NE(r.status.msg.find("window"), std::string::npos) << "lists the allowed keys: " << r.status.msg;
}

TEST(Config, WrongTypesAndEnumsAreNamed) {
    auto r1 = config_from_json(R"({"model": {"d_model": "wide"}})");
    ASSERT_FALSE(r1.is_ok());
    EXPECT_NE(r1.status.msg.find("'model.d_model' must be a number"), std::string::npos) << r1.status.msg;
    auto r2 = config_from_json(R"({"model": {"norm": "batchnorm"}})");
    ASSERT_FALSE(r2.is_ok());
    EXPECT_NE(r2.status.msg.find("allowed: rmsnorm, layernorm"), std::string::npos) << r2.status.msg;
    auto r3 = config_from_json(R"({"model": {"n_heads": 2.5}})");
    ASSERT_FALSE(r3.is_ok());
    EXPECT_NE(r3.status.msg.find("integer"), std::string::npos) << r3.status.msg;
    auto r4 = config_from_json("{ not json");
    ASSERT_FALSE(r4.is_ok());
    EXPECT_NE(r4.status.msg.find("not valid JSON"), std::string::npos);
}

TEST(Config, ValidateNamesTheKeyAndTheRule) {
    struct Case { const char* set; const char* expect; };
    const Case cases[] = {
        {"model.n_kv_heads=3", "'model.n_kv_heads' must divide n_heads"},
        {"model.n_kv_heads=16", "must be in 1..n_heads"},
        {"model.head_dim=8", "n_heads*head_dim (64) must equal d_model (128)"},
        {"model.attention.window.kind=\"sliding\"", "'model.attention.window.size' must be in 1..seq_len"},
        {"model.attention.window.kind=adaptive;model.attention.window.max=200",
         "'model.attention.window.max' must be in window.min..80 (a window larger than the sequence does nothing)"},
        {"train.lr=-1", "'train.lr'"},
        {"data.tokenizer=\"chars\"", "'data.tokenizer'"},
        {"data.val_fraction=0.9", "'data.val_fraction'"},
        // the settings of imported Hugging Face models (docs/hf-models.md)
        {"model.moe.kind=moe;model.moe.dense_layers=\"0,x\"", "'model.moe.dense_layers' must be comma-separated"},
        {"model.moe.kind=moe;model.moe.dense_layers=\"1,5\"", "names layer 5"},
        // routing interventions (issue 24)
        {"model.moe.kind=moe;model.moe.masked_experts=\"1,x\"", "'model.moe.masked_experts' must be comma-separated"},
        {"model.moe.kind=moe;model.moe.masked_experts=\"8\"", "names expert 8; experts are 0..7"},
        {"model.moe.kind=moe;model.moe.masked_experts=\"0,1,2,3,4,5,6\"", "leaves 1 experts for top_k 2"},
        {"model.moe.kind=moe;model.moe.masked_experts=\"0:1:2\"", "each optionally for one layer as layer:expert"},
        {"model.moe.kind=moe;model.moe.masked_experts=\"3:1\"", "names layer 3; layers are 0..2"},
        {"model.moe.kind=moe;model.moe.masked_experts=\"0,1,2,1:3,1:4,1:5,1:6\"", "leaves 1 experts for top_k 2"},
        {"model.moe.kind=moe;model.moe.inference_capacity_factor=-1", "'model.moe.inference_capacity_factor' must be 0"},
        {"model.moe.kind=moe;model.moe.shared_expert_gate=true", "'model.moe.shared_expert_gate' needs shared experts"},
        {"model.moe.kind=moe;model.moe.routing=expert_choice;model.moe.topk_weights=probs",
         "'model.moe.topk_weights' applies to softmax top-k"},
        {"model.attention.heads.kind=moh;model.attention.qk_norm=full", "must be all_heads with qkv_bias, qk_norm"},
        {"model.logits_scaling=0", "'model.logits_scaling'"},
    };
    for (const Case& c : cases) {
        Config cfg = *preset_load("seed-baseline");
        Status s;
        std::string sets = c.set;
        for (size_t start = 0; s.is_ok() && start <= sets.size();) {
            size_t end = sets.find(';', start);
            if (end == std::string::npos) end = sets.size();
            s = config_apply_override(cfg, sets.substr(start, end - start));
            start = end + 1;
        }
        if (s.is_ok()) s = config_validate(cfg);
        ASSERT_FALSE(s.is_ok()) << c.set;
        EXPECT_NE(s.msg.find(c.expect), std::string::npos) << c.set << " -> " << s.msg;
    }
    Config cfg = *preset_load("seed-baseline");
    cfg.model.attention.window = {WindowKind::adaptive, 0, WindowStrategy::seq_len, 16, 64};
    EXPECT_TRUE(config_validate(cfg).is_ok());
}

TEST(Config, OverridesParseJsonValues) {
    Config cfg = *preset_load("seed-baseline");
    ASSERT_TRUE(config_apply_override(cfg, "model.attention.use_wo=true").is_ok());
    ASSERT_TRUE(config_apply_override(cfg, "train.lr=0.001").is_ok());
    ASSERT_TRUE(config_apply_override(cfg, "model.attention.positional=rope").is_ok());  // bare string
    EXPECT_TRUE(cfg.model.attention.use_wo);
    EXPECT_FLOAT_EQ(cfg.train.lr, 0.001f);
    EXPECT_EQ(cfg.model.attention.positional, PosKind::rope);
    Status s = config_apply_override(cfg, "model.nope=1");
    EXPECT_NE(s.msg.find("unknown key 'model.nope'"), std::string::npos) << s.msg;
    EXPECT_FALSE(config_apply_override(cfg, "no_equals_sign").is_ok());
}

TEST(Config, EveryPresetIsValid) {
    ASSERT_GE(preset_names().size(), 4u);
    for (const auto& n : preset_names()) {
        auto cfg = preset_load(n);
        EXPECT_TRUE(cfg.is_ok()) << n << ": " << cfg.status.msg;
    }
    EXPECT_NE(preset_load("nope").status.msg.find("known: "), std::string::npos);
}

namespace {

// A value of the same JSON type as v but different from it (enum strings: another allowed name).
nlohmann::json other_value(const std::string& key, const nlohmann::json& v) {
    if (v.is_boolean()) return !v.get<bool>();
    if (v.is_number_integer()) return v.get<long long>() + 1;
    if (v.is_number()) return v.get<double>() == 0 ? 0.5 : v.get<double>() * 2;  // survives 7-digit rounding
    // An enum answers a bogus name with its allowed names; a free string takes anything.
    Config probe;
    Status s = config_apply_override(probe, key + "=\"no-such-name\"");
    if (s.is_ok()) return v.get<std::string>() + "-changed";
    const std::string allowed = s.msg.substr(s.msg.find("allowed: ") + 9);
    for (size_t start = 0; start < allowed.size();) {
        size_t end = allowed.find(", ", start);
        if (end == std::string::npos) end = allowed.size();
        const std::string name = allowed.substr(start, end - start);
        if (name != v.get<std::string>()) return name;
        start = end + 2;
    }
    return v;
}

}  // namespace

TEST(Config, EveryWrittenKeyIsReadBackToTheSameValue) {
    const Config base = *preset_load("moh-moe");
    std::vector<std::pair<std::string, nlohmann::json>> leaves;
    json_leaves(nlohmann::json::parse(config_to_json(base)), leaves);
    ASSERT_GT(leaves.size(), 60u);
    for (const auto& [key, value] : leaves) {
        const nlohmann::json changed = other_value(key, value);
        ASSERT_NE(changed, value) << key;
        nlohmann::json j = nlohmann::json::parse(config_to_json(base));
        nlohmann::json* node = &j;
        for (size_t start = 0;;) {
            const size_t dot = key.find('.', start);
            if (dot == std::string::npos) {
                (*node)[key.substr(start)] = changed;
                break;
            }
            node = &(*node)[key.substr(start, dot - start)];
            start = dot + 1;
        }
        auto read = config_from_json(j.dump());
        ASSERT_TRUE(read.is_ok()) << key << ": " << read.status.msg;
        EXPECT_EQ(nlohmann::json::parse(config_to_json(*read)), j) << key << " did not come back as " << changed.dump();
    }
}

// An imported model's settings run forward only: training one is refused up front, naming the keys.
TEST(Config, ImportedSettingsAreRefusedForTraining) {
    Config cfg = *preset_load("tiny");
    EXPECT_EQ(config_training_blocker(cfg.model), "");
    ASSERT_TRUE(config_apply_override(cfg, "model.residual_multiplier=0.5").is_ok());
    ASSERT_TRUE(config_apply_override(cfg, "model.attention.qkv_bias=true").is_ok());
    ASSERT_TRUE(config_validate(cfg).is_ok());
    const std::string why = config_training_blocker(cfg.model);
    EXPECT_NE(why.find("model.residual_multiplier, model.attention.qkv_bias"), std::string::npos) << why;
    auto t = trainer_create(cfg, DataProgress{});
    ASSERT_FALSE(t.is_ok());
    EXPECT_EQ(t.status.msg, why);
    // JetMoE's settings: its attention-expert router, the two output biases and the final norm's epsilon.
    Config jet = *preset_load("tiny");
    for (const char* o : {"model.attention.use_wo=true", "model.attention.heads.kind=\"moh\"", "model.attention.heads.n_shared=0",
                          "model.attention.heads.router=\"experts\"", "model.attention.heads.n_experts=2",
                          "model.attention.out_bias=true", "model.final_norm_eps=1e-6"})
        ASSERT_TRUE(config_apply_override(jet, o).is_ok()) << o;
    jet.model.attention.heads.n_active_routed = jet.model.n_heads / 2;
    ASSERT_TRUE(config_validate(jet).is_ok()) << config_validate(jet).msg;
    const std::string jwhy = config_training_blocker(jet.model);
    for (const char* k : {"model.attention.heads.router", "model.attention.out_bias", "model.final_norm_eps"})
        EXPECT_NE(jwhy.find(k), std::string::npos) << k << ": " << jwhy;
    jet.model.attention.heads.n_active_routed = 1;  // not whole experts
    EXPECT_NE(config_validate(jet).msg.find("multiple of the heads per expert"), std::string::npos) << config_validate(jet).msg;
}

// model.moe.masked_experts as the forward reads it (model_moe_dims) agrees with what config_validate
// accepted, spaces and all: "e" in every layer, "l:e" in layer l only.
TEST(Config, PerLayerMasksReachOnlyTheirLayer) {
    Config cfg = *preset_load("tiny");
    ASSERT_TRUE(config_apply_override(cfg, "model.moe.kind=\"moe\"").is_ok());
    cfg.model.moe.masked_experts = " 0 : 3, 1 :5 ,2";
    ASSERT_TRUE(config_validate(cfg).is_ok()) << config_validate(cfg).msg;
    for (int l = 0; l < cfg.model.n_layers; l++) {
        const MoeDims d = model_moe_dims(cfg.model, 4, false, 0, l);
        for (int e = 0; e < cfg.model.moe.n_experts; e++)
            EXPECT_EQ(d.is_masked(e), e == 2 || (l == 0 && e == 3) || (l == 1 && e == 5)) << "layer " << l << " expert " << e;
    }
}

// The one reader of model.moe.masked_experts (validation, the model's per-layer masks and the eval's
// "k least used" all read through it): entries in order, spaces allowed, malformed lists refused.
TEST(Config, MaskListReader) {
    std::vector<std::pair<int, int>> got;
    auto read = [&](const char* s) {
        got.clear();
        return rl::config_masks_each(s, [&](int l, int e) { got.push_back({l, e}); });
    };
    ASSERT_TRUE(read(" 0:3 , 5,1: 2"));
    EXPECT_EQ(got, (std::vector<std::pair<int, int>>{{0, 3}, {-1, 5}, {1, 2}}));
    ASSERT_TRUE(read(""));
    EXPECT_TRUE(got.empty());
    for (const char* bad : {"3,", ",3", "3,,5", ":3", "3:", "0:1:2", "1,x", "1 2", "1234567"}) EXPECT_FALSE(read(bad)) << bad;
}
