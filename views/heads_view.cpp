#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

namespace {

// Where each head's column goes. JetMoE's attention experts (n_head_experts E): columns grouped by
// expert, expert e's heads e, E + e, 2E + e, ... side by side, a gap between experts; otherwise head
// order. col[h]: head h's column; x[h]: its left edge from the map's, in cells.
struct HeadColumns {
    std::vector<int> head_at;  // head in each column
    std::vector<float> x;      // by head
    float width = 0;           // in cells
};

HeadColumns headColumns(const rl::ProbeSnapshot& p) {
    const int H = p.n_heads, E = p.n_head_experts;
    HeadColumns c;
    c.x.assign(H, 0.f);
    const float gap = 0.4f;
    for (int col = 0; col < H; col++) {
        const int per = E ? H / E : H, e = E ? col / per : 0, h = E ? (col % per) * E + e : col;
        c.head_at.push_back(h);
        c.x[h] = col + e * gap;
    }
    c.width = H + (E ? (E - 1) * gap : 0.f);
    return c;
}

// Column labels: S<h> for shared heads, the head index, or one "e<expert>" over each expert's group.
// Where cells are narrower than a label: one "S" over the shared heads and every n-th label of the rest.
void drawHeadHeader(ImDrawList* dl, const rl::ProbeSnapshot& p, const HeadColumns& hc, ImVec2 o, float cell) {
    const int H = p.n_heads, E = p.n_head_experts, S = p.n_shared_heads;
    auto put = [&](const char* text, float x, float span, ImU32 colour) {
        const float tw = ImGui::CalcTextSize(text).x;
        dl->AddText(ImVec2(o.x + x + std::max(0.f, (span - 1 - tw) / 2), o.y), colour, text);
    };
    char b[16];
    std::snprintf(b, sizeof b, E ? "e%d" : "%d", E ? E - 1 : H - 1);  // the widest label
    const float span = E ? (float)(H / E) * cell : cell, need = ImGui::CalcTextSize(b).x + 3;
    const int every = std::max(1, (int)std::ceil(need / span));
    if (S > 0 && ImGui::CalcTextSize("S0").x + 2 > cell) put("S", 0, S * cell, look().gold);
    for (int h = 0; h < (E ? E : H); h++) {
        const bool shared = h < S;
        if (shared && ImGui::CalcTextSize("S0").x + 2 > cell) continue;  // the one "S" above
        if (!shared && (h - S) % every != 0) continue;
        std::snprintf(b, sizeof b, E ? "e%d" : shared ? "S%d" : "%d", h);
        put(b, hc.x[h] * cell, span, shared ? look().gold : look().text);
    }
}

// The hover text of token t's head h in a layer's gates (one row).
void headTip(ViewOutbox& out, const rl::ProbeSnapshot& p, const std::vector<float>& row, int t, int h) {
    const int H = p.n_heads, S = p.n_shared_heads, E = p.n_head_experts;
    const float g = row[h];
    char tip[200];
    if (E) {  // a chosen expert's rank among the chosen, by its gate
        int rank = 1, k = 0;
        for (int e = 0; e < E; e++) rank += row[e] > g, k += row[e] != 0.f;
        char what[48];
        if (g == 0.f) std::snprintf(what, sizeof what, "off: not among the %d chosen of %d", k, E);
        else std::snprintf(what, sizeof what, "rank %d of the %d chosen of %d", rank, k, E);
        std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d = attention expert %d's head %d  gate %.4f  %s",
                      p.tokens[t].text.c_str(), t, h, h % E, h / E, g, what);
    } else if (h < S) {
        std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d (shared, always on)  gate %.4f", p.tokens[t].text.c_str(), t, h, g);
    } else {  // shared heads are always on and not ranked: a routed head's rank is among the routed ones
        int rank = 1;
        for (int k = S; k < H; k++) rank += row[k] > g;
        std::snprintf(tip, sizeof tip, "token '%s' (#%d)  head %d  gate %.4f  rank %d of the %d routed heads%s",
                      p.tokens[t].text.c_str(), t, h, g, rank, H - S, g == 0.f ? " (off)" : "");
    }
    tooltip(out, tip);
}

}  // namespace

void drawHeadsView(const RunData& run, HeadsState& state, ViewOutbox& out) {
    if (state.epoch != run.historyEpoch) state = {-1, run.historyEpoch};  // the snapshots moved: back to the newest
    const rl::ProbeSnapshot& p = state.scrub >= 0 && state.scrub < (int)run.history.size() ? run.history[state.scrub] : run.probe;
    if (p.layers.empty() || p.layers[0].head_gates.empty()) {
        ImGui::TextWrapped("Heads: this model has no head selection (all heads are always on). "
                           "Pick a MoH preset such as seed-moh to see which heads each token switches on.");
        return;
    }
    if (p.n_head_experts) {
        char hint[200];
        std::snprintf(hint, sizeof hint, "Dark cells: switched off. Each token picks %d of %d attention experts (e0.., %d heads each).",
                      p.head_top_k / (p.n_heads / p.n_head_experts), p.n_head_experts, p.n_heads / p.n_head_experts);
        viewHint(hint);
    } else {
        viewHint("Dark cells: heads this token switched off. Compare the shared heads (S, always on) with the routed ones.");
    }
    if (!run.history.empty()) {
        int s = state.scrub < 0 ? (int)run.history.size() - 1 : state.scrub;
        ImGui::SetNextItemWidth(300);
        if (ImGui::SliderInt("snapshot", &s, 0, (int)run.history.size() - 1, "", k_clamp))
            state.scrub = s == (int)run.history.size() - 1 ? -1 : s;
        ImGui::SameLine();
        ImGui::Text("step %d   (slide to replay earlier steps)", p.step);
    }
    const int H = p.n_heads, T = (int)p.tokens.size();
    const HeadColumns hc = headColumns(p);
    const float lh = ImGui::GetTextLineHeight();
    // Token labels as wide as the longest (up to 12 characters), then the cells share what is left.
    float labelW = 40.f;
    for (const auto& t : p.tokens) labelW = std::max(labelW, ImGui::CalcTextSize(shortText(t.text, 12).c_str()).x + 10);
    labelW = std::min(labelW, 120.f);
    const float nl = (float)p.layers.size();
    const float legendH = 2 * lh + 16;  // each layer's colour scale under its map
    const float byWidth = (ImGui::GetContentRegionAvail().x - nl * (labelW + 14.f)) / (nl * std::max(hc.width, 1.f));
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
        drawHeadHeader(dl, p, hc, ImVec2(o.x + labelW, o.y), cell);
        const float top = o.y + lh + 2;
        for (int t = 0; t < T; t++) {
            const float y = top + t * cell;
            if (cell >= lh * 0.7f || t % 2 == 0)  // small cells: every other label, so they do not overlap
                dl->AddText(ImVec2(o.x, y + cell / 2 - halfLine()), look().text, shortText(p.tokens[t].text, 12).c_str());
            for (int h = 0; h < H; h++) {
                const float g = p.layers[l].head_gates[t][h];
                const ImVec2 a(o.x + labelW + hc.x[h] * cell, y), b(a.x + cell - 1, a.y + cell - 1);
                if (g == 0.f) {  // off: dark, outlined so it reads as a cell and not as the background
                    dl->AddRectFilled(a, b, look().off);
                    dl->AddRect(a, b, look().grid);
                } else {
                    dl->AddRectFilled(a, b, ramp(g / gmax));
                }
                if (h == hc.head_at.back()) markTarget(out, "heads.cell", t, a, b);  // one a token: its last column
                if (ImGui::IsMouseHoveringRect(a, b)) headTip(out, p, p.layers[l].head_gates[t], t, h);
            }
        }
        ImGui::Dummy(ImVec2(labelW + hc.width * cell + 8, lh + 2 + T * cell + 6));
        // The scale of this layer's gates (each layer's colours run from 0 to its own largest gate);
        // where the map is narrow, the ends only (three numbers would overlap).
        ImGui::SetCursorScreenPos(ImVec2(o.x + labelW, ImGui::GetCursorScreenPos().y));
        ImGui::BeginGroup();
        ImGui::PushStyleColor(ImGuiCol_Text, look().dim);
        ImGui::TextUnformatted("gate");
        ImGui::PopStyleColor();
        const float bar = std::max(60.f, hc.width * cell - 70);
        colourLegend("", "0", bar >= 120.f ? legendNumber(gmax / 2) : "", legendNumber(gmax), bar, "off");
        ImGui::EndGroup();
        ImGui::EndGroup();
    }
}
