// The routing summary a training run ends with: per layer, the balance numbers averaged over its
// last steps, and the last step's head and expert loads.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "train/step_stats.h"

namespace rl {

constexpr int k_routing_summary_steps = 50;  // the means cover at most this many final steps

struct LayerRoutingSummary {
    double head_load_cv = 0;                          // MoH: mean of StepStats head_cv
    double expert_load_cv = 0, dropped_frac = 0, router_entropy = 0, dead_expert_frac = 0, expert_diversity = 0;  // MoE
    std::vector<float> head_load_f;                   // (R) routed-head loads at the last step
    std::vector<float> expert_load;                   // (E) expert loads at the last step
};

struct RoutingSummary {
    bool moh = false, moe = false;  // what the model routes
    int steps = 0;                  // steps averaged; 0 = no summary (dense model or no steps)
    AuxConvention aux_convention = AuxConvention::switch_t;
    float moh_balance_final = 0, moe_aux_final = 0, zloss_final = 0;  // the last step's losses
    std::vector<LayerRoutingSummary> layers;
};

// Means over last_steps (the run's final steps, oldest first). Empty for a model without routing.
RoutingSummary routing_summary_build(const ModelConfig& c, const std::vector<StepStats>& last_steps);
// The summary.json keys: "routing" (one object per layer), "aux_convention" (MoE) and the three
// "*_final" losses; an empty object when there is no summary.
nlohmann::json routing_summary_to_json(const RoutingSummary& s);
// One "routing layer l: ..." line per layer, as routelab-cli train prints them.
std::string routing_summary_text(const RoutingSummary& s);

}  // namespace rl
