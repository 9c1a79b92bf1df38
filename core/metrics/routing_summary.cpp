#include "metrics/routing_summary.h"

#include <cstdio>

namespace rl {

RoutingSummary routing_summary_build(const ModelConfig& c, const std::vector<StepStats>& last_steps) {
    RoutingSummary s;
    s.moh = c.attention.heads.kind == HeadSelection::moh;
    s.moe = c.moe.kind != FfnRouting::dense;
    s.aux_convention = c.moe.aux_convention;
    if (!(s.moh || s.moe) || last_steps.empty()) return s;
    s.steps = (int)last_steps.size();
    const StepStats& last = last_steps.back();
    s.moh_balance_final = last.moh_balance;
    s.moe_aux_final = last.moe_aux;
    s.zloss_final = last.zloss;
    for (int l = 0; l < last_steps[0].n_layers; l++) {
        LayerRoutingSummary L;
        for (const StepStats& st : last_steps) {
            const LayerRouteStats& x = st.layers[l];
            L.head_load_cv += x.head_cv;
            L.expert_load_cv += x.load_cv;
            L.dropped_frac += x.dropped_frac;
            L.router_entropy += x.router_entropy;
            L.dead_expert_frac += x.dead_frac;
            L.expert_diversity += x.diversity;
        }
        const double n = s.steps;
        L.head_load_cv /= n, L.expert_load_cv /= n, L.dropped_frac /= n, L.router_entropy /= n;
        L.dead_expert_frac /= n, L.expert_diversity /= n;
        const LayerRouteStats& x = last.layers[l];
        L.head_load_f.assign(x.head_f, x.head_f + x.n_routed_heads);
        L.expert_load.assign(x.expert_load, x.expert_load + x.n_experts);
        s.layers.push_back(std::move(L));
    }
    return s;
}

nlohmann::json routing_summary_to_json(const RoutingSummary& s) {
    nlohmann::json j = nlohmann::json::object();
    if (s.steps == 0) return j;
    nlohmann::json layers = nlohmann::json::array();
    for (const LayerRoutingSummary& L : s.layers) {
        nlohmann::json jl;
        if (s.moh) jl["head_load_cv"] = L.head_load_cv;
        if (s.moe) {
            jl["expert_load_cv"] = L.expert_load_cv;
            jl["dropped_frac"] = L.dropped_frac;
            jl["router_entropy"] = L.router_entropy;
            jl["dead_expert_frac"] = L.dead_expert_frac;
            jl["expert_diversity"] = L.expert_diversity;
        }
        if (s.moh) jl["head_load_f"] = L.head_load_f;
        if (s.moe) jl["expert_load"] = L.expert_load;
        layers.push_back(jl);
    }
    j["routing"] = layers;
    if (s.moe)
        j["aux_convention"] = s.aux_convention == AuxConvention::hf
                                  ? "hf: E * sum_e f_e P_e with sum f = K (balanced value K)"
                                  : "switch: E * sum_e f_e P_e with sum f = 1 (balanced value 1)";
    j["moh_balance_final"] = s.moh_balance_final;
    j["moe_aux_final"] = s.moe_aux_final;
    j["zloss_final"] = s.zloss_final;
    return j;
}

std::string routing_summary_text(const RoutingSummary& s) {
    std::string out;
    char b[256];
    for (size_t l = 0; l < s.layers.size(); l++) {
        const LayerRoutingSummary& L = s.layers[l];
        std::snprintf(b, sizeof b, "routing layer %zu:", l);
        out += b;
        if (s.moh) std::snprintf(b, sizeof b, "  head load CV %.3f", L.head_load_cv), out += b;
        if (s.moe)
            std::snprintf(b, sizeof b, "  expert load CV %.3f  dropped %.3f  router entropy %.3f  dead %.3f  diversity %.3f",
                          L.expert_load_cv, L.dropped_frac, L.router_entropy, L.dead_expert_frac, L.expert_diversity),
                out += b;
        std::snprintf(b, sizeof b, "   (mean of the last %d steps)\n", s.steps);
        out += b;
    }
    return out;
}

}  // namespace rl
