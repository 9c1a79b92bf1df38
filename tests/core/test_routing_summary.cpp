// The end-of-run routing summary and the random-router baseline, from core/metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "config/presets.h"
#include "metrics/routing_report.h"
#include "metrics/routing_summary.h"

using namespace rl;

namespace {

StepStats routed_step(int step, float scale) {
    StepStats s;
    s.step = step;
    s.moh_balance = 1.f * step, s.moe_aux = 2.f * step, s.zloss = 3.f * step;
    s.n_layers = 2;
    for (int l = 0; l < 2; l++) {
        LayerRouteStats& r = s.layers[l];
        r.n_routed_heads = 3;
        r.head_f[0] = scale, r.head_f[1] = 2 * scale, r.head_f[2] = 3 * scale;
        r.head_cv = scale * (l + 1);
        r.n_experts = 2;
        r.expert_load[0] = 0.25f * scale, r.expert_load[1] = 0.75f * scale;
        r.load_cv = 0.1f * scale, r.dropped_frac = 0.2f * scale, r.router_entropy = 0.3f * scale;
        r.dead_frac = 0.4f * scale, r.diversity = 0.5f * scale;
    }
    return s;
}

std::set<std::string> keys(const nlohmann::json& j) {
    std::set<std::string> out;
    for (auto it = j.begin(); it != j.end(); ++it) out.insert(it.key());
    return out;
}

}  // namespace

TEST(RoutingSummary, MeansOverTheTailAndLoadsOfTheLastStep) {
    ModelConfig c;
    c.attention.heads.kind = HeadSelection::moh;
    c.moe.kind = FfnRouting::moe;
    const std::vector<StepStats> tail = {routed_step(8, 1.f), routed_step(9, 2.f), routed_step(10, 3.f)};
    const RoutingSummary r = routing_summary_build(c, tail);
    ASSERT_EQ(r.steps, 3);
    ASSERT_EQ(r.layers.size(), 2u);
    EXPECT_DOUBLE_EQ(r.layers[1].head_load_cv, 4.0);  // (2 + 4 + 6) / 3
    EXPECT_NEAR(r.layers[0].expert_load_cv, 0.2, 1e-6);
    EXPECT_NEAR(r.layers[0].expert_diversity, 1.0, 1e-6);
    EXPECT_EQ(r.layers[0].head_load_f, (std::vector<float>{3.f, 6.f, 9.f}));
    EXPECT_EQ(r.layers[0].expert_load, (std::vector<float>{0.75f, 2.25f}));
    EXPECT_FLOAT_EQ(r.moe_aux_final, 20.f);

    const nlohmann::json j = routing_summary_to_json(r);
    EXPECT_EQ(keys(j), (std::set<std::string>{"routing", "aux_convention", "moh_balance_final", "moe_aux_final", "zloss_final"}));
    EXPECT_EQ(keys(j["routing"][0]), (std::set<std::string>{"head_load_cv", "head_load_f", "expert_load_cv", "dropped_frac",
                                                            "router_entropy", "dead_expert_frac", "expert_diversity",
                                                            "expert_load"}));
    const std::string text = routing_summary_text(r);
    EXPECT_EQ(text.substr(0, text.find('\n') + 1),
              "routing layer 0:  head load CV 2.000  expert load CV 0.200  dropped 0.400  router entropy 0.600  dead 0.800"
              "  diversity 1.000   (mean of the last 3 steps)\n");

    c.moe.kind = FfnRouting::dense;  // MoH alone: head keys only, no aux convention
    const nlohmann::json moh = routing_summary_to_json(routing_summary_build(c, tail));
    EXPECT_EQ(keys(moh["routing"][0]), (std::set<std::string>{"head_load_cv", "head_load_f"}));
    EXPECT_FALSE(moh.contains("aux_convention"));

    c.attention.heads.kind = HeadSelection::all_heads;  // nothing routed: nothing to say
    EXPECT_EQ(routing_summary_build(c, tail).steps, 0);
    EXPECT_TRUE(routing_summary_to_json(routing_summary_build(c, tail)).empty());
    EXPECT_EQ(routing_summary_text(routing_summary_build(c, tail)), "");
}

TEST(RoutingSummary, RandomRouterRedrawsOnlyTheRoutersAtTheirScale) {
    Config cfg = *preset_load("moe-top2-8");
    cfg.model.vocab_size = 200;
    Model m;
    model_create(m, cfg.model, 3, 0.05f);
    const Model r = specialization_random_router(m, 7);
    const Model again = specialization_random_router(m, 7);
    EXPECT_EQ(r.params.data, again.params.data) << "same seed, same router";
    int routers = 0;
    for (const TensorSpec& t : m.layout.specs()) {
        const float* a = m.params.data.data() + t.offset;
        const float* b = r.params.data.data() + t.offset;
        if (t.name.find("moe.router") == std::string::npos) {
            EXPECT_TRUE(std::equal(a, a + t.numel, b)) << t.name << " is not a router: unchanged";
            continue;
        }
        routers++;
        double ssa = 0, ssb = 0, same = 0;
        for (size_t i = 0; i < t.numel; i++) ssa += (double)a[i] * a[i], ssb += (double)b[i] * b[i], same += a[i] == b[i];
        EXPECT_LT(same, t.numel / 10.0) << t.name << " is redrawn";
        EXPECT_NEAR(std::sqrt(ssb / t.numel), std::sqrt(ssa / t.numel), 0.15 * std::sqrt(ssa / t.numel)) << t.name;
    }
    EXPECT_EQ(routers, cfg.model.n_layers);
}
