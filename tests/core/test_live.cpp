// The live keys: one list in the core names them and says which config field each changes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "config/presets.h"
#include "train/live.h"
#include "util/json_leaves.h"

using namespace rl;

namespace {

std::set<std::string> changed_keys(const Config& a, const Config& b) {
    std::vector<std::pair<std::string, nlohmann::json>> la, lb;
    json_leaves(nlohmann::json::parse(config_to_json(a)), la);
    json_leaves(nlohmann::json::parse(config_to_json(b)), lb);
    std::set<std::string> out;
    for (size_t i = 0; i < la.size() && i < lb.size(); i++)
        if (la[i] != lb[i]) out.insert(la[i].first);
    return out;
}

}  // namespace

TEST(Live, EveryLiveKeyChangesTheConfigKeyItIsNamedAfter) {
    auto cfg = preset_load("tiny");
    ASSERT_TRUE(cfg.is_ok());
    cfg->model.moe.kind = FfnRouting::moe;  // every live key has an effect on a routed model
    cfg->model.moe.n_experts = 4;
    cfg->model.moe.d_ff_expert = 16;
    cfg->model.attention.heads.kind = HeadSelection::moh;
    cfg->model.attention.heads.n_shared = 1;
    cfg->model.attention.heads.n_active_routed = 2;
    auto st = trainer_create(*cfg);
    ASSERT_TRUE(st.is_ok()) << st.status.msg;
    TrainState& s = **st;
    ASSERT_EQ(live_keys().size(), 8u);
    std::set<std::string> names;
    for (LiveKey k : live_keys()) {
        const std::string name = live_key_name(k);
        names.insert(name);
        LiveKey back;
        ASSERT_TRUE(live_key_from_name(name, back)) << name;
        EXPECT_EQ(back, k) << name;
        const Config before = s.cfg;
        ASSERT_TRUE(trainer_apply(s, {k, 0.5f}).is_ok()) << name;
        std::set<std::string> expect = {name};
        if (k == LiveKey::lr) expect.insert("train.min_lr");  // the schedule keeps its shape
        EXPECT_EQ(changed_keys(before, s.cfg), expect) << name;
        EXPECT_EQ(config_to_json(Config{"", "", s.model.cfg, {}, {}}), config_to_json(Config{"", "", s.cfg.model, {}, {}}))
            << name << ": the model's copy follows";
    }
    EXPECT_EQ(names.size(), live_keys().size()) << "names are unique";
    LiveKey k;
    EXPECT_FALSE(live_key_from_name("model.d_model", k));
}
