#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>

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

// The envelope of the smoothed curve: the raw values' min and max over the trailing window the EMA
// mostly averages, round(1 / (1 - a)) points (3 at a = 0.6, 100 at 0.99), with monotonic deques.
void rawBand(const std::vector<float>& v, float a, std::vector<float>& lo, std::vector<float>& hi) {
    const size_t w = std::max<size_t>(1, (size_t)std::lround(1.0 / (1.0 - a)));
    lo.resize(v.size()), hi.resize(v.size());
    std::deque<size_t> mn, mx;
    for (size_t i = 0; i < v.size(); i++) {
        while (!mn.empty() && v[mn.back()] >= v[i]) mn.pop_back();
        while (!mx.empty() && v[mx.back()] <= v[i]) mx.pop_back();
        mn.push_back(i), mx.push_back(i);
        if (mn.front() + w <= i) mn.pop_front();
        if (mx.front() + w <= i) mx.pop_front();
        lo[i] = v[mn.front()], hi[i] = v[mx.front()];
    }
}

// x = step, or seconds of training (the Runs dock's toggle); band only where smoothing hides the raw spread.
Series curveSeries(const std::string& name, ImU32 colour, const std::vector<rl::CurvePoint>& c, int column, const CurvesState& st,
                   bool band = false) {
    Series s{name, colour, {}, {}, {}, {}};
    for (const auto& p : c) s.x.push_back(st.wallTime ? p.wall_s : (float)p.step), s.y.push_back(rl::curve_value(p, column));
    if (st.ema > 0 && band && st.band) rawBand(s.y, st.ema, s.lo, s.hi);
    if (st.ema > 0) s.y = smooth(s.y, st.ema);
    return s;
}

int column(const char* name) {
    const auto& cols = rl::curve_columns();
    return (int)(std::find(cols.begin(), cols.end(), name) - cols.begin());
}

}  // namespace

void drawCurvesView(const RunData& run, CurvesState& state, int& layer, ViewOutbox& out) {
    if (run.curve.empty() && run.overlays.empty()) {
        ImGui::Text("Curves: waiting for the first training step...");
        return;
    }
    viewHint("The loss falling while the load CVs (heads, experts) stay low: routing that learns without collapsing onto a few.");
    ImGui::SetNextItemWidth(200);
    ImGui::SliderFloat("EMA smoothing", &state.ema, 0.f, 0.99f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::Checkbox("log y", &state.logY);
    ImGui::SameLine();
    ImGui::TextDisabled(state.wallTime ? "  x: seconds of training; hover for values" : "  hover for values; overlays: Runs dock");
    const char* xUnit = state.wallTime ? "s" : "step";
    const bool routedHeads = !run.stats.empty() && run.stats.back().n_layers && run.stats.back().layers[0].n_routed_heads;
    const bool routedExperts = !run.stats.empty() && run.stats.back().n_layers && run.stats.back().layers[0].n_experts;
    const bool biased = !run.stats.empty() && run.stats.back().n_layers &&
                        (run.stats.back().layers[0].has_expert_bias || run.stats.back().layers[0].has_head_bias);
    const int panels = 2 + (routedHeads || routedExperts ? 2 : 0) + (biased ? 1 : 0);  // the window scrolls past what fits
    const float h = std::max(120.f, (ImGui::GetContentRegionAvail().y - 10) / std::min(panels, 4) - 6);
    const std::string me = run.runName.empty() ? "this run" : run.runName;
    // 1. Loss and its parts, runs overlaid (each run's loss in its colour).
    std::vector<Series> loss = {curveSeries(me + " loss", look().light ? IM_COL32(30, 30, 30, 255) : IM_COL32(240, 240, 240, 255), run.curve, column("loss"), state, true),
                                curveSeries("cross-entropy", IM_COL32(80, 160, 230, 255), run.curve, column("ce"), state)};
    for (const auto& r : run.overlays) loss.push_back(curveSeries(r.name, r.colour, r.curve, column("loss"), state, true));
    plot(out, "loss", loss, h, state.logY, xUnit);
    // 2. Balance: the load CVs and the dropped share on an axis of their own (0 = perfectly even);
    // the routing losses, whose scales differ by orders (z-loss ~10, MoH balance ~4), get panel 2b.
    std::vector<Series> bal;
    if (routedHeads) bal.push_back(curveSeries("head load CV", IM_COL32(230, 180, 60, 255), run.curve, column("head_cv"), state));
    if (routedExperts) {
        bal.push_back(curveSeries("expert load CV", IM_COL32(230, 85, 80, 255), run.curve, column("load_cv"), state));
        bal.push_back(curveSeries("dropped", IM_COL32(170, 110, 220, 255), run.curve, column("dropped"), state));
    }
    for (const auto& r : run.overlays)
        if (routedExperts || routedHeads)
            bal.push_back(curveSeries(r.name + (routedExperts ? " expert CV" : " head CV"), r.colour, r.curve,
                                      column(routedExperts ? "load_cv" : "head_cv"), state, true));
    if (bal.empty()) bal.push_back(curveSeries("grad norm", IM_COL32(230, 180, 60, 255), run.curve, column("grad_norm"), state));
    {
        Spotlight look_here("curves.balance", out);
        plot(out, routedHeads || routedExperts ? "balance: load CV and dropped share (layer means)" : "gradient norm (no routers in this model)",
             bal, h, state.logY, xUnit);
    }
    // 2b. The router's losses that the step's loss includes (weight > 0 now), unweighted, and its entropy.
    if (routedHeads || routedExperts) {
        const rl::StepStats* last = run.stats.empty() ? nullptr : &run.stats.back();
        std::vector<Series> losses;
        std::string hidden;
        auto add = [&](const char* name, ImU32 colour, const char* col, float weight) {
            if (weight > 0.f) losses.push_back(curveSeries(name, colour, run.curve, column(col), state));
            else hidden += std::string(hidden.empty() ? "" : ", ") + name;
        };
        if (routedExperts) {
            losses.push_back(curveSeries("router entropy", IM_COL32(60, 200, 190, 255), run.curve, column("entropy"), state));
            add("aux loss", IM_COL32(120, 200, 90, 255), "moe_aux", last ? last->w_moe_aux : 1.f);
            add("z-loss", IM_COL32(160, 160, 160, 255), "zloss", last ? last->w_zloss : 1.f);
        }
        if (routedHeads) add("MoH balance", IM_COL32(230, 120, 190, 255), "moh_balance", last ? last->w_moh_balance : 1.f);
        const std::string title = "router losses (unweighted layer means)" + (hidden.empty() ? "" : "; weight 0, not shown: " + hidden);
        if (!losses.empty()) plot(out, title.c_str(), losses, h, state.logY, xUnit);
    }
    // 3. Per-head or per-expert load of one layer.
    if (!run.stats.empty() && (routedHeads || routedExperts)) {
        const int nl = run.stats.back().n_layers;
        layer = std::clamp(layer, 0, nl - 1);
        std::vector<Series> load;
        const int n = routedExperts ? run.stats.back().layers[layer].n_experts : run.stats.back().layers[layer].n_routed_heads;
        for (int i = 0; i < n; i++) {
            Series s{numbered(routedExperts ? "e" : "h", i), viewColour(i), {}, {}, {}, {}};
            for (const auto& st : run.stats) {
                s.x.push_back(state.wallTime ? st.wall_s : (float)st.step);
                s.y.push_back(routedExperts ? st.layers[layer].expert_load[i] : st.layers[layer].head_f[i]);
            }
            if (state.ema > 0) s.y = smooth(s.y, state.ema);
            load.push_back(std::move(s));
        }
        Spotlight look_here("curves.bias", out);  // the load and, under it, the bias that moves it
        char t[96];
        std::snprintf(t, sizeof t, routedExperts ? "expert load, layer %d (fair share 1/%d)" : "head load f, layer %d (of %d routed)", layer, n);
        plot(out, t, load, biased ? h : h - 26, false, xUnit);
        // 4. Aux-loss-free balancing: each one's selection bias, in the same colours as its load above.
        const rl::LayerRouteStats& last = run.stats.back().layers[layer];
        const bool expertBias = routedExperts && last.has_expert_bias, headBias = !routedExperts && last.has_head_bias;
        if (expertBias || headBias) {
            std::vector<Series> bias;
            for (int i = 0; i < n; i++) {
                Series s{numbered(expertBias ? "b e" : "b h", i), viewColour(i), {}, {}, {}, {}};
                for (const auto& st : run.stats) {
                    s.x.push_back(state.wallTime ? st.wall_s : (float)st.step);
                    s.y.push_back(expertBias ? st.layers[layer].expert_bias[i] : st.layers[layer].head_bias[i]);
                }
                bias.push_back(std::move(s));
            }
            std::snprintf(t, sizeof t, "%s bias b, layer %d (selection only: b += u sign(mean load - load) each step)",
                          expertBias ? "expert" : "head", layer);
            plot(out, t, bias, h - 26, false, xUnit);
        }
        layerPicker(layer, nl);
    }
}
