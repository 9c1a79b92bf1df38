#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

void drawHeadsView(const RunData& run, HeadsState& state, ViewOutbox& out) {
    if (state.epoch != run.historyEpoch) state = {-1, run.historyEpoch};  // the snapshots moved: back to the newest
    const rl::ProbeSnapshot& p = state.scrub >= 0 && state.scrub < (int)run.history.size() ? run.history[state.scrub] : run.probe;
    if (p.layers.empty() || p.layers[0].head_gates.empty()) {
        ImGui::TextWrapped("Heads: this model has no head selection (all heads are always on). "
                           "Pick a MoH preset such as seed-moh to see which heads each token switches on.");
        return;
    }
    if (!run.history.empty()) {
        int s = state.scrub < 0 ? (int)run.history.size() - 1 : state.scrub;
        ImGui::SetNextItemWidth(300);
        if (ImGui::SliderInt("snapshot", &s, 0, (int)run.history.size() - 1, "", k_clamp))
            state.scrub = s == (int)run.history.size() - 1 ? -1 : s;
        ImGui::SameLine();
        ImGui::Text("step %d   (dark = head off for that token; S = shared head, always on)", p.step);
    }
    const int H = p.n_heads, T = (int)p.tokens.size();
    const float labelW = 84.f;  // token labels; the cells share what is left of the width and height
    const float nl = (float)p.layers.size();
    const float byWidth = (ImGui::GetContentRegionAvail().x - nl * (labelW + 14.f)) / (nl * std::max(H, 1));
    const float cell = std::clamp(std::min((ImGui::GetContentRegionAvail().y - 60.f) / std::max(T, 1), byWidth), 8.f, 22.f);
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
            dl->AddText(ImVec2(o.x, y), k_text, shortText(p.tokens[t].text, 10).c_str());
            for (int h = 0; h < H; h++) {
                const float g = p.layers[l].head_gates[t][h];
                const ImVec2 a(o.x + labelW + h * cell, y), b(a.x + cell - 1, a.y + cell - 1);
                dl->AddRectFilled(a, b, g == 0.f ? k_off : ramp(g / gmax));
                if (ImGui::IsMouseHoveringRect(a, b)) {
                    int rank = 1;
                    for (int k = 0; k < H; k++) rank += p.layers[l].head_gates[t][k] > g;
                    char tip[160];
                    std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d%s  gate %.4f  rank %d of %d", p.tokens[t].text.c_str(), t, h,
                                  h < p.n_shared_heads ? " (shared)" : "", g, rank, H);
                    tooltip(out, tip);
                }
            }
        }
        ImGui::Dummy(ImVec2(labelW + H * cell + 8, 16 + T * cell));
        ImGui::EndGroup();
    }
}
