#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "config/config.h"
#include "widgets.h"

namespace {

// A flow line whose thickness is the weight it carries; while progress < 1 it fades in and a dot
// travels along it (the animation replays the routing when the token or layer changes).
void flow(ImVec2 a, ImVec2 b, float weight, ImU32 c, float progress = 1.f) {
    if (progress <= 0) return;
    const float mx = (a.x + b.x) / 2;
    const ImVec2 c1(mx, a.y), c2(mx, b.y);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddBezierCubic(a, c1, c2, b, withAlpha(c, (int)(200 * std::min(1.f, progress))), 1.f + 5.f * std::clamp(weight, 0.f, 1.f));
    if (progress < 1) {
        const float t = progress, u = 1 - t;  // cubic Bezier point at t
        const ImVec2 p(u * u * u * a.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t * t * t * b.x,
                       u * u * u * a.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t * t * t * b.y);
        dl->AddCircleFilled(p, 4.f, withAlpha(look().strong, 230));
    }
}

// Animation phase of the routing diagram: 0 -> 1 over 0.9 s after the token or layer changed.
float routingPhase(RoutingState& state, int layer) {
    if (state.token != state.animToken || layer != state.animLayer) {
        state.animToken = state.token, state.animLayer = layer;
        state.animStart = ImGui::GetTime();
    }
    const float ph = std::clamp((float)(ImGui::GetTime() - state.animStart) / 0.9f, 0.f, 1.f);
    state.animating = ph < 1.f;
    return ph;
}
// Stage k of 3 (bars, flows to the middle column, flows to the sum) as 0..1.
float stage(float phase, int k) { return std::clamp(phase * 3.f - k, 0.f, 1.f); }

constexpr float k_colW = 130, k_gap = 90;  // bar width, space for the flow lines

// A column title, wrapped to the column's width and gap; returns its height.
float columnTitle(ImVec2 at, const char* text, float width) {
    ImGui::GetWindowDrawList()->AddText(ImGui::GetFont(), ImGui::GetFontSize(), at, look().dim, text, nullptr, width);
    return ImGui::CalcTextSize(text, nullptr, false, width).y;
}

// The titles over a diagram's columns: the router, the column it feeds, the sum; returns their height.
float columnTitles(ImVec2 o, const char* router, const char* middle) {
    const float w = k_colW + k_gap - 12;
    return std::max({columnTitle(o, router, w), columnTitle(ImVec2(o.x + k_colW + k_gap, o.y), middle, w),
                     columnTitle(ImVec2(o.x + 2 * k_colW + 2 * k_gap + 20, o.y), "weighted sum", w)}) + 3;
}

// The node the weighted flows end in.
void sumNode(ImVec2 sum) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddCircleFilled(sum, 22, look().node);
    const ImVec2 ts = ImGui::CalcTextSize("+");
    dl->AddText(ImVec2(sum.x - ts.x / 2, sum.y - ts.y / 2), look().text, "+");
}

// The probe tokens as buttons; the one under the cursor (or clicked) becomes the diagram's token.
void tokenPicker(const rl::ProbeSnapshot& p, int& token, ViewOutbox& out) {
    const int T = (int)p.tokens.size();
    if (token < 0 || token >= T) token = T - 1;
    ImGui::TextWrapped("Point at a token of the probe text: the diagram follows that token through one layer's routers, on "
                       "the model's real numbers (step %d).", p.step);
    for (int t = 0; t < T; t++) {
        ImGui::PushID(t);
        // Pop what was pushed, not what `token` says after the hover below moved it (a pop without
        // a push trips ImGui's assert).
        const bool picked = t == token;
        if (picked) ImGui::PushStyleColor(ImGuiCol_Button, IM_COL32(200, 140, 40, 255));
        if (ImGui::SmallButton(p.tokens[t].text.c_str()) || ImGui::IsItemHovered()) token = t;  // the token under the cursor
        if (picked) ImGui::PopStyleColor();
        markTarget(out, "routing.token", t, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
        ImGui::PopID();
        if (t + 1 < T && ImGui::GetItemRectMax().x - ImGui::GetWindowPos().x < ImGui::GetWindowWidth() - 100) ImGui::SameLine();
    }
}

// MoH: the routed heads' router softmax -> top-k -> the gate of every head -> the weighted sum.
void drawHeadsDiagram(const rl::ProbeSnapshot& p, int layer, int t, float ph, ViewOutbox& out) {
    const rl::ProbeLayer& L = p.layers[layer];
    const int S = p.n_shared_heads, H = p.n_heads, R = H - S;
    ImGui::TextWrapped("Heads (MoH, layer %d, token '%s'): routed-head router softmax -> %stop-%d -> gates -> "
                       "attention output = sum over heads of gate x head output",
                       layer, p.tokens[t].text.c_str(), L.head_bias.empty() ? "" : "+ head bias -> ", p.head_top_k);
    const ImVec2 o = ImGui::GetCursorScreenPos();
    std::vector<float> probs = L.head_probs[t], gates = L.head_gates[t];
    std::vector<std::string> pl, gl;
    std::vector<bool> pon, gon;
    std::vector<ImU32> pc, gc;
    for (int i = 0; i < R; i++) {
        pl.push_back(numbered("h", S + i));
        pon.push_back(gates[S + i] != 0.f);
        pc.push_back(IM_COL32(80, 160, 230, 255));
    }
    float gmax = 1e-6f;
    for (int h = 0; h < H; h++) {
        gl.push_back(numbered(h < S ? "S" : "h", h));
        gon.push_back(gates[h] != 0.f);
        gc.push_back(h < S ? IM_COL32(230, 180, 60, 255) : IM_COL32(120, 200, 90, 255));
        gmax = std::max(gmax, gates[h]);
    }
    const float top = o.y + columnTitles(o, L.head_bias.empty() ? "router softmax (routed heads)" : "router p; top-k reads p+b",
                                         "gate of every head");
    // Routed probabilities sit level with their gates (shared heads take the top S rows).
    auto pe = barColumn(out, ImVec2(o.x, top + S * 21), k_colW, probs, pl, pon, 1.f, pc, "router p of head", stage(ph, 0));
    auto ge = barColumn(out, ImVec2(o.x + k_colW + k_gap, top), k_colW, gates, gl, gon, gmax, gc, "gate of head", stage(ph, 1));
    for (int i = 0; i < R; i++)
        if (pon[i]) flow(pe[i], ImVec2(ge[S + i].x - k_colW - 34, ge[S + i].y), probs[i], IM_COL32(120, 200, 90, 255), stage(ph, 1));
    const ImVec2 sum(o.x + 2 * k_colW + 2 * k_gap + 60, top + H * 21 / 2.f);
    for (int h = 0; h < H; h++)
        if (gon[h])
            flow(ge[h], ImVec2(sum.x - 24, sum.y), gates[h] / gmax, h < S ? IM_COL32(230, 180, 60, 255) : IM_COL32(120, 200, 90, 255),
                 stage(ph, 2));
    sumNode(sum);
    char b[200];
    if (S > 0)
        std::snprintf(b, sizeof b, "alpha: shared %.3f  routed %.3f\n%s scaling:\n shared g = %s\n routed g = %s", L.head_type[t][0],
                      L.head_type[t][1], p.head_paper_scaling ? "paper" : "official",
                      p.head_paper_scaling ? "a1*p" : "2*a1*S*p", p.head_paper_scaling ? "a2*p" : "2*a2*K*p/sum(top-K p)");
    else
        std::snprintf(b, sizeof b, "no shared heads: routed g = K*p/sum(top-K p)");
    std::string text = b;
    if (!L.head_bias.empty()) {  // aux-loss-free head balancing (docs/routing-math.md §12.5)
        text += "\nhead bias b (choice only):";
        for (int i = 0; i < R; i++) {
            char t[24];
            std::snprintf(t, sizeof t, "%s h%d %+.3f", i % 3 == 0 ? "\n " : "", S + i, L.head_bias[i]);
            text += t;
        }
    }
    ImGui::GetWindowDrawList()->AddText(ImVec2(sum.x - 40, sum.y + 30), look().text, text.c_str());
    ImGui::Dummy(ImVec2(2 * k_colW + 2 * k_gap + 300,
                        std::max(top - o.y + H * 21.f + 4, sum.y + 30 + ImGui::CalcTextSize(text.c_str()).y + 6 - o.y)));
}

// MoE: the expert router's softmax -> the experts it keeps -> combine weights -> the weighted sum.
void drawExpertsDiagram(const rl::ProbeSnapshot& p, int layer, int t, int& subToken, float ph, ViewOutbox& out) {
    const rl::ProbeLayer& L = p.layers[layer];
    const int E = p.n_experts;
    if (p.mh_heads > 1) {
        subToken = std::clamp(subToken, 0, p.mh_heads - 1);
        ImGui::SetNextItemWidth(160);
        ImGui::SliderInt("sub-token (MH-MoE)", &subToken, 0, p.mh_heads - 1, "%d", k_clamp);
        subToken = std::clamp(subToken, 0, p.mh_heads - 1);
    }
    const size_t r = (size_t)t * p.mh_heads + (p.mh_heads > 1 ? subToken : 0);
    const std::vector<int>& ex = L.experts[r];
    const std::vector<float>& w = L.expert_weights[r];
    const bool choice = p.expert_kind == rl::moe_routing_name(rl::MoeRouting::expert_choice);
    const bool capacity = p.expert_kind == rl::moe_routing_name(rl::MoeRouting::top1_capacity);
    std::string rule = choice     ? "each expert picks its top tokens"
                       : capacity ? "top-1, within capacity"
                                  : "top-" + std::to_string(p.expert_top_k);
    const bool biasStep = r < L.expert_keys.size() && !L.expert_bias.empty();
    ImGui::TextWrapped("Experts (%s, layer %d, token '%s'): router %s -> %s%s -> combine weights -> "
                       "FFN output = sum of weight x expert(x)%s",
                       p.expert_kind.c_str(), layer, p.tokens[t].text.c_str(), p.expert_score.c_str(),
                       biasStep ? "+ expert bias -> " : "", rule.c_str(), p.n_shared_experts ? " + shared experts" : "");
    const ImVec2 o = ImGui::GetCursorScreenPos();
    std::vector<float> probs = L.expert_probs[r], cw(E, 0.f);
    std::vector<std::string> lab;
    std::vector<bool> on(E, false);
    std::vector<ImU32> col;
    for (size_t k = 0; k < ex.size(); k++) cw[ex[k]] = w[k], on[ex[k]] = true;
    for (int e = 0; e < E; e++) lab.push_back(numbered("e", e)), col.push_back(viewColour(e));
    // With an expert bias or a group limit the top-k reads a key of its own: one more column, between
    // the scores and the weights (docs/routing-math.md §12.2). The weights still come from the scores.
    const bool keyed = r < L.expert_keys.size();
    const float shift = keyed ? k_colW + k_gap : 0;
    const std::string scores = "router " + p.expert_score;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float tw = k_colW + k_gap - 12;
    float titles = columnTitle(o, scores.c_str(), tw);
    if (keyed)
        titles = std::max(titles, columnTitle(ImVec2(o.x + k_colW + k_gap, o.y),
                                              L.expert_bias.empty() ? "group-limited key" : "score + bias b (choice)", tw));
    titles = std::max(titles, columnTitle(ImVec2(o.x + shift + k_colW + k_gap, o.y), "combine weight", tw));
    titles = std::max(titles, columnTitle(ImVec2(o.x + shift + 2 * k_colW + 2 * k_gap + 20, o.y), "weighted sum", tw));
    const float top = o.y + titles + 3;
    auto pe = barColumn(out, ImVec2(o.x, top), k_colW, probs, lab, on, 1.f, col, "router score of expert", stage(ph, 0));
    std::vector<ImVec2> ke;
    if (keyed) {  // the key's own values; experts outside the kept groups (key -inf) show 0
        std::vector<float> key = L.expert_keys[r], shown(E, 0.f);
        float hi = -INFINITY;
        for (float k : key)
            if (std::isfinite(k)) hi = std::max(hi, k);
        for (int e = 0; e < E; e++) shown[e] = std::isfinite(key[e]) ? key[e] : 0.f;
        ke = barColumn(out, ImVec2(o.x + k_colW + k_gap, top), k_colW, shown, lab, on, std::max(hi, 1e-6f), col,
                       "selection key of expert", stage(ph, 1));
        for (int e = 0; e < E; e++)
            flow(pe[e], ImVec2(ke[e].x - k_colW - 34, ke[e].y), on[e] ? probs[e] : 0.05f, viewColour(e), stage(ph, 1));
    }
    auto we = barColumn(out, ImVec2(o.x + shift + k_colW + k_gap, top), k_colW, cw, lab, on, 1.f, col, "combine weight of expert",
                        stage(ph, keyed ? 2 : 1));
    const ImVec2 sum(o.x + shift + 2 * k_colW + 2 * k_gap + 60, top + E * 21 / 2.f);
    for (int e = 0; e < E; e++)
        if (on[e]) {
            const ImVec2 from = keyed ? ke[e] : pe[e];
            flow(from, ImVec2(we[e].x - k_colW - 34, we[e].y), probs[e], viewColour(e), stage(ph, keyed ? 2 : 1));
            flow(we[e], ImVec2(sum.x - 24, sum.y), cw[e], viewColour(e), stage(ph, 2));
        }
    float biasH = 0;  // the bias list under the key column
    if (keyed && !L.expert_bias.empty()) {
        std::string b = "b:";
        for (int e = 0; e < E; e++) {
            char t[24];
            std::snprintf(t, sizeof t, "%s e%d %+.3f", e % 4 == 0 && e ? "\n  " : "", e, L.expert_bias[e]);
            b += t;
        }
        b += "\nthe bias picks the experts;\nthe weights use the scores";
        dl->AddText(ImVec2(o.x + k_colW + k_gap, top + E * 21 + 6), look().dim, b.c_str());
        biasH = ImGui::CalcTextSize(b.c_str()).y;
    }
    sumNode(sum);
    std::string note = ex.empty() ? "dropped: no expert had room, the token skips this FFN (residual only)"
                                  : std::to_string(ex.size()) + " expert(s) run for this token";
    if (p.n_shared_experts) note += "\n+ " + std::to_string(p.n_shared_experts) + " shared expert(s), weight 1";
    const ImVec2 at = keyed ? ImVec2(we[0].x - k_colW - 34, top + E * 21 + 6) : ImVec2(sum.x - 40, sum.y + 30);
    ImGui::GetWindowDrawList()->AddText(at, ex.empty() ? IM_COL32(255, 90, 90, 255) : look().text, note.c_str());
    const float noteH = ImGui::CalcTextSize(note.c_str()).y;
    const float below = top - o.y + E * 21.f + 6 + std::max(biasH, keyed ? noteH : 0.f) + 4;
    ImGui::Dummy(ImVec2(shift + 2 * k_colW + 2 * k_gap + 300, std::max(below, keyed ? 0.f : sum.y + 30 + noteH + 6 - o.y)));
}

}  // namespace

void drawRoutingView(const RunData& run, RoutingState& state, int& layer, ViewOutbox& out) {
    const rl::ProbeSnapshot& p = run.probe;
    if (p.layers.empty()) {
        ImGui::Text("Routing: waiting for the first probe snapshot...");
        return;
    }
    const bool heads = !p.layers[0].head_probs.empty(), experts = p.n_experts > 0;
    if (!heads && !experts) {
        ImGui::TextWrapped("Routing diagram: this model routes nothing (all heads on, dense FFN). Pick seed-moh, moe-top2-8 or "
                           "moh-moe to see how one token's router picks heads and experts.");
        return;
    }
    viewHint("Follow one token: the router's scores become the few heads and experts it uses, and the weights they get.");
    tokenPicker(p, state.token, out);
    layerPicker(layer, (int)p.layers.size());
    const float ph = routingPhase(state, layer);
    ImGui::Separator();
    if (heads) {
        drawHeadsDiagram(p, layer, state.token, ph, out);
        ImGui::Separator();
    }
    if (experts) drawExpertsDiagram(p, layer, state.token, state.subToken, ph, out);
}
