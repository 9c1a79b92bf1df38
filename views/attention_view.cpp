#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

void drawAttentionView(const RunData& run, AttentionState& state, int& layer, ViewOutbox& out) {
    const rl::ProbeSnapshot& p = run.probe;
    if (p.layers.empty() || p.layers[0].attention.empty()) {
        ImGui::Text("Attention: waiting for the first probe snapshot...");
        return;
    }
    viewHint("Where each head looks back from each token; hatched rows: queries for which MoH switched this head off.");
    layerPicker(layer, (int)p.layers.size());
    const rl::ProbeLayer& L = p.layers[layer];
    const int H = (int)L.attention.size(), T = (int)p.tokens.size();
    state.head = std::clamp(state.head, 0, H - 1);
    ImGui::SameLine();
    ImGui::TextWrapped(" step %d. Row = query token, column = key token it attends to (causal: nothing right of the diagonal).", p.step);
    ImGui::TextWrapped("Small maps: every head of this layer (click one to enlarge).%s",
                       L.head_gates.empty() ? "" : " Enlarged map: rows where this head's gate is 0 are hatched: MoH switched "
                                                   "the head off for that query token, so its pattern there is computed but unused.");
    const float lh = ImGui::GetTextLineHeight();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float small = std::clamp((ImGui::GetContentRegionAvail().x - 10) / H - 8, 40.f, 110.f);
    ImVec2 o = ImGui::GetCursorScreenPos();
    for (int h = 0; h < H; h++) {
        const ImVec2 a(o.x + h * (small + 8), o.y + lh + 1);
        const float c = small / T;
        float amax = 1e-6f;
        for (float v : L.attention[h]) amax = std::max(amax, v);
        char lab[16];
        std::snprintf(lab, sizeof lab, h < p.n_shared_heads ? "S%d" : "h%d", h);
        dl->AddText(ImVec2(a.x, o.y), h == state.head ? look().gold : look().dim, lab);
        for (int q = 0; q < T; q++)
            for (int k = 0; k <= q; k++) {
                const float v = L.attention[h][(size_t)q * T + k];
                dl->AddRectFilled(ImVec2(a.x + k * c, a.y + q * c), ImVec2(a.x + (k + 1) * c, a.y + (q + 1) * c), ramp(std::sqrt(v / amax)));
            }
        if (h == state.head) dl->AddRect(ImVec2(a.x - 2, a.y - 2), ImVec2(a.x + small + 2, a.y + small + 2), look().gold);
        if (ImGui::IsMouseHoveringRect(a, ImVec2(a.x + small, a.y + small)) && ImGui::IsMouseClicked(0)) state.head = h;
        markTarget(out, "attention.thumb", h, a, ImVec2(a.x + small, a.y + small));
    }
    ImGui::Dummy(ImVec2(H * (small + 8), small + lh + 10));
    // The enlarged head with token labels, its colour scale to the right (or under it when narrow).
    const auto& A = L.attention[state.head];
    float labelW = 40.f;
    for (const auto& t : p.tokens) labelW = std::max(labelW, ImGui::CalcTextSize(shortText(t.text, 12).c_str()).x + 10);
    labelW = std::min(labelW, 120.f);
    const float legendW = 250.f;
    const float avail = std::min(ImGui::GetContentRegionAvail().x - labelW - 20 - legendW, ImGui::GetContentRegionAvail().y - 2 * lh - 10);
    const float c = std::clamp(avail / T, 6.f, 24.f);
    o = ImGui::GetCursorScreenPos();
    float amax = 1e-6f;
    for (float v : A) amax = std::max(amax, v);
    for (int q = 0; q < T; q++) {
        const float y = o.y + q * c;
        if (c >= lh * 0.7f || (c >= 6 && q % 2 == 0))  // small rows: every other label
            dl->AddText(ImVec2(o.x, y + c / 2 - halfLine()), look().text, shortText(p.tokens[q].text, 12).c_str());
        const bool off = !L.head_gates.empty() && L.head_gates[q][state.head] == 0.f;
        for (int k = 0; k < T; k++) {
            const ImVec2 a(o.x + labelW + k * c, y), b(a.x + c - 1, a.y + c - 1);
            const float v = A[(size_t)q * T + k];
            dl->AddRectFilled(a, b, k > q ? look().masked : ramp(std::sqrt(v / amax)));
            if (off && k <= q) dl->AddLine(a, b, IM_COL32(0, 0, 0, 200), 2);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "layer %d head %d: query '%s' (#%d) -> key '%s' (#%d): weight %.4f%s", layer, state.head,
                              p.tokens[q].text.c_str(), q, p.tokens[k].text.c_str(), k, v, off ? "  (head off for this query)" : "");
                tooltip(out, tip);
            }
        }
    }
    // The scale: colour = sqrt(weight / the head's largest weight), so the middle of the bar is a
    // quarter of the largest weight and weak links stay visible.
    const ImVec2 at(o.x + labelW + T * c + 20, o.y);
    ImGui::SetCursorScreenPos(at);
    ImGui::BeginGroup();
    char head[48];
    std::snprintf(head, sizeof head, "weight, %s%d", state.head < p.n_shared_heads ? "S" : "h", state.head);
    ImGui::TextUnformatted(head);
    colourLegend("", "0", legendNumber(amax / 4), legendNumber(amax), 150);
    viewHint("colour = sqrt(weight / max)");
    const float sw = lh * 0.9f;
    const ImVec2 m = ImGui::GetCursorScreenPos();
    dl->AddRectFilled(m, ImVec2(m.x + sw, m.y + sw), look().masked);
    dl->AddRect(m, ImVec2(m.x + sw, m.y + sw), look().axis);
    dl->AddText(ImVec2(m.x + sw + 6, m.y + sw / 2 - halfLine()), look().dim, "future key (masked)");
    ImGui::Dummy(ImVec2(sw, sw + 4));
    if (!L.head_gates.empty()) {
        const ImVec2 hm = ImGui::GetCursorScreenPos();
        dl->AddRectFilled(hm, ImVec2(hm.x + sw, hm.y + sw), ramp(0.6f));
        dl->AddLine(hm, ImVec2(hm.x + sw, hm.y + sw), IM_COL32(0, 0, 0, 200), 2);
        dl->AddText(ImVec2(hm.x + sw + 6, hm.y + sw / 2 - halfLine()), look().dim, "head off for this query");
        ImGui::Dummy(ImVec2(sw, sw + 4));
    }
    ImGui::EndGroup();
    ImGui::SetCursorScreenPos(ImVec2(o.x, o.y));
    ImGui::Dummy(ImVec2(labelW + T * c, T * c + 4));
}
