#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "train/corpus.h"
#include "expert_maps.h"
#include "widgets.h"

namespace {

// Experts a token (row) reached, or empty when capacity dropped it.
const std::vector<int>* rowExperts(const rl::ProbeLayer& L, size_t row) { return row < L.experts.size() ? &L.experts[row] : nullptr; }

// Aux-loss-free balancing: the choice with the expert bias (what ran) next to the one without it.
std::string biasNote(const rl::ProbeLayer& L, size_t row) {
    std::vector<int> with, without = L.experts_unbiased[row];
    // The choice with the bias is the top-k of the biased key (a capacity may have dropped some of it).
    std::vector<int> order(L.expert_keys[row].size());
    for (size_t e = 0; e < order.size(); e++) order[e] = (int)e;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return L.expert_keys[row][a] > L.expert_keys[row][b]; });
    with.assign(order.begin(), order.begin() + std::min(order.size(), without.size()));
    auto list = [](std::vector<int> v) {
        std::sort(v.begin(), v.end());
        std::string s;
        for (int e : v) s += " " + std::to_string(e);
        return s;
    };
    std::string t = "\n  biased choice (score + b):" + list(with) + "\n  unbiased choice (score):" + list(without);
    t += list(with) == list(without) ? "  (same)" : "  <- the bias moved this token";
    t += "\n  b:";
    for (int e : with) {
        char b[32];
        std::snprintf(b, sizeof b, " e%d %+.3f", e, L.expert_bias[e]);
        t += b;
    }
    return t + "  (weights use the unbiased scores)";
}

// Real-size models (a model folder: 16-32 layers, 32-64 experts) get the compact maps of expert_maps.h.
bool realSize(const rl::ProbeSnapshot& p) { return p.layers.size() > 8 || p.n_experts > 16; }

// The probe text coloured by each token's first expert (dropped tokens framed), one row of chips per
// layer in [first, last).
void drawProbeChips(const rl::ProbeSnapshot& p, size_t first, size_t last, ViewOutbox& out) {
    for (size_t l = first; l < last && l < p.layers.size(); l++) {
        ImGui::Text("layer %zu:", l);
        ImGui::SameLine();
        const auto& L = p.layers[l];
        for (size_t t = 0; t < p.tokens.size(); t++) {
            const size_t r = t * p.mh_heads;
            const std::vector<int>* ex = rowExperts(L, r);
            const bool dropped = ex && ex->empty();
            const int e = ex && !ex->empty() ? (*ex)[0] : -1;
            const ImU32 bg = e < 0 ? look().chip : withAlpha(viewColour(e), 170);
            const ImVec2 chipAt = ImGui::GetCursorScreenPos();
            const bool chipHovered = tokenChip(p.tokens[t].text, bg, dropped, false, t + 1 < p.tokens.size());
            if (l == 0) markTarget(out, "experts.token", (int)t, chipAt, ImVec2(chipAt.x + ImGui::CalcTextSize(p.tokens[t].text.c_str()).x + 6, chipAt.y + ImGui::GetTextLineHeight() + 2));
            if (chipHovered && ex) {
                std::string tip = "token '" + p.tokens[t].text + "' layer " + std::to_string(l);
                for (int s = 0; s < p.mh_heads; s++) {
                    const auto& xs = L.experts[r + s];
                    if (p.mh_heads > 1) tip += "\n sub-token " + std::to_string(s) + ":";
                    if (xs.empty()) tip += " dropped (no expert had room)";
                    else tip += " experts";
                    for (size_t k = 0; k < xs.size(); k++) {
                        char b[40];
                        std::snprintf(b, sizeof b, " %d (%.2f)", xs[k], L.expert_weights[r + s][k]);
                        tip += b;
                    }
                    if (!L.expert_bias.empty() && r + s < L.experts_unbiased.size()) tip += biasNote(L, r + s);
                }
                tooltip(out, tip);
            }
        }
    }
}

// The probe's routing: every layer's chips, or at real size the tokens x layers map and the picked
// layer's chips; then the load: this step's bars, or (nothing trains a model folder) the load map of
// the measured text.
void drawProbeAndLoad(const RunData& run, int& layer, ViewOutbox& out) {
    const rl::ProbeSnapshot& p = run.probe;
    if (p.perplexity > 0)
        ImGui::Text("Probe text: %zu tokens, perplexity %.2f (mean -log p of each next token %.3f).", p.tokens.size(), p.perplexity,
                    std::log(p.perplexity));
    if (!realSize(p)) {
        ImGui::TextWrapped("Each token of the probe text in the colour of its first expert (hover for all experts and weights); "
                           "red-framed tokens were dropped (over capacity: they skip the FFN). Step %d.", p.step);
        drawProbeChips(p, 0, p.layers.size(), out);
    } else {
        layer = std::clamp(layer, 0, std::max(0, (int)p.layers.size() - 1));
        ImGui::TextWrapped("Tokens (columns) x layers (rows), each cell in the colour of the token's first expert; hover for "
                           "all %d experts and their weights, click a row to pick the layer. Below: layer %d's chips.",
                           p.expert_top_k, layer);
        drawTokenLayerMap(p, layer, out);
        drawProbeChips(p, layer, layer + 1, out);
    }
    ImGui::Separator();
    if (run.stats.empty() && run.hasSpec && realSize(p)) {
        ImGui::TextWrapped("Load: each expert's share of the top-1 choices over the %d measured tokens, per layer (rows), against "
                           "the fair 1/E; CV at each row's end.", run.spec.tokens);
        drawLoadMap(run.spec, layer, out);
    } else if (!run.stats.empty()) {
        const auto& s = run.stats.back();
        ImGui::Text("Load this step: the share of expert rows each expert received (balanced = all bars at 1/E).");
        for (int l = 0; l < s.n_layers; l++) {
            const auto& L = s.layers[l];
            ImGui::Text("layer %d  CV %.2f  dropped %.1f%%  entropy %.2f", l, L.load_cv, 100 * L.dropped_frac, L.router_entropy);
            const int perRow = std::min(L.n_experts, 8);
            const float bw = std::max(60.f, (ImGui::GetContentRegionAvail().x - 8 * perRow) / perRow);
            for (int e = 0; e < L.n_experts; e++) {
                ImGui::PushStyleColor(ImGuiCol_PlotHistogram, viewColour(e));
                char b[24];
                std::snprintf(b, sizeof b, "e%d %.0f%%", e, 100 * L.expert_load[e]);
                ImGui::ProgressBar(L.expert_load[e] * L.n_experts / 2.f, ImVec2(bw, ImGui::GetTextLineHeight()), b);  // full bar = twice the fair share
                ImGui::PopStyleColor();
                if (e + 1 < L.n_experts && e % perRow != perRow - 1) ImGui::SameLine();
            }
        }
    }
}

void drawTopTokens(const rl::LayerSpecialization& S) {
    ImGui::BeginGroup();
    ImGui::TextUnformatted("top tokens per expert (count)");
    for (size_t e = 0; e < S.top_tokens.size(); e++) {
        std::string line;
        for (size_t k = 0; k < S.top_tokens[e].size() && k < 8; k++)
            line += "'" + S.top_tokens[e][k].first + "' " + std::to_string(S.top_tokens[e][k].second) + "  ";
        ImGui::PushStyleColor(ImGuiCol_Text, viewColour((int)e));
        ImGui::Text("e%zu", e);
        ImGui::PopStyleColor();
        ImGui::SameLine();
        ImGui::TextUnformatted(line.c_str());
    }
    ImGui::EndGroup();
}

}  // namespace

void drawExpertsView(const RunData& run, int& layer, ViewOutbox& out) {
    const rl::ProbeSnapshot& p = run.probe;
    if (p.n_experts == 0) {
        ImGui::TextWrapped("Experts: this model has a dense FFN. Pick an MoE preset such as moe-top2-8.");
        return;
    }
    viewHint("Which expert takes which kind of token (the colours, the matrices below), and whether the load stays near 1/E.");
    {
        Spotlight look_here("experts.load", out);
        drawProbeAndLoad(run, layer, out);
    }
    ImGui::Separator();
    if (const rl::ExperimentResult& an = run.experiments[(size_t)rl::ExperimentKind::analyse]; an.done && !an.analysis.layers.empty()) {
        layerPicker(layer, (int)p.layers.size());
        drawDomainAnalysis(an.analysis, layer, out);
        return;
    }
    if (!run.hasSpec || run.spec.layers.empty()) {
        ImGui::TextDisabled(run.stats.empty() && realSize(p)
                                ? "Specialization: being measured on the embedded corpus (the status line says how far)."
                                : "Specialization: measured on validation text every 100 steps and at the end of the run.");
        return;
    }
    layerPicker(layer, (int)run.spec.layers.size());
    Spotlight look_here("experts.matrix", out);  // the NMI line and the two matrices
    const rl::LayerSpecialization& S = run.spec.layers[layer];
    ImGui::TextWrapped("%d validation tokens, top-1 expert.  NMI(expert; domain) %.3f   NMI(expert; lexical class) %.3f",
                       run.spec.tokens, S.nmi_domain, S.nmi_lex);
    // Domains absent from the validation text (e.g. the embedded corpus has no "user" domain) get no column.
    std::vector<std::string> domains, lex;
    std::vector<std::vector<double>> byDomain(S.by_domain.size());
    for (size_t c = 0; c < (S.by_domain.empty() ? 0 : S.by_domain[0].size()); c++) {
        double col = 0;
        for (const auto& row : S.by_domain) col += row[c];
        if (col == 0) continue;
        domains.push_back(rl::domain_name((int)c));
        for (size_t e = 0; e < S.by_domain.size(); e++) byDomain[e].push_back(S.by_domain[e][c]);
    }
    for (int c = 0; c < rl::lex_count; c++) lex.push_back(rl::lex_class_name(c));
    // Side by side when both fit with their labels whole; else side by side in half the width each
    // (labels on two rows, shortened only when still too long); stacked when even that is too narrow.
    if (S.by_domain.size() > 16) {  // 32-64 experts: the experts as columns, one matrix under the other
        drawExpertColumns(out, "expert x domain (each column: the share of that expert's top-1 tokens)", byDomain, domains);
        drawExpertColumns(out, "expert x lexical class", S.by_lex, lex);
        drawTopTokens(S);
        return;
    }
    const float gap = 30, avail = ImGui::GetContentRegionAvail().x;
    const float wd = matrixWidth(domains, byDomain.size()), wl = matrixWidth(lex, S.by_lex.size());
    const float half = (avail - gap) / 2;
    const bool sideBySide = wd + wl + gap <= avail ||
                            half >= std::max(matrixWidth(domains, byDomain.size(), true), matrixWidth(lex, S.by_lex.size(), true));
    const float limit = wd + wl + gap <= avail ? 0 : sideBySide ? half : avail;
    drawMatrix(out, "expert x domain (share of the expert's tokens)", byDomain, domains, "e", limit);
    if (sideBySide) ImGui::SameLine(0, gap);
    drawMatrix(out, "expert x lexical class", S.by_lex, lex, "e", limit);
    drawTopTokens(S);
}
