#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

namespace {

std::vector<float> smooth(const std::vector<float>& v, float a) {
    std::vector<float> out(v.size());
    float s = 0, wsum = 0;
    for (size_t i = 0; i < v.size(); i++) {  // bias-corrected EMA (TensorBoard's smoothing)
        s = a * s + (1 - a) * v[i];
        wsum = a * wsum + (1 - a);
        out[i] = wsum > 0 ? s / wsum : v[i];
    }
    return out;
}

Series curveSeries(const std::string& name, ImU32 colour, const std::vector<rl::CurvePoint>& c, int column, float ema) {
    Series s{name, colour, {}, {}};
    for (const auto& p : c) s.x.push_back((float)p.step), s.y.push_back(rl::curve_value(p, column));
    if (ema > 0) s.y = smooth(s.y, ema);
    return s;
}

int column(const char* name) {
    const auto& cols = rl::curve_columns();
    return (int)(std::find(cols.begin(), cols.end(), name) - cols.begin());
}

}  // namespace

void drawCurvesView(ViewData& d) {
    if (d.curve.empty() && d.overlays.empty()) {
        ImGui::Text("Curves: waiting for the first training step...");
        return;
    }
    ImGui::SetNextItemWidth(200);
    ImGui::SliderFloat("EMA smoothing", &d.ema, 0.f, 0.99f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::Checkbox("log y", &d.logY);
    ImGui::SameLine();
    ImGui::TextDisabled("  hover a plot for exact values; tick runs in the Runs dock to overlay them");
    const bool routedHeads = !d.stats.empty() && d.stats.back().n_layers && d.stats.back().layers[0].n_routed_heads;
    const bool routedExperts = !d.stats.empty() && d.stats.back().n_layers && d.stats.back().layers[0].n_experts;
    const float h = std::max(120.f, (ImGui::GetContentRegionAvail().y - 10) / 3 - 6);
    const std::string me = d.runName.empty() ? "this run" : d.runName;
    // 1. Loss and its parts, runs overlaid (each run's loss in its colour).
    std::vector<Series> loss = {curveSeries(me + " loss", IM_COL32(240, 240, 240, 255), d.curve, column("loss"), d.ema),
                                curveSeries("cross-entropy", IM_COL32(80, 160, 230, 255), d.curve, column("ce"), d.ema)};
    for (const auto& r : d.overlays) loss.push_back(curveSeries(r.name, r.colour, r.curve, column("loss"), d.ema));
    plot(d, "loss", loss, h, d.logY);
    // 2. Routing losses and balance.
    std::vector<Series> bal;
    if (routedHeads) bal.push_back(curveSeries("head load CV", IM_COL32(230, 180, 60, 255), d.curve, column("head_cv"), d.ema));
    if (routedExperts) {
        bal.push_back(curveSeries("expert load CV", IM_COL32(230, 85, 80, 255), d.curve, column("load_cv"), d.ema));
        bal.push_back(curveSeries("dropped", IM_COL32(170, 110, 220, 255), d.curve, column("dropped"), d.ema));
        bal.push_back(curveSeries("router entropy", IM_COL32(60, 200, 190, 255), d.curve, column("entropy"), d.ema));
        bal.push_back(curveSeries("aux loss", IM_COL32(120, 200, 90, 255), d.curve, column("moe_aux"), d.ema));
        bal.push_back(curveSeries("z-loss", IM_COL32(160, 160, 160, 255), d.curve, column("zloss"), d.ema));
    }
    if (routedHeads) bal.push_back(curveSeries("MoH balance", IM_COL32(230, 120, 190, 255), d.curve, column("moh_balance"), d.ema));
    for (const auto& r : d.overlays)
        if (routedExperts || routedHeads)
            bal.push_back(curveSeries(r.name + (routedExperts ? " expert CV" : " head CV"), r.colour, r.curve,
                                      column(routedExperts ? "load_cv" : "head_cv"), d.ema));
    if (bal.empty()) bal.push_back(curveSeries("grad norm", IM_COL32(230, 180, 60, 255), d.curve, column("grad_norm"), d.ema));
    plot(d, routedHeads || routedExperts ? "balance (layer means)" : "gradient norm (no routers in this model)", bal, h, d.logY);
    // 3. Per-head or per-expert load of one layer.
    if (!d.stats.empty() && (routedHeads || routedExperts)) {
        const int nl = d.stats.back().n_layers;
        d.layer = std::clamp(d.layer, 0, nl - 1);
        std::vector<Series> load;
        const int n = routedExperts ? d.stats.back().layers[d.layer].n_experts : d.stats.back().layers[d.layer].n_routed_heads;
        for (int i = 0; i < n; i++) {
            Series s{numbered(routedExperts ? "e" : "h", i), viewColour(i), {}, {}};
            for (const auto& st : d.stats) {
                s.x.push_back((float)st.step);
                s.y.push_back(routedExperts ? st.layers[d.layer].expert_load[i] : st.layers[d.layer].head_f[i]);
            }
            if (d.ema > 0) s.y = smooth(s.y, d.ema);
            load.push_back(std::move(s));
        }
        char t[96];
        std::snprintf(t, sizeof t, routedExperts ? "expert load, layer %d (fair share 1/%d)" : "head load f, layer %d (of %d routed)", d.layer, n);
        plot(d, t, load, h - 26, false);
        layerPicker(d, nl);
    }
}
