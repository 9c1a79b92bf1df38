#include "train/step_stats.h"

#include <algorithm>
#include <cmath>

#include "model/model.h"

namespace rl {

float stats_cv(const float* v, int n) {
    if (n <= 0) return 0.f;
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    mean /= n;
    if (mean <= 0) return 0.f;
    for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
    return (float)(std::sqrt(var / n) / mean);
}

void stats_collect(StepStats& st, const ModelConfig& c, const Activations& a) {
    st.ce = (float)a.ce;
    st.moh_balance = (float)a.moh_balance;
    st.moe_aux = (float)a.moe_aux;
    st.zloss = (float)a.zloss;
    const bool moh = c.attention.heads.kind == HeadSelection::moh, moe = c.moe.kind != FfnRouting::dense;
    st.w_moh_balance = moh ? c.attention.heads.beta : 0.f;
    st.w_moe_aux = moe && c.moe.load_balancing != LoadBalancing::none ? c.moe.aux_weight : 0.f;
    st.w_zloss = moe ? c.moe.z_loss_weight : 0.f;
    st.n_layers = std::min(c.n_layers, k_stats_layers);
    st.truncated = c.n_layers > k_stats_layers || (moe && c.moe.n_experts > k_stats_experts);
    for (int l = 0; l < st.n_layers; l++) {
        const LayerActs& L = a.layers[l];
        LayerRouteStats& r = st.layers[l];
        r = LayerRouteStats{};
        if (c.attention.heads.kind == HeadSelection::moh) {
            r.n_routed_heads = std::min((int)L.head_f.size(), k_stats_heads);
            std::copy_n(L.head_f.begin(), r.n_routed_heads, r.head_f);
            std::copy_n(L.head_P.begin(), r.n_routed_heads, r.head_P);
            r.head_cv = stats_cv(r.head_f, r.n_routed_heads);
        }
        if (c.moe.kind != FfnRouting::dense) {
            r.n_experts = std::min((int)L.mst.load.size(), k_stats_experts);
            std::copy_n(L.mst.load.begin(), r.n_experts, r.expert_load);
            r.load_cv = stats_cv(r.expert_load, r.n_experts);
            r.dropped_frac = L.mst.dropped_frac;
            r.router_entropy = L.mst.entropy;
            double h = 0;
            int dead = 0;
            for (int e = 0; e < r.n_experts; e++) {
                const float p = r.expert_load[e];
                if (p > 0) h -= p * std::log(p);
                else dead++;
            }
            r.dead_frac = (float)dead / r.n_experts;
            r.diversity = (float)(std::exp(h) / r.n_experts);
        }
    }
}

void stats_collect_bias(StepStats& st, const Model& m) {
    for (int l = 0; l < st.n_layers; l++) {
        const LayerWeights& w = m.w.layers[l];
        LayerRouteStats& r = st.layers[l];
        if ((r.has_head_bias = w.head_bias != nullptr)) std::copy_n(w.head_bias, r.n_routed_heads, r.head_bias);
        if ((r.has_expert_bias = w.moe.bias != nullptr)) std::copy_n(w.moe.bias, r.n_experts, r.expert_bias);
    }
}

StepLoads step_loads(const StepStats& s) {
    StepLoads p;
    const bool truncated = s.truncated;
    p.step = s.step;
    p.expert.resize(s.n_layers), p.head.resize(s.n_layers);
    for (int l = 0; l < s.n_layers; l++) {
        const LayerRouteStats& L = s.layers[l];
        // Each expert's share of the rows; a model with more experts than the stats keep stores none
        // (a truncated row would not sum to 1; cluster --run says why).
        if (!truncated) p.expert[l].assign(L.expert_load, L.expert_load + L.n_experts);
        // head_f is each routed head's rate of being chosen; its share of the (token, head) choices is f / sum f.
        float sum = 0;
        for (int h = 0; h < L.n_routed_heads; h++) sum += L.head_f[h];
        for (int h = 0; h < L.n_routed_heads && sum > 0; h++) p.head[l].push_back(L.head_f[h] / sum);
    }
    return p;
}

}  // namespace rl
