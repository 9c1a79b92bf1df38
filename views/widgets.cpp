#include "widgets.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

ImU32 ramp(float v) {
    v = std::clamp(v, 0.f, 1.f);
    const float r = std::clamp(1.5f * v - 0.25f, 0.f, 1.f), g = std::clamp(0.15f + 0.85f * v, 0.f, 1.f),
                b = std::clamp(0.55f - 0.45f * v, 0.f, 1.f);
    return IM_COL32((int)(r * 255), (int)(g * 255), (int)(b * 255), 255);
}

void tooltip(ViewOutbox& out, const std::string& s) {
    ImGui::SetTooltip("%s", s.c_str());
    out.hoverText = s;
}

std::string numbered(const char* prefix, int i) {
    char b[24];
    std::snprintf(b, sizeof b, "%s%d", prefix, i);
    return b;
}

std::string shortText(const std::string& s, size_t n) { return s.size() > n ? s.substr(0, n - 1) + "~" : s; }

void layerPicker(int& layer, int n_layers) {
    if (n_layers <= 0) return;
    layer = std::clamp(layer, 0, n_layers - 1);
    ImGui::SetNextItemWidth(160);
    ImGui::SliderInt("layer", &layer, 0, n_layers - 1, "%d", k_clamp);
    layer = std::clamp(layer, 0, n_layers - 1);
}

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

void drawMatrix(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m, const std::vector<std::string>& colNames,
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
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(lw + colNames.size() * cw, 18 + m.size() * ch));
    ImGui::EndGroup();
}

std::vector<ImVec2> barColumn(ViewOutbox& out, ImVec2 o, float w, const std::vector<float>& v, const std::vector<std::string>& labels,
                              const std::vector<bool>& on, float vmax, const std::vector<ImU32>& colours, const char* what,
                              float grow) {
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
            tooltip(out, tip);
        }
        ends.push_back(ImVec2(b.x, (a.y + b.y) / 2));
    }
    return ends;
}

void plot(ViewOutbox& out, const char* title, std::vector<Series> series, float height, bool logY, const char* xUnit) {
    const bool seconds = std::string(xUnit) == "s";
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
            if (i < s.lo.size() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i]))
                y0 = std::min(y0, ty(s.lo[i])), y1 = std::max(y1, ty(s.hi[i]));
        }
    if (x0 > x1) {
        ImGui::Dummy(ImVec2(w, height));
        return;
    }
    if (!logY) y0 = std::min(y0, 0.f);
    if (y1 - y0 < 1e-6f) y1 = y0 + 1;
    if (x1 - x0 < (seconds ? 1e-3f : 1.f)) x1 = x0 + (seconds ? 1e-3f : 1.f);
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
    if (seconds) std::snprintf(xl, sizeof xl, "%.1f .. %.1f s of training", x0, x1);
    else std::snprintf(xl, sizeof xl, "step %.0f .. %.0f", x0, x1);
    dl->AddText(ImVec2(b.x - ImGui::CalcTextSize(xl).x - 4, b.y + 1), k_dim, xl);
    float lx = o.x + 10 + ImGui::CalcTextSize(title).x + 20;
    for (const auto& s : series) {  // legend
        dl->AddRectFilled(ImVec2(lx, o.y + 4), ImVec2(lx + 10, o.y + 14), s.colour);
        dl->AddText(ImVec2(lx + 14, o.y), k_text, s.name.c_str());
        lx += 30 + ImGui::CalcTextSize(s.name.c_str()).x;
    }
    dl->PushClipRect(a, b, true);
    for (const auto& s : series) {  // bands first, under every line
        if (s.lo.size() != s.x.size() || s.hi.size() != s.x.size()) continue;
        const size_t stride = std::max<size_t>(1, s.x.size() / (size_t)std::max(1.f, b.x - a.x));
        for (size_t i = 0; i + stride < s.x.size(); i += stride) {
            const size_t k = i + stride;
            if (!std::isfinite(s.lo[i]) || !std::isfinite(s.hi[i]) || !std::isfinite(s.lo[k]) || !std::isfinite(s.hi[k])) continue;
            // One quad per x step: (x_i, hi_i) (x_k, hi_k) (x_k, lo_k) (x_i, lo_i), convex for a rising x.
            dl->AddQuadFilled(ImVec2(px(s.x[i]), py(s.hi[i])), ImVec2(px(s.x[k]), py(s.hi[k])), ImVec2(px(s.x[k]), py(s.lo[k])),
                              ImVec2(px(s.x[i]), py(s.lo[i])), withAlpha(s.colour, 45));
        }
    }
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
        char head[120];
        if (seconds) std::snprintf(head, sizeof head, "%s at %.2f s", title, step);
        else std::snprintf(head, sizeof head, "%s at step %.0f", title, step);
        std::string tip = head;
        for (const auto& s : series) {
            if (s.x.empty()) continue;
            const size_t i = std::min<size_t>(std::lower_bound(s.x.begin(), s.x.end(), step) - s.x.begin(), s.x.size() - 1);
            char line[160];
            if (seconds) std::snprintf(line, sizeof line, "\n%s: %.5g (%.2f s)", s.name.c_str(), s.y[i], s.x[i]);
            else std::snprintf(line, sizeof line, "\n%s: %.5g (step %.0f)", s.name.c_str(), s.y[i], s.x[i]);
            if (i < s.lo.size() && i < s.hi.size()) {
                char band[64];
                std::snprintf(band, sizeof band, ", raw %.4g..%.4g", s.lo[i], s.hi[i]);
                std::strncat(line, band, sizeof line - std::strlen(line) - 1);
            }
            tip += line;
            dl->AddCircleFilled(ImVec2(px(s.x[i]), py(s.y[i])), 3.5f, s.colour);
        }
        tooltip(out, tip);
    }
    ImGui::Dummy(ImVec2(w, height));
}

void drawStar(ImDrawList* dl, ImVec2 c, float r, ImU32 colour) {
    // Not convex: a pentagon for the middle and a triangle per point.
    ImVec2 outer[5], inner[5];
    for (int k = 0; k < 5; k++) {
        const float ao = -1.5707964f + k * 1.2566371f, ai = ao + 0.6283185f;
        outer[k] = ImVec2(c.x + r * std::cos(ao), c.y + r * std::sin(ao));
        inner[k] = ImVec2(c.x + 0.42f * r * std::cos(ai), c.y + 0.42f * r * std::sin(ai));
    }
    dl->AddConvexPolyFilled(inner, 5, colour);
    for (int k = 0; k < 5; k++) dl->AddTriangleFilled(outer[k], inner[k], inner[(k + 4) % 5], colour);
}

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
