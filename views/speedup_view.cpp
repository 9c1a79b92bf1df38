#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

namespace {

// Bar colours: the same weights (naive, FLOP model, measured), then against the plain model
// (FLOP model, measured). tests/e2e/test_gui.cpp samples the first three.
const ImU32 k_colours[5] = {IM_COL32(150, 150, 160, 255), IM_COL32(80, 160, 230, 255), IM_COL32(120, 200, 90, 255),
                            IM_COL32(230, 160, 60, 255), IM_COL32(215, 105, 170, 255)};
constexpr float k_barH = 12.f, k_label = 90.f;
// A bar's row: its bar and its value written beside it.
float rowH() { return std::max(14.f, ImGui::GetTextLineHeight()); }

constexpr ImU32 k_doubt = IM_COL32(235, 120, 40, 255);

// n bars under each other from o, each its value times scale px wide, a tick at 1.0x (no saving).
// A doubtful bar (doubt[k]) is drawn as an outline with its value marked, not as a solid result.
void drawBars(ImDrawList* dl, ImVec2 o, const double* v, const int* colour, const bool* doubt, int n, float scale) {
    for (int k = 0; k < n; k++) {
        const float y = o.y + k * rowH(), w = scale * (float)v[k];
        if (doubt[k]) dl->AddRect(ImVec2(o.x, y), ImVec2(o.x + w, y + k_barH), k_colours[colour[k]], 0, 0, 2);
        else dl->AddRectFilled(ImVec2(o.x, y), ImVec2(o.x + w, y + k_barH), k_colours[colour[k]]);
        dl->AddLine(ImVec2(o.x + scale, y - 2), ImVec2(o.x + scale, y + k_barH + 2), withAlpha(look().strong, 120));
        char b[48];
        std::snprintf(b, sizeof b, doubt[k] ? "%.3fx  doubtful: re-measure" : "%.3fx", v[k]);
        dl->AddText(ImVec2(o.x + w + 6, y + k_barH / 2 - halfLine()), doubt[k] ? k_doubt : look().text, b);
    }
}

// Above the bars: whether the measurement can be stood behind (rl::cost_doubt), and Re-measure.
void measurementCheck(const RunData& run, ViewOutbox& out) {
    const rl::CostReport& r = run.cost;
    const std::string doubts = rl::cost_doubts(r);
    char load[96] = "";
    if (r.others_busy >= 0) std::snprintf(load, sizeof load, "; other processes kept %.1f cores busy meanwhile", r.others_busy);
    if (doubts.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
        ImGui::TextWrapped("Measured on %d thread%s, dense and routed calls interleaved, medians of per-round ratios%s.", r.threads,
                           r.threads == 1 ? "" : "s", load);
        ImGui::PopStyleColor();
    } else {
        ImGui::PushStyleColor(ImGuiCol_Text, k_doubt);
        ImGui::TextWrapped("Measured under load: re-measure. Some measured speedups cannot be stood behind (their bars are "
                           "outlined)%s:\n%s", load, doubts.c_str());
        ImGui::PopStyleColor();
    }
    if (run.measuring) {
        ImGui::TextDisabled("measuring again...");
    } else if (ImGui::Button("Re-measure")) {
        out.remeasureRequested = true;
    }
    markTarget(out, "speedup.remeasure", 0, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
}

}  // namespace

void drawSpeedupView(const RunData& run, ViewOutbox& out) {
    if (!run.hasCost) {
        ImGui::TextWrapped("Speedup: measured when a run of a routed model (MoH, head pruning or MoE) finishes: the same "
                           "weights run densely (every head, every expert) and routed, forward, KV-cache decode and a "
                           "training step, back to back; with head selection also against the plain model of the same "
                           "shape (every head, no router). Train a routed preset such as seed-moh or moh-moe to "
                           "completion.");
        return;
    }
    viewHint("The measured bars against the estimates: how much of the compute routing skips turns into time saved.");
    const rl::CostReport& r = run.cost;
    const bool plain = r.heads_gated;  // the plain-model comparison exists
    const char* names[5] = {"naive (the notes)", "FLOP model", "measured", "vs plain: FLOP model", "vs plain: measured"};
    for (int k = 0; k < (plain ? 5 : 3); k++) {
        if (k) ImGui::SameLine();
        ImGui::PushStyleColor(ImGuiCol_Text, k_colours[k]);
        ImGui::Text("%s  ", names[k]);
        ImGui::PopStyleColor();
    }
    measurementCheck(run, out);
    ImGui::Separator();
    const rl::CostSide* sides[3] = {&r.forward, &r.decode, &r.train};
    const int n_sides = plain ? 3 : 2;  // without head selection training compares a path with itself
    float vmax = 1.f;
    for (int s = 0; s < n_sides; s++)
        for (const auto& c : sides[s]->components) {
            vmax = std::max({vmax, (float)c.speedup_naive(), (float)c.speedup_flops(), (float)c.speedup_measured()});
            if (plain) vmax = std::max({vmax, (float)c.speedup_vs_all_heads_flops(), (float)c.speedup_vs_all_heads()});
        }
    // Two columns: the same weights (dense path vs routed), and the plain model vs routed.
    const float avail = ImGui::GetContentRegionAvail().x;
    const float col = plain ? std::max(330.f, (avail - 20.f) / 2.f) : std::max(330.f, avail);
    const float scale = std::max(120.f, col - k_label - 70.f) / vmax;  // px per 1.0x
    Spotlight look_here("speedup.bars", out);  // the bars of every side and component
    const ImVec2 head = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddText(ImVec2(head.x, head.y), look().text, "same weights: dense path / routed path");
    if (plain)
        dl->AddText(ImVec2(head.x + col + 20.f, head.y), look().text,
                    "plain model (every head, no router) / routed path");
    ImGui::Dummy(ImVec2(avail, rowH() + 4));
    for (int s = 0; s < n_sides; s++) {
        const rl::CostSide& side = *sides[s];
        if (s == 0) ImGui::Text("Forward (B=16, T=%d)", r.seq_len);
        else if (s == 1) ImGui::Text("KV-cache decode (%d tokens)", r.seq_len);
        else ImGui::Text("Training step (B=16, T=%d: forward and backward; dense-masked vs skip)", r.seq_len);
        for (const auto& c : side.components) {
            const ImVec2 o = ImGui::GetCursorScreenPos();
            dl->AddText(ImVec2(o.x, o.y + k_barH / 2 - halfLine()), look().text, c.name.c_str());
            const double same[3] = {c.speedup_naive(), c.speedup_flops(), c.speedup_measured()};
            const int same_c[3] = {0, 1, 2};
            const bool same_d[3] = {false, false, !rl::cost_doubt(c).empty()};
            drawBars(dl, ImVec2(o.x + k_label, o.y), same, same_c, same_d, 3, scale);
            if (plain) {
                const double vs[2] = {c.speedup_vs_all_heads_flops(), c.speedup_vs_all_heads()};
                const int vs_c[2] = {3, 4};
                const bool vs_d[2] = {false, false};
                drawBars(dl, ImVec2(o.x + col + 20.f + k_label, o.y + rowH()), vs, vs_c, vs_d, 2, scale);
            }
            ImGui::Dummy(ImVec2(avail, 3 * rowH() + 2));
        }
        ImGui::Spacing();
    }
    if (!plain)
        ImGui::TextDisabled("Training: the experts run routed on both sides (only the forward has a dense-experts path).");
    ImGui::Text("active heads %.0f%%, expert rows %.1f%% of tokens x experts", 100 * r.active_head_fraction,
                100 * r.active_expert_fraction);
    ImGui::TextWrapped("%s", r.explanation.c_str());
}
