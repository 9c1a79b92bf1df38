#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgui.h"

namespace {

// Perceptual-ish ramp from dark blue (0) through teal to yellow (1).
ImU32 ramp(float v) {
    v = std::clamp(v, 0.f, 1.f);
    const float r = std::clamp(1.5f * v - 0.25f, 0.f, 1.f), g = std::clamp(0.15f + 0.85f * v, 0.f, 1.f),
                b = std::clamp(0.55f - 0.45f * v, 0.f, 1.f);
    return IM_COL32((int)(r * 255), (int)(g * 255), (int)(b * 255), 255);
}

ImU32 expertColour(int e) {
    static const ImU32 palette[] = {IM_COL32(230, 85, 80, 255),  IM_COL32(80, 160, 230, 255), IM_COL32(120, 200, 90, 255),
                                    IM_COL32(230, 180, 60, 255), IM_COL32(170, 110, 220, 255), IM_COL32(60, 200, 190, 255),
                                    IM_COL32(230, 120, 190, 255), IM_COL32(160, 160, 160, 255)};
    return palette[e % 8];
}

}  // namespace

void drawHeadsView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.scrub >= 0 && d.scrub < (int)d.history.size() ? d.history[d.scrub] : d.probe;
    if (p.layers.empty() || p.layers[0].head_gates.empty()) {
        ImGui::TextWrapped("Heads: this model has no head selection (all heads are always on). "
                           "Pick a MoH preset such as seed-moh to see which heads each token switches on.");
        return;
    }
    if (!d.history.empty()) {
        int s = d.scrub < 0 ? (int)d.history.size() - 1 : d.scrub;
        if (ImGui::SliderInt("snapshot", &s, 0, (int)d.history.size() - 1, "")) d.scrub = s == (int)d.history.size() - 1 ? -1 : s;
        ImGui::SameLine();
        ImGui::Text("step %d", p.step);
    }
    const int H = p.n_heads, T = (int)p.tokens.size();
    const float cell = std::clamp((ImGui::GetContentRegionAvail().y - 60.f) / std::max(T, 1), 8.f, 22.f);
    const float labelW = 110.f;
    for (size_t l = 0; l < p.layers.size(); l++) {
        if (l) ImGui::SameLine();
        ImGui::BeginGroup();
        ImGui::Text("layer %zu", l);
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImVec2 o = ImGui::GetCursorScreenPos();
        float gmax = 1e-6f;
        for (auto& row : p.layers[l].head_gates)
            for (float g : row) gmax = std::max(gmax, g);
        for (int h = 0; h < H; h++) {  // header: S = shared head
            char b[8];
            std::snprintf(b, sizeof b, h < p.n_shared_heads ? "S%d" : "%d", h);
            dl->AddText(ImVec2(o.x + labelW + h * cell + 2, o.y), h < p.n_shared_heads ? IM_COL32(255, 200, 80, 255) : IM_COL32(200, 200, 200, 255), b);
        }
        for (int t = 0; t < T; t++) {
            const float y = o.y + 16 + t * cell;
            dl->AddText(ImVec2(o.x, y), IM_COL32(220, 220, 220, 255), p.tokens[t].text.substr(0, 12).c_str());
            for (int h = 0; h < H; h++) {
                const float g = p.layers[l].head_gates[t][h];
                const ImVec2 a(o.x + labelW + h * cell, y), b(a.x + cell - 1, a.y + cell - 1);
                dl->AddRectFilled(a, b, g == 0.f ? IM_COL32(25, 25, 30, 255) : ramp(g / gmax));
                if (ImGui::IsMouseHoveringRect(a, b)) {
                    int rank = 1;
                    for (int k = 0; k < H; k++) rank += p.layers[l].head_gates[t][k] > g;
                    char tip[160];
                    std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d%s  gate %.4f  rank %d of %d", p.tokens[t].text.c_str(), t, h,
                                  h < p.n_shared_heads ? " (shared)" : "", g, rank, H);
                    ImGui::SetTooltip("%s", tip);
                    d.hoverText = tip;
                }
            }
        }
        ImGui::Dummy(ImVec2(labelW + H * cell + 8, 16 + T * cell));
        ImGui::EndGroup();
    }
}

void drawExpertsView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.probe;
    if (p.n_experts == 0) {
        ImGui::TextWrapped("Experts: this model has a dense FFN. Pick an MoE preset such as moe-top2-8.");
        return;
    }
    for (size_t l = 0; l < p.layers.size(); l++) {
        ImGui::Text("layer %zu", l);
        const auto& L = p.layers[l];
        for (size_t t = 0; t < p.tokens.size(); t++) {
            const size_t r = t * p.mh_heads;
            const int e = r < L.experts.size() && !L.experts[r].empty() ? L.experts[r][0] : -1;
            if (t) ImGui::SameLine();
            ImGui::PushStyleColor(ImGuiCol_Text, e < 0 ? IM_COL32(120, 120, 120, 255) : expertColour(e));
            ImGui::TextUnformatted(p.tokens[t].text.c_str());
            ImGui::PopStyleColor();
            if (ImGui::IsItemHovered() && e >= 0) {
                std::string tip = "token '" + p.tokens[t].text + "' experts:";
                for (size_t k = 0; k < L.experts[r].size(); k++) {
                    char b[40];
                    std::snprintf(b, sizeof b, " %d (%.2f)", L.experts[r][k], L.expert_weights[r][k]);
                    tip += b;
                }
                ImGui::SetTooltip("%s", tip.c_str());
                d.hoverText = tip;
            }
            if (ImGui::GetCursorPosX() > ImGui::GetContentRegionAvail().x - 80) ImGui::NewLine();
        }
    }
    if (!d.stats.empty()) {
        const auto& s = d.stats.back();
        for (int l = 0; l < s.n_layers; l++) {
            ImGui::Text("layer %d load (CV %.2f)", l, s.layers[l].load_cv);
            for (int e = 0; e < s.layers[l].n_experts; e++) {
                ImGui::PushStyleColor(ImGuiCol_PlotHistogram, expertColour(e));
                char b[16];
                std::snprintf(b, sizeof b, "e%d", e);
                ImGui::ProgressBar(s.layers[l].expert_load[e] * s.layers[l].n_experts / 2.f, ImVec2(160, 12), b);
                ImGui::PopStyleColor();
                if (e % 4 != 3) ImGui::SameLine();
            }
        }
    }
}

void drawCurvesView(ViewData& d) {
    if (d.stats.empty()) {
        ImGui::Text("Curves: waiting for the first training step...");
        return;
    }
    std::vector<float> loss, ce, cv;
    for (const auto& s : d.stats) {
        loss.push_back(s.loss);
        ce.push_back(s.ce);
        float m = 0;
        for (int l = 0; l < s.n_layers; l++) m += s.layers[l].n_experts ? s.layers[l].load_cv : s.layers[l].head_cv;
        cv.push_back(s.n_layers ? m / s.n_layers : 0);
    }
    const float w = ImGui::GetContentRegionAvail().x, h = std::max(80.f, ImGui::GetContentRegionAvail().y / 3 - 30);
    char label[64];
    std::snprintf(label, sizeof label, "loss %.3f", loss.back());
    ImGui::PlotLines("##loss", loss.data(), (int)loss.size(), 0, label, 0.f, loss.front() * 1.05f, ImVec2(w, h));
    std::snprintf(label, sizeof label, "cross-entropy %.3f", ce.back());
    ImGui::PlotLines("##ce", ce.data(), (int)ce.size(), 0, label, 0.f, ce.front() * 1.05f, ImVec2(w, h));
    std::snprintf(label, sizeof label, "mean load CV %.3f", cv.back());
    ImGui::PlotLines("##cv", cv.data(), (int)cv.size(), 0, label, 0.f, 2.f, ImVec2(w, h));
}

void drawSpeedupView(ViewData& d) {
    if (!d.hasCost) {
        ImGui::TextWrapped("Speedup: measured when a run of a routed model (MoH or MoE) finishes: the same weights run "
                           "densely (every head, every expert) and routed, back to back. Train a routed preset such as "
                           "seed-moh or moh-moe to completion.");
        return;
    }
    const ImU32 colours[3] = {IM_COL32(150, 150, 160, 255), IM_COL32(80, 160, 230, 255), IM_COL32(120, 200, 90, 255)};
    const char* names[3] = {"naive (the notes)", "FLOP model", "measured"};
    for (int k = 0; k < 3; k++) {
        if (k) ImGui::SameLine();
        ImGui::PushStyleColor(ImGuiCol_Text, colours[k]);
        ImGui::Text("%s  ", names[k]);
        ImGui::PopStyleColor();
    }
    ImGui::Separator();
    float vmax = 1.f;
    for (const rl::CostSide* side : {&d.cost.forward, &d.cost.decode})
        for (const auto& c : side->components)
            vmax = std::max({vmax, (float)c.speedup_naive(), (float)c.speedup_flops(), (float)c.speedup_measured()});
    const float barW = std::max(200.f, ImGui::GetContentRegionAvail().x * 0.45f);
    for (int s = 0; s < 2; s++) {
        const rl::CostSide& side = s == 0 ? d.cost.forward : d.cost.decode;
        ImGui::Text(s == 0 ? "Forward (B=16, T=%d)" : "KV-cache decode (%d tokens)", d.cost.seq_len);
        for (const auto& c : side.components) {
            const double v[3] = {c.speedup_naive(), c.speedup_flops(), c.speedup_measured()};
            ImGui::Text("%-10s", c.name.c_str());
            ImDrawList* dl = ImGui::GetWindowDrawList();
            for (int k = 0; k < 3; k++) {
                const ImVec2 o = ImGui::GetCursorScreenPos();
                const float w = barW * (float)v[k] / vmax;
                dl->AddRectFilled(ImVec2(o.x + 90, o.y), ImVec2(o.x + 90 + w, o.y + 12), colours[k]);
                dl->AddLine(ImVec2(o.x + 90 + barW / vmax, o.y - 2), ImVec2(o.x + 90 + barW / vmax, o.y + 14),
                            IM_COL32(255, 255, 255, 120));  // 1.0x: no saving
                char b[32];
                std::snprintf(b, sizeof b, "%.3fx", v[k]);
                dl->AddText(ImVec2(o.x + 96 + w, o.y - 1), IM_COL32(230, 230, 230, 255), b);
                ImGui::Dummy(ImVec2(barW + 160, 14));
            }
        }
        ImGui::Spacing();
    }
    ImGui::Text("active heads %.0f%%, expert rows %.1f%% of tokens x experts", 100 * d.cost.active_head_fraction,
                100 * d.cost.active_expert_fraction);
    ImGui::TextWrapped("%s", d.cost.explanation.c_str());
}
