#include "expert_maps.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "widgets.h"

namespace {

// Cells of the maps: as wide as the room allows between a readable minimum and a comfortable maximum.
float cellWidth(int n, float room, float lo, float hi) { return std::clamp(n > 0 ? room / n : hi, lo, hi); }

std::string expertList(const rl::ProbeLayer& L, size_t row) {
    std::string s;
    if (row >= L.experts.size()) return s;
    if (L.experts[row].empty()) return " dropped (no expert had room)";
    for (size_t k = 0; k < L.experts[row].size(); k++) {
        char b[40];
        std::snprintf(b, sizeof b, "\n  e%d  weight %.3f", L.experts[row][k], L.expert_weights[row][k]);
        s += b;
    }
    return s;
}

}  // namespace

namespace {

// One band of the tokens x layers map: tokens t0..t1-1 as columns from x0, every layer a row from y0.
void drawMapBand(const rl::ProbeSnapshot& p, int t0, int t1, ImVec2 o, float label, float cw, float ch, int& layer,
                 ViewOutbox& out) {
    const int L = (int)p.layers.size();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    for (int l = 0; l < L; l++) {
        const float y = o.y + l * ch;
        const bool picked = l == layer;
        // Every 4th row is named (all of a short model), and the picked one; its neighbours' names
        // would overlap it, so they give way.
        if (picked || ((l % 4 == 0 || L <= 12) && std::abs(l - layer) != 1)) {
            char b[8];
            std::snprintf(b, sizeof b, "L%d", l);
            dl->AddText(ImGui::GetFont(), ch, ImVec2(o.x, y), picked ? look().strong : look().dim, b);
        }
        const rl::ProbeLayer& P = p.layers[l];
        for (int t = t0; t < t1; t++) {
            const size_t r = (size_t)t * p.mh_heads;
            const bool routed = r < P.experts.size();
            const int e = routed && !P.experts[r].empty() ? P.experts[r][0] : -1;
            const ImVec2 a(o.x + label + (t - t0) * cw, y), b(a.x + cw - 1, y + ch - 1);
            dl->AddRectFilled(a, b, e >= 0 ? viewColour(e) : routed ? IM_COL32(255, 60, 60, 255) : look().off);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                std::string tip = "token " + std::to_string(t) + " '" + p.tokens[t].text + "', layer " + std::to_string(l);
                tip += routed ? ": experts" + expertList(P, r) : ": a dense layer (no router)";
                tooltip(out, tip);
                if (ImGui::IsMouseClicked(0)) layer = l;
            }
        }
        if (picked)
            dl->AddRect(ImVec2(o.x + label - 1, y - 1), ImVec2(o.x + label + (t1 - t0) * cw, y + ch), look().strong, 0, 0, 1.5f);
    }
}

}  // namespace

void drawTokenLayerMap(const rl::ProbeSnapshot& p, int& layer, ViewOutbox& out) {
    const int T = (int)p.tokens.size(), L = (int)p.layers.size();
    if (T == 0 || L == 0) return;
    const float lh = ImGui::GetTextLineHeight(), label = ImGui::CalcTextSize("L00 ").x;
    const float room = ImGui::GetContentRegionAvail().x - label;
    const float cw = cellWidth(T, room, 6, 28), ch = std::clamp(lh * 0.8f, 9.f, 16.f);
    // A text longer than a row holds at the narrowest cells wraps into bands of `per` tokens, each
    // headed by its token range, rather than running off the view.
    // (cw * T <= room: all of it fits, however room / cw rounds.)
    const int per = cw * T <= room + 0.5f ? T : std::clamp((int)(room / cw), 1, T), bands = (T + per - 1) / per;
    const float head = bands > 1 ? lh : 0.f, bandH = head + L * ch + (bands > 1 ? lh * 0.5f : 0.f);
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (int b = 0; b < bands; b++) {
        const int t0 = b * per, t1 = std::min(T, t0 + per);
        const ImVec2 at(o.x, o.y + b * bandH + head);
        if (bands > 1) {
            char r[48];
            std::snprintf(r, sizeof r, "tokens %d-%d", t0, t1 - 1);
            ImGui::GetWindowDrawList()->AddText(ImVec2(o.x + label, o.y + b * bandH), look().dim, r);
        }
        drawMapBand(p, t0, t1, at, label, cw, ch, layer, out);
    }
    const float w = label + std::min(T, per) * cw, h = bands * bandH;
    markTarget(out, "experts.map", 0, o, ImVec2(o.x + w, o.y + h));
    ImGui::Dummy(ImVec2(w, h + 4));
}

void drawLoadMap(const rl::Specialization& s, int& layer, ViewOutbox& out) {
    const int L = (int)s.layers.size();
    int E = 0;
    for (const auto& S : s.layers) E = std::max(E, (int)S.by_domain.size());
    if (L == 0 || E == 0) return;
    const float lh = ImGui::GetTextLineHeight(), label = ImGui::CalcTextSize("L00 ").x, cvw = ImGui::CalcTextSize(" CV 0.00").x;
    const float cw = cellWidth(E, ImGui::GetContentRegionAvail().x - label - cvw, 6, 24), ch = std::clamp(lh * 0.8f, 9.f, 16.f);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (int l = 0; l < L; l++) {
        const auto& S = s.layers[l];
        const float y = o.y + l * ch;
        std::vector<double> load(E, 0);
        double tot = 0;
        for (int e = 0; e < (int)S.by_domain.size(); e++)
            for (double v : S.by_domain[e]) load[e] += v, tot += v;
        char b[32];
        std::snprintf(b, sizeof b, "L%d", l);
        if (tot <= 0) {  // a dense layer
            dl->AddText(ImGui::GetFont(), ch * 1.05f, ImVec2(o.x, y - 1), look().dim, b);
            dl->AddText(ImGui::GetFont(), ch * 1.05f, ImVec2(o.x + label, y - 1), look().dim, "dense layer");
            continue;
        }
        if (l == layer || l % 4 == 0 || L <= 12)
            dl->AddText(ImGui::GetFont(), ch * 1.05f, ImVec2(o.x, y - 1), l == layer ? look().strong : look().dim, b);
        double mean = tot / E, var = 0;
        for (double v : load) var += (v - mean) * (v - mean);
        const double cv = std::sqrt(var / E) / mean;
        for (int e = 0; e < E; e++) {
            const double share = load[e] / tot;
            const ImVec2 a(o.x + label + e * cw, y), c(a.x + cw - 1, y + ch - 1);
            // share x E on a log scale from 1/8 to 8 times the fair share: the middle of the ramp is fair.
            const float v = share <= 0 ? 0.f : (float)std::clamp(0.5 + std::log2(share * E) / 6.0, 0.0, 1.0);
            dl->AddRectFilled(a, c, share <= 0 ? look().off : ramp(v));
            if (ImGui::IsMouseHoveringRect(a, c)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "layer %d, expert %d: %.1f%% of the top-1 choices (fair share 1/E = %.1f%%), %.0f of %.0f tokens",
                              l, e, 100 * share, 100.0 / E, load[e], tot);
                tooltip(out, tip);
                if (ImGui::IsMouseClicked(0)) layer = l;
            }
        }
        std::snprintf(b, sizeof b, " CV %.2f", cv);
        dl->AddText(ImGui::GetFont(), ch * 1.05f, ImVec2(o.x + label + E * cw, y - 1), look().dim, b);
        if (l == layer) dl->AddRect(ImVec2(o.x + label - 1, y - 1), ImVec2(o.x + label + E * cw, y + ch), look().strong, 0, 0, 1.5f);
    }
    markTarget(out, "experts.loadmap", 0, o, ImVec2(o.x + label + E * cw, o.y + L * ch));
    ImGui::Dummy(ImVec2(label + E * cw + cvw, L * ch + 4));
    colourLegend("share of top-1 choices x E", "1/8 fair", "fair (1/E)", "8x fair", 300, "none");
}

void drawExpertColumns(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m,
                       const std::vector<std::string>& classNames, const char* unit) {
    ImGui::TextUnformatted(title);
    const int E = (int)m.size(), C = (int)classNames.size();
    if (E == 0 || C == 0) return;
    float label = 0;
    for (const auto& n : classNames) label = std::max(label, ImGui::CalcTextSize(n.c_str()).x + 8);
    const float lh = ImGui::GetTextLineHeight();
    const float cw = cellWidth(E, ImGui::GetContentRegionAvail().x - label, 6, 28), ch = lh + 2;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    // Expert numbers over the columns, every 8th (and each one when they fit).
    const float numW = ImGui::CalcTextSize("63").x + 2;
    for (int e = 0; e < E; e++)
        if (cw >= numW || e % 8 == 0) {
            char b[8];
            std::snprintf(b, sizeof b, "%d", e);
            dl->AddText(ImVec2(o.x + label + e * cw, o.y), viewColour(e), b);
        }
    for (int c = 0; c < C; c++) {
        const float y = o.y + lh + 2 + c * ch;
        dl->AddText(ImVec2(o.x, y + 1), look().dim, classNames[c].c_str());
        for (int e = 0; e < E; e++) {
            double tot = 0;
            for (double v : m[e]) tot += v;
            const double share = tot > 0 && c < (int)m[e].size() ? m[e][c] / tot : 0;
            const ImVec2 a(o.x + label + e * cw, y), b(a.x + cw - 1, y + ch - 1);
            dl->AddRectFilled(a, b, tot > 0 ? ramp((float)share) : look().off);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "e%d x %s: %.0f, %.1f%% of this expert's %s", e, classNames[c].c_str(),
                              c < (int)m[e].size() ? m[e][c] : 0.0, 100 * share, unit);
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(label + E * cw, lh + 2 + C * ch + 4));
    colourLegend("share of the expert's tokens", "0", "50%", "100%", 150, "no tokens");
}

namespace {

// Rows = domains, columns = experts: each domain's share of its (token, expert) choices per expert,
// coloured against the fair share 1/E (middle of the ramp; twice it or more, the top).
void drawDomainRows(ViewOutbox& out, const std::vector<std::vector<double>>& byDomain, const std::vector<std::string>& names) {
    const int E = (int)byDomain.size(), D = (int)names.size();
    float label = 0;
    for (const auto& n : names) label = std::max(label, ImGui::CalcTextSize(n.c_str()).x + 8);
    const float lh = ImGui::GetTextLineHeight();
    const float cw = cellWidth(E, ImGui::GetContentRegionAvail().x - label, 6, 28), ch = lh + 2;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (int e = 0; e < E; e += (cw >= ImGui::CalcTextSize("63").x + 2 ? 1 : 8))
        dl->AddText(ImVec2(o.x + label + e * cw, o.y), viewColour(e), std::to_string(e).c_str());
    for (int d = 0; d < D; d++) {
        double tot = 0;
        for (int e = 0; e < E; e++) tot += byDomain[e][d];
        const float y = o.y + lh + 2 + d * ch;
        dl->AddText(ImVec2(o.x, y + 1), look().dim, names[d].c_str());
        for (int e = 0; e < E; e++) {
            const double share = tot > 0 ? byDomain[e][d] / tot : 0;
            const ImVec2 a(o.x + label + e * cw, y), b(a.x + cw - 1, y + ch - 1);
            dl->AddRectFilled(a, b, tot > 0 ? ramp((float)std::min(1.0, share * E / 2)) : look().off);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "%s -> e%d: %.1f%% of the domain's choices (fair share %.1f%%), %.0f choices",
                              names[d].c_str(), e, 100 * share, 100.0 / E, byDomain[e][d]);
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(label + E * cw, lh + 2 + D * ch + 4));
    colourLegend("share of the domain's choices", "0", "1/E", ">= 2/E", 150, "no tokens");
}

// next (E, E): a token's first expert here (row) against its first expert in the next sparse layer
// (column), each row normalised.
void drawTransitions(ViewOutbox& out, const rl::LayerAnalysis& L) {
    const int E = (int)L.next_counts.size();
    const float cell = std::clamp(260.f / std::max(1, E), 3.f, 14.f);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (int i = 0; i < E; i++) {
        double tot = 0;
        for (double v : L.next_counts[i]) tot += v;
        for (int j = 0; j < E; j++) {
            const double share = tot > 0 ? L.next_counts[i][j] / tot : 0;
            const ImVec2 a(o.x + j * cell, o.y + i * cell), b(a.x + cell, a.y + cell);
            dl->AddRectFilled(a, b, tot > 0 ? ramp((float)std::min(1.0, share * E / 4)) : look().off);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[160];
                std::snprintf(tip, sizeof tip, "first expert e%d in layer %d -> e%d in layer %d: %.1f%% of its tokens (%.0f)", i,
                              L.layer, j, L.next_layer, 100 * share, L.next_counts[i][j]);
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(E * cell, E * cell + 4));
    colourLegend("share of the row's tokens", "0", "2/E", ">= 4/E", 150, "no tokens");
}

}  // namespace

void drawDomainAnalysis(const rl::Analysis& a, int& layer, ViewOutbox& out) {
    if (a.layers.empty()) return;
    int pick = 0;  // layer is a model layer; a.layers holds the sparse ones
    for (size_t i = 0; i < a.layers.size(); i++)
        if (a.layers[i].layer <= layer) pick = (int)i;
    const rl::LayerAnalysis& L = a.layers[pick];
    double choices = 0;  // k per token, as routed (an intervention may have changed it)
    for (const auto& row : L.by_domain)
        for (double v : row) choices += v;
    const double topK = a.tokens > 0 ? choices / a.tokens : 0;
    ImGui::TextWrapped("Your domains, layer %d: %lld tokens, every (token, expert) choice (%.3g a token). NMI(first expert; domain) "
                       "%.3f against %.3f for a random router of the same load; vocabulary specialisation %.2f (about k/E = %.2f "
                       "when routing ignores the token, 1 when a token always goes to the same experts).",
                       L.layer, (long long)a.tokens, topK, L.nmi_domain, L.nmi_domain_random_router, L.vocab_specialisation,
                       L.by_domain.empty() ? 0.0 : topK / L.by_domain.size());
    drawDomainRows(out, L.by_domain, a.domains);
    drawExpertColumns(out, "each expert's choices split over the domains", L.by_domain, a.domains, "choices");
    if (L.next_layer >= 0) {
        ImGui::Text("first expert here (rows) -> first expert in layer %d (columns): NMI %.3f", L.next_layer, L.nmi_next);
        ImGui::BeginGroup();
        drawTransitions(out, L);
        ImGui::EndGroup();
        ImGui::SameLine(0, 24);
    }
    ImGui::BeginGroup();
    ImGui::TextUnformatted("top tokens per expert (share of the token's occurrences)");
    ImGui::BeginChild("topTokens", ImVec2(0, 300), false);
    for (size_t e = 0; e < L.top_tokens.size(); e++) {
        std::string line;
        for (const auto& t : L.top_tokens[e]) {
            char b[80];
            std::snprintf(b, sizeof b, "'%s' %.0f%%  ", shortText(t.text, 14).c_str(), 100 * t.share);
            line += b;
        }
        ImGui::TextColored(ImGui::ColorConvertU32ToFloat4(viewColour((int)e)), "e%zu", e);
        ImGui::SameLine();
        ImGui::TextWrapped("%s", line.c_str());
    }
    ImGui::EndChild();
    ImGui::EndGroup();
}
