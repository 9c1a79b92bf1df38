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
    viewHint("Dark cells: heads this token switched off. Compare the shared heads (S, always on) with the routed ones.");
    if (!run.history.empty()) {
        int s = state.scrub < 0 ? (int)run.history.size() - 1 : state.scrub;
        ImGui::SetNextItemWidth(300);
        if (ImGui::SliderInt("snapshot", &s, 0, (int)run.history.size() - 1, "", k_clamp))
            state.scrub = s == (int)run.history.size() - 1 ? -1 : s;
        ImGui::SameLine();
        ImGui::Text("step %d   (slide to replay earlier steps)", p.step);
    }
    const int H = p.n_heads, T = (int)p.tokens.size();
    const float lh = ImGui::GetTextLineHeight();
    // Token labels as wide as the longest (up to 12 characters), then the cells share what is left.
    float labelW = 40.f;
    for (const auto& t : p.tokens) labelW = std::max(labelW, ImGui::CalcTextSize(shortText(t.text, 12).c_str()).x + 10);
    labelW = std::min(labelW, 120.f);
    const float nl = (float)p.layers.size();
    const float legendH = 2 * lh + 16;  // each layer's colour scale under its map
    const float byWidth = (ImGui::GetContentRegionAvail().x - nl * (labelW + 14.f)) / (nl * std::max(H, 1));
    const float byHeight = (ImGui::GetContentRegionAvail().y - 2 * lh - legendH - 16) / std::max(T, 1);
    const float cell = std::clamp(std::min(byHeight, byWidth), 8.f, 24.f);
    Spotlight look_here("heads.map", out);  // every layer's map
    for (size_t l = 0; l < p.layers.size(); l++) {
        if (l) ImGui::SameLine(0, 14);
        ImGui::BeginGroup();
        ImGui::Text("layer %zu", l);
        ImDrawList* dl = ImGui::GetWindowDrawList();
        const ImVec2 o = ImGui::GetCursorScreenPos();
        float gmax = 1e-6f;
        for (auto& row : p.layers[l].head_gates)
            for (float g : row) gmax = std::max(gmax, g);
        for (int h = 0; h < H; h++) {  // header: S = shared head, centred over its column
            char b[8];
            std::snprintf(b, sizeof b, h < p.n_shared_heads ? "S%d" : "%d", h);
            const float tw = ImGui::CalcTextSize(b).x;
            dl->AddText(ImVec2(o.x + labelW + h * cell + std::max(0.f, (cell - 1 - tw) / 2), o.y),
                        h < p.n_shared_heads ? look().gold : look().text, b);
        }
        const float top = o.y + lh + 2;
        for (int t = 0; t < T; t++) {
            const float y = top + t * cell;
            if (cell >= lh * 0.7f || t % 2 == 0)  // small cells: every other label, so they do not overlap
                dl->AddText(ImVec2(o.x, y + cell / 2 - halfLine()), look().text, shortText(p.tokens[t].text, 12).c_str());
            for (int h = 0; h < H; h++) {
                const float g = p.layers[l].head_gates[t][h];
                const ImVec2 a(o.x + labelW + h * cell, y), b(a.x + cell - 1, a.y + cell - 1);
                if (g == 0.f) {  // off: dark, outlined so it reads as a cell and not as the background
                    dl->AddRectFilled(a, b, look().off);
                    dl->AddRect(a, b, look().grid);
                } else {
                    dl->AddRectFilled(a, b, ramp(g / gmax));
                }
                if (h == H - 1) markTarget(out, "heads.cell", t, a, b);  // one a token: its last head
                if (ImGui::IsMouseHoveringRect(a, b)) {
                    // Shared heads are always on and not ranked: a routed head's rank is among the routed ones.
                    const int S = p.n_shared_heads;
                    int rank = 1;
                    for (int k = S; k < H; k++) rank += p.layers[l].head_gates[t][k] > g;
                    char tip[160];
                    if (h < S)
                        std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d (shared, always on)  gate %.4f", p.tokens[t].text.c_str(), t,
                                      h, g);
                    else
                        std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d  gate %.4f  rank %d of the %d routed heads%s",
                                      p.tokens[t].text.c_str(), t, h, g, rank, H - S, g == 0.f ? " (off)" : "");
                    tooltip(out, tip);
                }
            }
        }
        ImGui::Dummy(ImVec2(labelW + H * cell + 8, lh + 2 + T * cell + 6));
        // The scale of this layer's gates (each layer's colours run from 0 to its own largest gate).
        ImGui::SetCursorScreenPos(ImVec2(o.x + labelW, ImGui::GetCursorScreenPos().y));
        ImGui::BeginGroup();
        ImGui::PushStyleColor(ImGuiCol_Text, look().dim);
        ImGui::TextUnformatted("gate");
        ImGui::PopStyleColor();
        colourLegend("", "0", legendNumber(gmax / 2), legendNumber(gmax), std::max(60.f, H * cell - 70), "off");
        ImGui::EndGroup();
        ImGui::EndGroup();
    }
}
