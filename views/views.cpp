#include "views.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgui.h"
#include "train/corpus.h"

namespace {

// Perceptual-ish ramp from dark blue (0) through teal to yellow (1).
ImU32 ramp(float v) {
    v = std::clamp(v, 0.f, 1.f);
    const float r = std::clamp(1.5f * v - 0.25f, 0.f, 1.f), g = std::clamp(0.15f + 0.85f * v, 0.f, 1.f),
                b = std::clamp(0.55f - 0.45f * v, 0.f, 1.f);
    return IM_COL32((int)(r * 255), (int)(g * 255), (int)(b * 255), 255);
}

// Ctrl+click turns a slider into a text field whose value 1.86 does not clamp unless asked to:
// a typed layer 99 would index past the layers.
constexpr ImGuiSliderFlags k_clamp = ImGuiSliderFlags_AlwaysClamp;

const ImU32 k_text = IM_COL32(225, 225, 225, 255), k_dim = IM_COL32(130, 130, 140, 255), k_off = IM_COL32(25, 25, 30, 255);

ImU32 withAlpha(ImU32 c, int a) { return (c & 0x00ffffffu) | ((ImU32)a << 24); }

// A tooltip that tests can read back.
void tooltip(ViewData& d, const std::string& s) {
    ImGui::SetTooltip("%s", s.c_str());
    d.hoverText = s;
}

// "h3", "e12": built with snprintf (g++ 12 warns falsely on "h" + std::to_string).
std::string numbered(const char* prefix, int i) {
    char b[24];
    std::snprintf(b, sizeof b, "%s%d", prefix, i);
    return b;
}

std::string shortText(const std::string& s, size_t n = 12) { return s.size() > n ? s.substr(0, n - 1) + "~" : s; }

// Layer picker shared by the views that show one layer at a time.
void layerPicker(ViewData& d, int n_layers) {
    if (n_layers <= 0) return;
    d.layer = std::clamp(d.layer, 0, n_layers - 1);
    ImGui::SetNextItemWidth(160);
    ImGui::SliderInt("layer", &d.layer, 0, n_layers - 1, "%d", k_clamp);
    d.layer = std::clamp(d.layer, 0, n_layers - 1);
}

// Experts a token (row) reached, or empty when capacity dropped it.
const std::vector<int>* rowExperts(const rl::ProbeLayer& L, size_t row) { return row < L.experts.size() ? &L.experts[row] : nullptr; }

// A token as a coloured chip that wraps with the text flow; returns true when hovered.
// outline: a red frame (dropped tokens); underline: marks prompt tokens.
bool tokenChip(const std::string& text, ImU32 bg, bool outline, bool underline, bool more) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 sz = ImGui::CalcTextSize(text.c_str());
    const ImVec2 p0 = ImGui::GetCursorScreenPos(), p1(p0.x + sz.x + 6, p0.y + sz.y + 2);
    dl->AddRectFilled(p0, p1, bg, 3);
    if (outline) dl->AddRect(p0, p1, IM_COL32(255, 60, 60, 255), 3, 0, 2);
    if (underline) dl->AddLine(ImVec2(p0.x, p1.y + 1), ImVec2(p1.x, p1.y + 1), IM_COL32(255, 255, 255, 200), 2);
    ImGui::SetCursorScreenPos(ImVec2(p0.x + 3, p0.y + 1));
    ImGui::TextUnformatted(text.c_str());
    const bool hovered = ImGui::IsMouseHoveringRect(p0, p1);
    ImGui::SetCursorScreenPos(p0);
    ImGui::Dummy(ImVec2(sz.x + 9, sz.y + 4));
    // Wrap: stay on this line while the next chip probably fits.
    if (more && ImGui::GetItemRectMax().x - ImGui::GetWindowPos().x < ImGui::GetWindowContentRegionMax().x - 90) ImGui::SameLine(0, 0);
    return hovered;
}

// Draws a matrix [rows][cols] as a heatmap, each row normalised to its total; hover shows the count.
void drawMatrix(ViewData& d, const char* title, const std::vector<std::vector<double>>& m, const std::vector<std::string>& colNames,
                const char* rowPrefix) {
    ImGui::BeginGroup();
    ImGui::TextUnformatted(title);
    if (m.empty()) {
        ImGui::TextDisabled("(no data yet)");
        ImGui::EndGroup();
        return;
    }
    const float cw = 72, ch = 16, lw = 34;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (size_t c = 0; c < colNames.size(); c++)
        dl->AddText(ImVec2(o.x + lw + c * cw + 2, o.y), k_dim, shortText(colNames[c], 9).c_str());
    for (size_t r = 0; r < m.size(); r++) {
        double tot = 0;
        for (double v : m[r]) tot += v;
        const float y = o.y + 16 + r * ch;
        dl->AddText(ImVec2(o.x, y), viewColour((int)r), numbered(rowPrefix, (int)r).c_str());
        for (size_t c = 0; c < m[r].size(); c++) {
            const float share = tot > 0 ? (float)(m[r][c] / tot) : 0.f;
            const ImVec2 a(o.x + lw + c * cw, y), b(a.x + cw - 2, a.y + ch - 2);
            dl->AddRectFilled(a, b, tot > 0 ? ramp(share) : k_off);
            char v[16];
            std::snprintf(v, sizeof v, "%.0f%%", 100 * share);
            dl->AddText(ImVec2(a.x + 4, a.y), share > 0.55f ? IM_COL32(20, 20, 20, 255) : k_text, v);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[160];
                std::snprintf(tip, sizeof tip, "%s%zu x %s: %.0f tokens, %.1f%% of this expert's top-1 tokens", rowPrefix, r,
                              colNames[c].c_str(), m[r][c], 100 * share);
                tooltip(d, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(lw + colNames.size() * cw, 18 + m.size() * ch));
    ImGui::EndGroup();
}

}  // namespace

unsigned viewColour(int e) {
    static const ImU32 palette[] = {IM_COL32(230, 85, 80, 255),  IM_COL32(80, 160, 230, 255), IM_COL32(120, 200, 90, 255),
                                    IM_COL32(230, 180, 60, 255), IM_COL32(170, 110, 220, 255), IM_COL32(60, 200, 190, 255),
                                    IM_COL32(230, 120, 190, 255), IM_COL32(160, 160, 160, 255)};
    return palette[((e % 8) + 8) % 8];
}

unsigned overlayColour(int i) {
    static const ImU32 palette[] = {IM_COL32(255, 110, 255, 255), IM_COL32(255, 230, 90, 255), IM_COL32(110, 255, 200, 255),
                                    IM_COL32(255, 150, 100, 255), IM_COL32(190, 170, 255, 255), IM_COL32(200, 255, 110, 255)};
    return palette[((i % 6) + 6) % 6];
}

// ---------------------------------------------------------------------------------------------- heads
void drawHeadsView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.scrub >= 0 && d.scrub < (int)d.history.size() ? d.history[d.scrub] : d.probe;
    if (p.layers.empty() || p.layers[0].head_gates.empty()) {
        ImGui::TextWrapped("Heads: this model has no head selection (all heads are always on). "
                           "Pick a MoH preset such as seed-moh to see which heads each token switches on.");
        return;
    }
    if (!d.history.empty()) {
        int s = d.scrub < 0 ? (int)d.history.size() - 1 : d.scrub;
        ImGui::SetNextItemWidth(300);
        if (ImGui::SliderInt("snapshot", &s, 0, (int)d.history.size() - 1, "", k_clamp)) d.scrub = s == (int)d.history.size() - 1 ? -1 : s;
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
                    tooltip(d, tip);
                }
            }
        }
        ImGui::Dummy(ImVec2(labelW + H * cell + 8, 16 + T * cell));
        ImGui::EndGroup();
    }
}

// -------------------------------------------------------------------------------------------- experts
void drawExpertsView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.probe;
    if (p.n_experts == 0) {
        ImGui::TextWrapped("Experts: this model has a dense FFN. Pick an MoE preset such as moe-top2-8.");
        return;
    }
    ImGui::TextWrapped("Each token of the probe text in the colour of its first expert (hover for all experts and weights); "
                       "red-framed tokens were dropped (over capacity: they skip the FFN). Step %d.", p.step);
    for (size_t l = 0; l < p.layers.size(); l++) {
        ImGui::Text("layer %zu:", l);
        ImGui::SameLine();
        const auto& L = p.layers[l];
        for (size_t t = 0; t < p.tokens.size(); t++) {
            const size_t r = t * p.mh_heads;
            const std::vector<int>* ex = rowExperts(L, r);
            const bool dropped = ex && ex->empty();
            const int e = ex && !ex->empty() ? (*ex)[0] : -1;
            const ImU32 bg = e < 0 ? IM_COL32(45, 45, 50, 255) : withAlpha(viewColour(e), 170);
            if (tokenChip(p.tokens[t].text, bg, dropped, false, t + 1 < p.tokens.size()) && ex) {
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
                }
                tooltip(d, tip);
            }
        }
    }
    ImGui::Separator();
    if (!d.stats.empty()) {
        const auto& s = d.stats.back();
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
                ImGui::ProgressBar(L.expert_load[e] * L.n_experts / 2.f, ImVec2(bw, 14), b);  // full bar = twice the fair share
                ImGui::PopStyleColor();
                if (e + 1 < L.n_experts && e % perRow != perRow - 1) ImGui::SameLine();
            }
        }
        ImGui::Separator();
    }
    if (!d.hasSpec || d.spec.layers.empty()) {
        ImGui::TextDisabled("Specialization: measured on validation text every 100 steps and at the end of the run.");
        return;
    }
    layerPicker(d, (int)d.spec.layers.size());
    const rl::LayerSpecialization& S = d.spec.layers[d.layer];
    ImGui::SameLine();
    ImGui::Text("  %d validation tokens, top-1 expert.  NMI(expert; domain) %.3f   NMI(expert; lexical class) %.3f", d.spec.tokens,
                S.nmi_domain, S.nmi_lex);
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
    drawMatrix(d, "expert x domain (share of the expert's tokens)", byDomain, domains, "e");
    ImGui::SameLine(0, 30);
    drawMatrix(d, "expert x lexical class", S.by_lex, lex, "e");
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

// -------------------------------------------------------------------------------------------- routing
namespace {

// One column of labelled bars, top to bottom; returns each bar's right-middle point (for the flow lines).
// grow in [0, 1]: how far the bars have grown (animation).
std::vector<ImVec2> barColumn(ViewData& d, ImVec2 o, float w, const std::vector<float>& v, const std::vector<std::string>& labels,
                              const std::vector<bool>& on, float vmax, const std::vector<ImU32>& colours, const char* what,
                              float grow = 1.f) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    std::vector<ImVec2> ends;
    const float h = 18;
    for (size_t i = 0; i < v.size(); i++) {
        const float y = o.y + i * (h + 3);
        dl->AddText(ImVec2(o.x, y + 1), on[i] ? k_text : k_dim, labels[i].c_str());
        const ImVec2 a(o.x + 34, y), b(o.x + 34 + w, y + h);
        dl->AddRectFilled(a, b, IM_COL32(40, 40, 48, 255));
        const float bw = vmax > 0 ? grow * w * std::clamp(v[i] / vmax, 0.f, 1.f) : 0;
        dl->AddRectFilled(a, ImVec2(a.x + bw, b.y), on[i] ? colours[i] : withAlpha(colours[i], 70));
        char t[24];
        std::snprintf(t, sizeof t, "%.3f", v[i]);
        dl->AddText(ImVec2(a.x + 4, y + 1), on[i] ? IM_COL32(255, 255, 255, 255) : k_dim, t);
        if (ImGui::IsMouseHoveringRect(ImVec2(o.x, y), b)) {
            char tip[120];
            std::snprintf(tip, sizeof tip, "%s %s: %.4f%s", what, labels[i].c_str(), v[i], on[i] ? " (selected)" : " (not selected)");
            tooltip(d, tip);
        }
        ends.push_back(ImVec2(b.x, (a.y + b.y) / 2));
    }
    return ends;
}

// A flow line whose thickness is the weight it carries; while progress < 1 it fades in and a dot
// travels along it (the animation replays the routing when the token or layer changes).
void flow(ImVec2 a, ImVec2 b, float weight, ImU32 c, float progress = 1.f) {
    if (progress <= 0) return;
    const float mx = (a.x + b.x) / 2;
    const ImVec2 c1(mx, a.y), c2(mx, b.y);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    dl->AddBezierCubic(a, c1, c2, b, withAlpha(c, (int)(200 * std::min(1.f, progress))), 1.f + 5.f * std::clamp(weight, 0.f, 1.f));
    if (progress < 1) {
        const float t = progress, u = 1 - t;  // cubic Bezier point at t
        const ImVec2 p(u * u * u * a.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t * t * t * b.x,
                       u * u * u * a.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t * t * t * b.y);
        dl->AddCircleFilled(p, 4.f, IM_COL32(255, 255, 255, 230));
    }
}

// Animation phase of the routing diagram: 0 -> 1 over 0.9 s after the token or layer changed.
float routingPhase(ViewData& d) {
    if (d.token != d.animToken || d.layer != d.animLayer) {
        d.animToken = d.token, d.animLayer = d.layer;
        d.animStart = ImGui::GetTime();
    }
    const float ph = std::clamp((float)(ImGui::GetTime() - d.animStart) / 0.9f, 0.f, 1.f);
    d.animating = ph < 1.f;
    return ph;
}
// Stage k of 3 (bars, flows to the middle column, flows to the sum) as 0..1.
float stage(float phase, int k) { return std::clamp(phase * 3.f - k, 0.f, 1.f); }

}  // namespace

void drawRoutingView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.probe;
    if (p.layers.empty()) {
        ImGui::Text("Routing: waiting for the first probe snapshot...");
        return;
    }
    const bool heads = !p.layers[0].head_probs.empty(), experts = p.n_experts > 0;
    if (!heads && !experts) {
        ImGui::TextWrapped("Routing diagram: this model routes nothing (all heads on, dense FFN). Pick seed-moh, moe-top2-8 or "
                           "moh-moe to see how one token's router picks heads and experts.");
        return;
    }
    const int T = (int)p.tokens.size();
    if (d.token < 0 || d.token >= T) d.token = T - 1;
    ImGui::TextWrapped("Point at a token of the probe text: the diagram follows that token through one layer's routers, on "
                       "the model's real numbers (step %d).", p.step);
    for (int t = 0; t < T; t++) {
        ImGui::PushID(t);
        if (t == d.token) ImGui::PushStyleColor(ImGuiCol_Button, IM_COL32(200, 140, 40, 255));
        if (ImGui::SmallButton(p.tokens[t].text.c_str()) || ImGui::IsItemHovered()) d.token = t;  // the token under the cursor
        if (t == d.token) ImGui::PopStyleColor();
        ImGui::PopID();
        if (t + 1 < T && ImGui::GetItemRectMax().x - ImGui::GetWindowPos().x < ImGui::GetWindowWidth() - 100) ImGui::SameLine();
    }
    layerPicker(d, (int)p.layers.size());
    const rl::ProbeLayer& L = p.layers[d.layer];
    const int t = d.token;
    const float ph = routingPhase(d);
    ImGui::Separator();
    const float colW = 130, gap = 90;  // bar width, space for the flow lines
    if (heads) {
        const int S = p.n_shared_heads, H = p.n_heads, R = H - S;
        ImGui::TextWrapped("Heads (MoH, layer %d, token '%s'): routed-head router softmax -> top-%d -> gates -> "
                           "attention output = sum over heads of gate x head output",
                           d.layer, p.tokens[t].text.c_str(), p.head_top_k);
        const ImVec2 o = ImGui::GetCursorScreenPos();
        std::vector<float> probs = L.head_probs[t], gates = L.head_gates[t];
        std::vector<std::string> pl, gl;
        std::vector<bool> pon, gon;
        std::vector<ImU32> pc, gc;
        for (int i = 0; i < R; i++) {
            pl.push_back(numbered("h", S + i));
            pon.push_back(gates[S + i] != 0.f);
            pc.push_back(IM_COL32(80, 160, 230, 255));
        }
        float gmax = 1e-6f;
        for (int h = 0; h < H; h++) {
            gl.push_back(numbered(h < S ? "S" : "h", h));
            gon.push_back(gates[h] != 0.f);
            gc.push_back(h < S ? IM_COL32(230, 180, 60, 255) : IM_COL32(120, 200, 90, 255));
            gmax = std::max(gmax, gates[h]);
        }
        ImDrawList* dl = ImGui::GetWindowDrawList();
        dl->AddText(o, k_dim, "router softmax (routed heads)");
        dl->AddText(ImVec2(o.x + colW + gap, o.y), k_dim, "gate of every head");
        dl->AddText(ImVec2(o.x + 2 * colW + 2 * gap + 20, o.y), k_dim, "weighted sum");
        const float top = o.y + 20;
        // Routed probabilities sit level with their gates (shared heads take the top S rows).
        auto pe = barColumn(d, ImVec2(o.x, top + S * 21), colW, probs, pl, pon, 1.f, pc, "router p of head", stage(ph, 0));
        auto ge = barColumn(d, ImVec2(o.x + colW + gap, top), colW, gates, gl, gon, gmax, gc, "gate of head", stage(ph, 1));
        for (int i = 0; i < R; i++)
            if (pon[i]) flow(pe[i], ImVec2(ge[S + i].x - colW - 34, ge[S + i].y), probs[i], IM_COL32(120, 200, 90, 255), stage(ph, 1));
        const ImVec2 sum(o.x + 2 * colW + 2 * gap + 60, top + H * 21 / 2.f);
        for (int h = 0; h < H; h++)
            if (gon[h])
                flow(ge[h], ImVec2(sum.x - 24, sum.y), gates[h] / gmax, h < S ? IM_COL32(230, 180, 60, 255) : IM_COL32(120, 200, 90, 255),
                     stage(ph, 2));
        dl->AddCircleFilled(sum, 22, IM_COL32(60, 60, 80, 255));
        dl->AddText(ImVec2(sum.x - 5, sum.y - 8), k_text, "+");
        char b[200];
        if (S > 0)
            std::snprintf(b, sizeof b, "alpha: shared %.3f  routed %.3f\n%s scaling:\n shared g = %s\n routed g = %s", L.head_type[t][0],
                          L.head_type[t][1], p.head_paper_scaling ? "paper" : "official",
                          p.head_paper_scaling ? "a1*p" : "2*a1*S*p", p.head_paper_scaling ? "a2*p" : "2*a2*K*p/sum(top-K p)");
        else
            std::snprintf(b, sizeof b, "no shared heads: routed g = K*p/sum(top-K p)");
        dl->AddText(ImVec2(sum.x - 40, sum.y + 30), k_text, b);
        ImGui::Dummy(ImVec2(2 * colW + 2 * gap + 300, std::max(24 + H * 21.f, sum.y + 70 - o.y)));
        ImGui::Separator();
    }
    if (experts) {
        const int E = p.n_experts;
        if (p.mh_heads > 1) {
            d.subToken = std::clamp(d.subToken, 0, p.mh_heads - 1);
            ImGui::SetNextItemWidth(160);
            ImGui::SliderInt("sub-token (MH-MoE)", &d.subToken, 0, p.mh_heads - 1, "%d", k_clamp);
            d.subToken = std::clamp(d.subToken, 0, p.mh_heads - 1);
        }
        const size_t r = (size_t)t * p.mh_heads + (p.mh_heads > 1 ? d.subToken : 0);
        const std::vector<int>& ex = L.experts[r];
        const std::vector<float>& w = L.expert_weights[r];
        std::string rule = p.expert_kind == "expert_choice" ? "each expert picks its top tokens"
                           : p.expert_kind == "top1_capacity" ? "top-1, within capacity"
                                                              : "top-" + std::to_string(p.expert_top_k);
        ImGui::TextWrapped("Experts (%s, layer %d, token '%s'): router softmax -> %s -> combine weights -> "
                           "FFN output = sum of weight x expert(x)%s",
                           p.expert_kind.c_str(), d.layer, p.tokens[t].text.c_str(), rule.c_str(), p.n_shared_experts ? " + shared experts" : "");
        const ImVec2 o = ImGui::GetCursorScreenPos();
        std::vector<float> probs = L.expert_probs[r], cw(E, 0.f);
        std::vector<std::string> lab;
        std::vector<bool> on(E, false);
        std::vector<ImU32> col;
        for (size_t k = 0; k < ex.size(); k++) cw[ex[k]] = w[k], on[ex[k]] = true;
        for (int e = 0; e < E; e++) lab.push_back(numbered("e", e)), col.push_back(viewColour(e));
        ImDrawList* dl = ImGui::GetWindowDrawList();
        dl->AddText(o, k_dim, "router softmax");
        dl->AddText(ImVec2(o.x + colW + gap, o.y), k_dim, "combine weight");
        dl->AddText(ImVec2(o.x + 2 * colW + 2 * gap + 20, o.y), k_dim, "weighted sum");
        const float top = o.y + 20;
        auto pe = barColumn(d, ImVec2(o.x, top), colW, probs, lab, on, 1.f, col, "router p of expert", stage(ph, 0));
        auto we = barColumn(d, ImVec2(o.x + colW + gap, top), colW, cw, lab, on, 1.f, col, "combine weight of expert", stage(ph, 1));
        const ImVec2 sum(o.x + 2 * colW + 2 * gap + 60, top + E * 21 / 2.f);
        for (int e = 0; e < E; e++)
            if (on[e]) {
                flow(pe[e], ImVec2(we[e].x - colW - 34, we[e].y), probs[e], viewColour(e), stage(ph, 1));
                flow(we[e], ImVec2(sum.x - 24, sum.y), cw[e], viewColour(e), stage(ph, 2));
            }
        dl->AddCircleFilled(sum, 22, IM_COL32(60, 60, 80, 255));
        dl->AddText(ImVec2(sum.x - 5, sum.y - 8), k_text, "+");
        std::string note = ex.empty() ? "dropped: no expert had room, the token skips this FFN (residual only)"
                                      : std::to_string(ex.size()) + " expert(s) run for this token";
        if (p.n_shared_experts) note += "\n+ " + std::to_string(p.n_shared_experts) + " shared expert(s), weight 1";
        dl->AddText(ImVec2(sum.x - 40, sum.y + 30), ex.empty() ? IM_COL32(255, 90, 90, 255) : k_text, note.c_str());
        ImGui::Dummy(ImVec2(2 * colW + 2 * gap + 300, std::max(24 + E * 21.f, sum.y + 70 - o.y)));
    }
}

// ------------------------------------------------------------------------------------------ attention
void drawAttentionView(ViewData& d) {
    const rl::ProbeSnapshot& p = d.probe;
    if (p.layers.empty() || p.layers[0].attention.empty()) {
        ImGui::Text("Attention: waiting for the first probe snapshot...");
        return;
    }
    layerPicker(d, (int)p.layers.size());
    const rl::ProbeLayer& L = p.layers[d.layer];
    const int H = (int)L.attention.size(), T = (int)p.tokens.size();
    d.head = std::clamp(d.head, 0, H - 1);
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
        dl->AddText(ImVec2(a.x, o.y), h == d.head ? IM_COL32(255, 200, 80, 255) : k_dim, lab);
        for (int q = 0; q < T; q++)
            for (int k = 0; k <= q; k++) {
                const float v = L.attention[h][(size_t)q * T + k];
                dl->AddRectFilled(ImVec2(a.x + k * c, a.y + q * c), ImVec2(a.x + (k + 1) * c, a.y + (q + 1) * c), ramp(std::sqrt(v / amax)));
            }
        if (h == d.head) dl->AddRect(ImVec2(a.x - 2, a.y - 2), ImVec2(a.x + small + 2, a.y + small + 2), IM_COL32(255, 200, 80, 255));
        if (ImGui::IsMouseHoveringRect(a, ImVec2(a.x + small, a.y + small)) && ImGui::IsMouseClicked(0)) d.head = h;
    }
    ImGui::Dummy(ImVec2(H * (small + 8), small + 24));
    // The enlarged head with token labels.
    const auto& A = L.attention[d.head];
    const float labelW = 100, avail = std::min(ImGui::GetContentRegionAvail().x - labelW - 20, ImGui::GetContentRegionAvail().y - 90);
    const float c = std::clamp(avail / T, 6.f, 24.f);
    o = ImGui::GetCursorScreenPos();
    float amax = 1e-6f;
    for (float v : A) amax = std::max(amax, v);
    for (int q = 0; q < T; q++) {
        const float y = o.y + q * c;
        if (c >= 10) dl->AddText(ImVec2(o.x, y + c / 2 - 7), k_text, shortText(p.tokens[q].text, 11).c_str());
        const bool off = !L.head_gates.empty() && L.head_gates[q][d.head] == 0.f;
        for (int k = 0; k < T; k++) {
            const ImVec2 a(o.x + labelW + k * c, y), b(a.x + c - 1, a.y + c - 1);
            const float v = A[(size_t)q * T + k];
            dl->AddRectFilled(a, b, k > q ? IM_COL32(18, 18, 22, 255) : ramp(std::sqrt(v / amax)));
            if (off && k <= q) dl->AddLine(a, b, IM_COL32(0, 0, 0, 200), 2);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[200];
                std::snprintf(tip, sizeof tip, "layer %d head %d: query '%s' (#%d) -> key '%s' (#%d): weight %.4f%s", d.layer, d.head,
                              p.tokens[q].text.c_str(), q, p.tokens[k].text.c_str(), k, v, off ? "  (head off for this query)" : "");
                tooltip(d, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(labelW + T * c, T * c + 4));
    ImGui::TextDisabled("colour = sqrt(weight / max weight of the head), so weak links stay visible");
}

// --------------------------------------------------------------------------------------------- curves
namespace {

struct Series {
    std::string name;
    ImU32 colour;
    std::vector<float> x, y;
};

std::vector<float> smooth(const std::vector<float>& v, float a) {
    std::vector<float> out(v.size());
    float s = 0, wsum = 0;
    for (size_t i = 0; i < v.size(); i++) {  // bias-corrected EMA (TensorBoard's smoothing)
        s = a * s + (1 - a) * v[i];
        wsum = a * wsum + (1 - a);
        out[i] = wsum > 0 ? s / wsum : v[i];
    }
    return out;
}

// A line plot of several series over steps with axes, legend, log-y and values on hover.
void plot(ViewData& d, const char* title, std::vector<Series> series, float height, bool logY) {
    const float w = ImGui::GetContentRegionAvail().x;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float left = 56, top = 18, bottom = 16;
    const ImVec2 a(o.x + left, o.y + top), b(o.x + w - 10, o.y + height - bottom);
    dl->AddRectFilled(a, b, IM_COL32(22, 22, 28, 255));
    dl->AddText(o, k_text, title);
    float x0 = 1e30f, x1 = -1e30f, y0 = 1e30f, y1 = -1e30f;
    auto ty = [&](float v) { return logY ? std::log10(std::max(v, 1e-6f)) : v; };
    for (const auto& s : series)
        for (size_t i = 0; i < s.x.size(); i++) {
            if (!std::isfinite(s.y[i])) continue;
            x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
            y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
        }
    if (x0 > x1) {
        ImGui::Dummy(ImVec2(w, height));
        return;
    }
    if (!logY) y0 = std::min(y0, 0.f);
    if (y1 - y0 < 1e-6f) y1 = y0 + 1;
    if (x1 - x0 < 1) x1 = x0 + 1;
    auto px = [&](float x) { return a.x + (b.x - a.x) * (x - x0) / (x1 - x0); };
    auto py = [&](float y) { return b.y - (b.y - a.y) * (ty(y) - y0) / (y1 - y0); };
    for (int k = 0; k <= 4; k++) {  // y grid
        const float yv = y0 + (y1 - y0) * k / 4, yy = b.y - (b.y - a.y) * k / 4;
        dl->AddLine(ImVec2(a.x, yy), ImVec2(b.x, yy), IM_COL32(60, 60, 70, 255));
        char lab[24];
        std::snprintf(lab, sizeof lab, "%.3g", logY ? std::pow(10.f, yv) : yv);
        dl->AddText(ImVec2(o.x, yy - 7), k_dim, lab);
    }
    char xl[48];
    std::snprintf(xl, sizeof xl, "step %.0f .. %.0f", x0, x1);
    dl->AddText(ImVec2(b.x - 110, b.y + 1), k_dim, xl);
    float lx = o.x + 10 + ImGui::CalcTextSize(title).x + 20;
    for (const auto& s : series) {  // legend
        dl->AddRectFilled(ImVec2(lx, o.y + 4), ImVec2(lx + 10, o.y + 14), s.colour);
        dl->AddText(ImVec2(lx + 14, o.y), k_text, s.name.c_str());
        lx += 30 + ImGui::CalcTextSize(s.name.c_str()).x;
    }
    dl->PushClipRect(a, b, true);
    for (const auto& s : series) {
        std::vector<ImVec2> pts;
        const size_t stride = std::max<size_t>(1, s.x.size() / (size_t)std::max(1.f, b.x - a.x));
        for (size_t i = 0; i < s.x.size(); i += stride)
            if (std::isfinite(s.y[i])) pts.push_back(ImVec2(px(s.x[i]), py(s.y[i])));
        if (pts.size() > 1) dl->AddPolyline(pts.data(), (int)pts.size(), s.colour, 0, 1.6f);
    }
    dl->PopClipRect();
    if (ImGui::IsMouseHoveringRect(a, b)) {
        const float mx = ImGui::GetIO().MousePos.x, step = x0 + (mx - a.x) / (b.x - a.x) * (x1 - x0);
        dl->AddLine(ImVec2(mx, a.y), ImVec2(mx, b.y), IM_COL32(255, 255, 255, 90));
        char head[48];
        std::snprintf(head, sizeof head, "%s at step %.0f", title, step);
        std::string tip = head;
        for (const auto& s : series) {
            if (s.x.empty()) continue;
            const size_t i = std::min<size_t>(std::lower_bound(s.x.begin(), s.x.end(), step) - s.x.begin(), s.x.size() - 1);
            char line[96];
            std::snprintf(line, sizeof line, "\n%s: %.5g (step %.0f)", s.name.c_str(), s.y[i], s.x[i]);
            tip += line;
            dl->AddCircleFilled(ImVec2(px(s.x[i]), py(s.y[i])), 3.5f, s.colour);
        }
        tooltip(d, tip);
    }
    ImGui::Dummy(ImVec2(w, height));
}

Series curveSeries(const std::string& name, ImU32 colour, const std::vector<rl::CurvePoint>& c, int column, float ema) {
    Series s{name, colour, {}, {}};
    for (const auto& p : c) s.x.push_back((float)p.step), s.y.push_back(rl::curve_value(p, column));
    if (ema > 0) s.y = smooth(s.y, ema);
    return s;
}

int column(const char* name) {
    const auto& cols = rl::curve_columns();
    return (int)(std::find(cols.begin(), cols.end(), name) - cols.begin());
}

}  // namespace

void drawCurvesView(ViewData& d) {
    if (d.curve.empty() && d.overlays.empty()) {
        ImGui::Text("Curves: waiting for the first training step...");
        return;
    }
    ImGui::SetNextItemWidth(200);
    ImGui::SliderFloat("EMA smoothing", &d.ema, 0.f, 0.99f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::Checkbox("log y", &d.logY);
    ImGui::SameLine();
    ImGui::TextDisabled("  hover a plot for exact values; tick runs in the Runs dock to overlay them");
    const bool routedHeads = !d.stats.empty() && d.stats.back().n_layers && d.stats.back().layers[0].n_routed_heads;
    const bool routedExperts = !d.stats.empty() && d.stats.back().n_layers && d.stats.back().layers[0].n_experts;
    const float h = std::max(120.f, (ImGui::GetContentRegionAvail().y - 10) / 3 - 6);
    const std::string me = d.runName.empty() ? "this run" : d.runName;
    // 1. Loss and its parts, runs overlaid (each run's loss in its colour).
    std::vector<Series> loss = {curveSeries(me + " loss", IM_COL32(240, 240, 240, 255), d.curve, column("loss"), d.ema),
                                curveSeries("cross-entropy", IM_COL32(80, 160, 230, 255), d.curve, column("ce"), d.ema)};
    for (const auto& r : d.overlays) loss.push_back(curveSeries(r.name, r.colour, r.curve, column("loss"), d.ema));
    plot(d, "loss", loss, h, d.logY);
    // 2. Routing losses and balance.
    std::vector<Series> bal;
    if (routedHeads) bal.push_back(curveSeries("head load CV", IM_COL32(230, 180, 60, 255), d.curve, column("head_cv"), d.ema));
    if (routedExperts) {
        bal.push_back(curveSeries("expert load CV", IM_COL32(230, 85, 80, 255), d.curve, column("load_cv"), d.ema));
        bal.push_back(curveSeries("dropped", IM_COL32(170, 110, 220, 255), d.curve, column("dropped"), d.ema));
        bal.push_back(curveSeries("router entropy", IM_COL32(60, 200, 190, 255), d.curve, column("entropy"), d.ema));
        bal.push_back(curveSeries("aux loss", IM_COL32(120, 200, 90, 255), d.curve, column("moe_aux"), d.ema));
        bal.push_back(curveSeries("z-loss", IM_COL32(160, 160, 160, 255), d.curve, column("zloss"), d.ema));
    }
    if (routedHeads) bal.push_back(curveSeries("MoH balance", IM_COL32(230, 120, 190, 255), d.curve, column("moh_balance"), d.ema));
    for (const auto& r : d.overlays)
        if (routedExperts || routedHeads)
            bal.push_back(curveSeries(r.name + (routedExperts ? " expert CV" : " head CV"), r.colour, r.curve,
                                      column(routedExperts ? "load_cv" : "head_cv"), d.ema));
    if (bal.empty()) bal.push_back(curveSeries("grad norm", IM_COL32(230, 180, 60, 255), d.curve, column("grad_norm"), d.ema));
    plot(d, routedHeads || routedExperts ? "balance (layer means)" : "gradient norm (no routers in this model)", bal, h, d.logY);
    // 3. Per-head or per-expert load of one layer.
    if (!d.stats.empty() && (routedHeads || routedExperts)) {
        const int nl = d.stats.back().n_layers;
        d.layer = std::clamp(d.layer, 0, nl - 1);
        std::vector<Series> load;
        const int n = routedExperts ? d.stats.back().layers[d.layer].n_experts : d.stats.back().layers[d.layer].n_routed_heads;
        for (int i = 0; i < n; i++) {
            Series s{numbered(routedExperts ? "e" : "h", i), viewColour(i), {}, {}};
            for (const auto& st : d.stats) {
                s.x.push_back((float)st.step);
                s.y.push_back(routedExperts ? st.layers[d.layer].expert_load[i] : st.layers[d.layer].head_f[i]);
            }
            if (d.ema > 0) s.y = smooth(s.y, d.ema);
            load.push_back(std::move(s));
        }
        char t[96];
        std::snprintf(t, sizeof t, routedExperts ? "expert load, layer %d (fair share 1/%d)" : "head load f, layer %d (of %d routed)", d.layer, n);
        plot(d, t, load, h - 26, false);
        layerPicker(d, nl);
    }
}

// -------------------------------------------------------------------------------------------- speedup
void drawSpeedupView(ViewData& d) {
    if (!d.hasCost) {
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
    for (const rl::CostSide* side : {&d.cost.forward, &d.cost.decode})
        for (const auto& c : side->components)
            vmax = std::max({vmax, (float)c.speedup_naive(), (float)c.speedup_flops(), (float)c.speedup_measured()});
    const float barW = std::max(200.f, ImGui::GetContentRegionAvail().x * 0.45f);
    for (int s = 0; s < 2; s++) {
        const rl::CostSide& side = s == 0 ? d.cost.forward : d.cost.decode;
        ImGui::Text(s == 0 ? "Forward (B=16, T=%d)" : "KV-cache decode (%d tokens)", d.cost.seq_len);
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
    ImGui::Text("active heads %.0f%%, expert rows %.1f%% of tokens x experts", 100 * d.cost.active_head_fraction,
                100 * d.cost.active_expert_fraction);
    ImGui::TextWrapped("%s", d.cost.explanation.c_str());
}

// ------------------------------------------------------------------------------------------- generate
void drawGenerateView(ViewData& d) {
    ImGui::SetNextItemWidth(std::max(300.f, ImGui::GetContentRegionAvail().x - 320));
    ImGui::InputText("prompt", d.prompt, sizeof d.prompt);
    ImGui::SetNextItemWidth(140);
    ImGui::SliderFloat("temperature", &d.temperature, 0.f, 2.f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(140);
    ImGui::SliderInt("top-k", &d.topK, 0, 100, "%d", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(140);
    ImGui::SliderFloat("top-p", &d.topP, 0.05f, 1.f, "%.2f", k_clamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(140);
    ImGui::SliderInt("max tokens", &d.maxNew, 1, 200, "%d", k_clamp);
    if (ImGui::Button(d.generating ? "generating..." : "Generate") && !d.generating) d.generateRequested = true;
    ImGui::SameLine();
    ImGui::TextDisabled("temperature 0 = greedy; top-k 0 and top-p 1 = off. Runs on the trainer thread between steps.");
    const rl::ProbeSnapshot& g = d.generation;
    const bool canHeads = !g.layers.empty() && !g.layers[0].head_gates.empty(), canExperts = g.n_experts > 0;
    const char* tints[] = {"top expert", "routed-head gate mass"};
    ImGui::SetNextItemWidth(200);
    ImGui::Combo("tint by", &d.tint, tints, 2);
    ImGui::SameLine();
    layerPicker(d, (int)std::max<size_t>(1, g.layers.size()));
    ImGui::Separator();
    if (!d.generationError.empty()) {
        ImGui::PushStyleColor(ImGuiCol_Text, IM_COL32(255, 120, 100, 255));
        ImGui::TextWrapped("%s", d.generationError.c_str());
        ImGui::PopStyleColor();
        return;
    }
    if (g.tokens.empty()) {
        ImGui::TextWrapped("Press Generate: the model continues the prompt; each token is tinted by how it was routed.");
        return;
    }
    const bool byExpert = d.tint == 0 ? canExperts : !canHeads;
    if (d.tint == 0 && !canExperts) ImGui::TextDisabled("(dense FFN: tinting by head gates instead)");
    if (d.tint == 1 && !canHeads) ImGui::TextDisabled("(no head routing: tinting by top expert instead)");
    if (!canExperts && !canHeads) ImGui::TextDisabled("(this model routes nothing: tokens are not tinted)");
    const rl::ProbeLayer& L = g.layers[std::clamp(d.layer, 0, (int)g.layers.size() - 1)];
    for (size_t t = 0; t < g.tokens.size(); t++) {
        const bool prompt = (int)t < d.generationPromptTokens;
        ImU32 bg = IM_COL32(50, 50, 58, 255);
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
        if (tokenChip(g.tokens[t].text, bg, dropped, prompt, t + 1 < g.tokens.size())) tooltip(d, tip);
    }
    ImGui::Spacing();
    ImGui::TextDisabled("underlined = prompt; red frame = dropped by capacity. Routing shown for the last %d tokens (the model's context).",
                        (int)g.tokens.size());
}
