#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

void drawSpeedupView(const RunData& run) {
    if (!run.hasCost) {
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
    for (const rl::CostSide* side : {&run.cost.forward, &run.cost.decode})
        for (const auto& c : side->components)
            vmax = std::max({vmax, (float)c.speedup_naive(), (float)c.speedup_flops(), (float)c.speedup_measured()});
    const float barW = std::max(200.f, ImGui::GetContentRegionAvail().x * 0.45f);
    for (int s = 0; s < 2; s++) {
        const rl::CostSide& side = s == 0 ? run.cost.forward : run.cost.decode;
        ImGui::Text(s == 0 ? "Forward (B=16, T=%d)" : "KV-cache decode (%d tokens)", run.cost.seq_len);
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
    ImGui::Text("active heads %.0f%%, expert rows %.1f%% of tokens x experts", 100 * run.cost.active_head_fraction,
                100 * run.cost.active_expert_fraction);
    ImGui::TextWrapped("%s", run.cost.explanation.c_str());
}
