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
    layerPicker(layer, (int)p.layers.size());
    const rl::ProbeLayer& L = p.layers[layer];
    const int H = (int)L.attention.size(), T = (int)p.tokens.size();
    state.head = std::clamp(state.head, 0, H - 1);
    ImGui::SameLine();
    ImGui::Text("  step %d. Row = query token, column = key token it attends to (causal: nothing right of the diagonal).", p.step);
    ImGui::TextWrapped("Small maps: every head of this layer (click one to enlarge).%s",
                       L.head_gates.empty() ? "" : " Enlarged map: rows where this head's gate is 0 are hatched: MoH switched "
                                                   "the head off for that query token, so its pattern there is computed but unused.");
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const float small = std::clamp((ImGui::GetContentRegionAvail().x - 10) / H - 8, 40.f, 110.f);
    ImVec2 o = ImGui::GetCursorScreenPos();
    for (int h = 0; h < H; h++) {
        const ImVec2 a(o.x + h * (small + 8), o.y + 14);
        const float c = small / T;
        float amax = 1e-6f;
        for (float v : L.attention[h]) amax = std::max(amax, v);
        char lab[16];
        std::snprintf(lab, sizeof lab, h < p.n_shared_heads ? "S%d" : "h%d", h);
        dl->AddText(ImVec2(a.x, o.y), h == state.head ? IM_COL32(255, 200, 80, 255) : k_dim, lab);
        for (int q = 0; q < T; q++)
            for (int k = 0; k <= q; k++) {
                const float v = L.attention[h][(size_t)q * T + k];
                dl->AddRectFilled(ImVec2(a.x + k * c, a.y + q * c), ImVec2(a.x + (k + 1) * c, a.y + (q + 1) * c), ramp(std::sqrt(v / amax)));
            }
        if (h == state.head) dl->AddRect(ImVec2(a.x - 2, a.y - 2), ImVec2(a.x + small + 2, a.y + small + 2), IM_COL32(255, 200, 80, 255));
        if (ImGui::IsMouseHoveringRect(a, ImVec2(a.x + small, a.y + small)) && ImGui::IsMouseClicked(0)) state.head = h;
    }
    ImGui::Dummy(ImVec2(H * (small + 8), small + 24));
    // The enlarged head with token labels.
    const auto& A = L.attention[state.head];
    const float labelW = 100, avail = std::min(ImGui::GetContentRegionAvail().x - labelW - 20, ImGui::GetContentRegionAvail().y - 90);
    const float c = std::clamp(avail / T, 6.f, 24.f);
    o = ImGui::GetCursorScreenPos();
    float amax = 1e-6f;
    for (float v : A) amax = std::max(amax, v);
    for (int q = 0; q < T; q++) {
        const float y = o.y + q * c;
        if (c >= 10) dl->AddText(ImVec2(o.x, y + c / 2 - 7), k_text, shortText(p.tokens[q].text, 11).c_str());
        const bool off = !L.head_gates.empty() && L.head_gates[q][state.head] == 0.f;
        for (int k = 0; k < T; k++) {
            const ImVec2 a(o.x + labelW + k * c, y), b(a.x + c - 1, a.y + c - 1);
            const float v = A[(size_t)q * T + k];
            dl->AddRectFilled(a, b, k > q ? IM_COL32(18, 18, 22, 255) : ramp(std::sqrt(v / amax)));
            if (off && k <= q) dl->AddLine(a, b, IM_COL32(0, 0, 0, 200), 2);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "layer %d head %d: query '%s' (#%d) -> key '%s' (#%d): weight %.4f%s", layer, state.head,
                              p.tokens[q].text.c_str(), q, p.tokens[k].text.c_str(), k, v, off ? "  (head off for this query)" : "");
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(labelW + T * c, T * c + 4));
    ImGui::TextDisabled("colour = sqrt(weight / max weight of the head), so weak links stay visible");
}
