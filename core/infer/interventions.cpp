#include "infer/interventions.h"

#include <cstdio>

namespace rl {

std::string Interventions::describe() const {
    std::string s;
    auto add = [&](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
    if (top_k > 0) add("top-k " + std::to_string(top_k));
    if (renorm >= 0) add(renorm ? "renormalised" : "not renormalised");
    if (!mask.empty()) add("mask " + mask);
    if (mask_least_used > 0) add("mask the " + std::to_string(mask_least_used) + " least used per layer");
    if (capacity_factor > 0) {
        char b[48];
        std::snprintf(b, sizeof b, "capacity factor %g", capacity_factor);
        add(b);
    }
    return s.empty() ? "unchanged" : s;
}

Status interventions_apply(Config& cfg, const Interventions& iv) {
    if (iv.top_k < 0) return Status::error("top-k must be 1 or more (or left out for the model's)");
    if (iv.capacity_factor < 0) return Status::error("capacity factor must be > 0 (or left out for none)");
    if (!iv.any()) return Status::ok();
    MoeConfig& mc = cfg.model.moe;
    if (mc.kind == FfnRouting::dense)
        return Status::error("routing interventions need a model with experts; this one's FFN is dense");
    if (mc.routing != MoeRouting::topk)
        return Status::error(std::string("routing interventions apply to top-k token-choice routers; this model's is ") +
                             moe_routing_name(mc.routing));
    if (iv.top_k != 0 && (iv.top_k < 1 || iv.top_k > mc.n_experts))
        return Status::error("top-k " + std::to_string(iv.top_k) + ": this model has " + std::to_string(mc.n_experts) +
                             " experts; pass 1.." + std::to_string(mc.n_experts));
    const int k = iv.top_k > 0 ? iv.top_k : mc.top_k;
    if (iv.mask_least_used < 0 || iv.mask_least_used > mc.n_experts - k)
        return Status::error("masking the " + std::to_string(iv.mask_least_used) + " least used experts: with top-k " +
                             std::to_string(k) + " of " + std::to_string(mc.n_experts) + " experts, pass 1.." +
                             std::to_string(mc.n_experts - k));
    if (iv.renorm >= 0 && mc.score_function != ScoreFunction::softmax)
        return Status::error("renormalising on or off applies to softmax routers; this model's scores are sigmoids");
    Config next = cfg;
    MoeConfig& n = next.model.moe;
    if (iv.top_k > 0) n.top_k = iv.top_k;
    if (iv.renorm >= 0) n.topk_weights = iv.renorm ? TopkWeights::renormalised : TopkWeights::probs;
    if (!iv.mask.empty()) n.masked_experts = iv.mask;
    if (iv.capacity_factor > 0) n.inference_capacity_factor = iv.capacity_factor;
    if (Status s = config_validate(next); !s) return s;
    cfg = std::move(next);
    return Status::ok();
}

std::vector<int> interventions_top_k_accepted(const Config& cfg, const ModelConfig& m, const Interventions& iv,
                                              const std::vector<int>& ks) {
    std::vector<int> out;
    for (int k : ks) {
        Config t = cfg;
        t.model = m;
        Interventions at = iv;
        at.top_k = k;
        if (k == m.moe.top_k || interventions_apply(t, at)) out.push_back(k);
    }
    return out;
}

}  // namespace rl
