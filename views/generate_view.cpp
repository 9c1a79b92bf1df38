#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "widgets.h"

void drawGenerateView(const RunData& run, GenerateState& state, int& layer, ViewOutbox& out) {
    viewHint("Whether the text reads as English yet, and which expert (or how much routed-head gate mass) each token took.");
    ImGui::SetNextItemWidth(std::max(300.f, ImGui::GetContentRegionAvail().x - 320));
    ImGui::InputText("prompt", state.prompt, sizeof state.prompt);
    // Four sliders on one line with their labels, as wide as the line allows (up to 140 px each).
    const ImGuiStyle& st = ImGui::GetStyle();
    const float labels =
        ImGui::CalcTextSize("temperaturetop-ktop-pmax tokensmin tokens").x + 5 * st.ItemInnerSpacing.x + 4 * st.ItemSpacing.x;
    const float sw = std::clamp((ImGui::GetContentRegionAvail().x - labels - 4) / 5, 60.f, 140.f);
    ImGui::SetNextItemWidth(sw);
    ImGui::SliderFloat("temperature", &state.temperature, 0.f, 2.f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(sw);
    ImGui::SliderInt("top-k", &state.topK, 0, 100, "%d", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(sw);
    ImGui::SliderFloat("top-p", &state.topP, 0.05f, 1.f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(sw);
    ImGui::SliderInt("max tokens", &state.maxNew, 1, 200, "%d", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(sw);
    ImGui::SliderInt("min tokens", &state.minNew, 0, 200, "%d", k_clamp);
    if (ImGui::IsItemHovered()) tooltip(out, "the end-of-text token cannot end the text before this many new tokens");
    if (ImGui::Button(run.generating ? "generating..." : "Generate") && !run.generating) out.generateRequested = true;
    ImGui::SameLine();
    ImGui::TextDisabled("temperature 0 = greedy; top-k 0 and top-p 1 = off. Runs on the trainer thread between steps.");
    const rl::ProbeSnapshot& g = run.generation;
    const bool canHeads = !g.layers.empty() && !g.layers[0].head_gates.empty(), canExperts = g.n_experts > 0;
    const char* tints[] = {"top expert", "routed-head gate mass"};
    ImGui::SetNextItemWidth(200);
    ImGui::Combo("tint by", &state.tint, tints, 2);
    ImGui::SameLine();
    layerPicker(layer, (int)std::max<size_t>(1, g.layers.size()));
    ImGui::Separator();
    if (!run.generationError.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 120, 100, 255));
        ImGui::TextWrapped("%s", run.generationError.c_str());
        ImGui::PopStyleColor();
        return;
    }
    if (g.tokens.empty()) {
        ImGui::TextWrapped("Press Generate: the model continues the prompt; each token is tinted by how it was routed.");
        return;
    }
    if (!run.generationNote.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(235, 150, 60, 255));
        ImGui::TextWrapped("%s.", run.generationNote.c_str());
        ImGui::PopStyleColor();
    }
    const bool byExpert = state.tint == 0 ? canExperts : !canHeads;
    if (state.tint == 0 && !canExperts) ImGui::TextDisabled("(dense FFN: tinting by head gates instead)");
    if (state.tint == 1 && !canHeads) ImGui::TextDisabled("(no head routing: tinting by top expert instead)");
    if (!canExperts && !canHeads) ImGui::TextDisabled("(this model routes nothing: tokens are not tinted)");
    const rl::ProbeLayer& L = g.layers[std::clamp(layer, 0, (int)g.layers.size() - 1)];
    for (size_t t = 0; t < g.tokens.size(); t++) {
        const bool prompt = (int)t < run.generationPromptTokens;
        ImU32 bg = look().chip;
        bool dropped = false;
        std::string tip = std::string(prompt ? "prompt" : "generated") + " token '" + g.tokens[t].text + "'";
        if (byExpert && canExperts) {
            const auto& ex = L.experts[t * g.mh_heads];
            dropped = ex.empty();
            if (!dropped) bg = withAlpha(viewColour(ex[0]), 170);
            tip += dropped ? ": dropped" : ": top expert " + std::to_string(ex[0]);
        } else if (canHeads) {
            float routed = 0, all = 0;
            for (int h = 0; h < g.n_heads; h++) all += L.head_gates[t][h], routed += h >= g.n_shared_heads ? L.head_gates[t][h] : 0;
            const float share = all > 0 ? routed / all : 0;
            bg = withAlpha(ramp(share), 170);
            char b[64];
            std::snprintf(b, sizeof b, ": routed heads carry %.0f%% of the gate mass", 100 * share);
            tip += b;
        }
        if (tokenChip(g.tokens[t].text, bg, dropped, prompt, t + 1 < g.tokens.size())) tooltip(out, tip);
    }
    ImGui::Spacing();
    if (!byExpert && canHeads) colourLegend("routed heads' share of the gate mass", "0%", "50%", "100%", 150);
    ImGui::TextDisabled("underlined = prompt; red frame = dropped by capacity. Routing shown for the last %d tokens (the model's context).",
                        (int)g.tokens.size());
}
