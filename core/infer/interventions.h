// Routing interventions on a frozen model (issue 24; docs/hf-models.md "Interventions"): the same
// forward with another top-k, the combine weights renormalised or not, some experts masked, or a
// capacity per expert. Each is a setting of the one ModelConfig (model.moe.top_k, topk_weights,
// masked_experts, inference_capacity_factor), so the forward, the naive reference and every view
// read them the one way; this file only turns a request into those settings and checks it.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"
#include "util/status.h"

namespace rl {

struct Interventions {
    int top_k = 0;                  // 0: the model's; else 1..E experts per token
    int renorm = -1;                // -1: the model's; 1: weights renormalised over the chosen; 0: plain probabilities
    std::string mask;               // "3,5": experts no token may choose (the next best take their place)
    float capacity_factor = 0;      // 0: none; > 0: each expert keeps at most ceil(N K cf / E) of a forward's N tokens
    // > 0: also mask each layer's this many least used experts, measured by the unchanged model on the
    // text at hand (eval_mask_least_used turns it into "l:e" entries of mask before the forward).
    int mask_least_used = 0;
    bool any() const { return top_k > 0 || renorm >= 0 || !mask.empty() || capacity_factor > 0 || mask_least_used > 0; }
    std::string describe() const;   // "top-k 1, mask 3,5" ("unchanged" when none)
};

// cfg with iv applied, validated as a whole (config_validate); a request this model cannot take
// (a dense model, top-k beyond its experts, renormalising a sigmoid router, an unknown expert) is
// refused in one line that says what to pass instead. cfg is left as it was on an error.
Status interventions_apply(Config& cfg, const Interventions& iv);

// Of the top-k values ks, those a model of config m (cfg: its run's config) takes with iv's other
// interventions, in order; its own top-k always. A group-limited router needs a top-k its kept groups
// divide (the sweeps of the experiments view and of the real-model lesson ask this).
std::vector<int> interventions_top_k_accepted(const Config& cfg, const ModelConfig& m, const Interventions& iv,
                                              const std::vector<int>& ks);

}  // namespace rl
