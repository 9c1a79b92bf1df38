#include "widgets.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

namespace {

Look makeLook(bool light) {
    Look k;
    k.light = light;
    if (!light) {  // the colours the views always had
        k.text = IM_COL32(225, 225, 225, 255), k.dim = IM_COL32(130, 130, 140, 255), k.off = IM_COL32(25, 25, 30, 255);
        k.panel = IM_COL32(22, 22, 28, 255), k.grid = IM_COL32(60, 60, 70, 255), k.axis = IM_COL32(110, 110, 125, 255);
        k.track = IM_COL32(40, 40, 48, 255), k.strong = IM_COL32(255, 255, 255, 255), k.chip = IM_COL32(50, 50, 58, 255);
        k.masked = IM_COL32(18, 18, 22, 255), k.node = IM_COL32(60, 60, 80, 255), k.backdrop = IM_COL32(0, 0, 0, 200);
        k.gold = IM_COL32(255, 200, 80, 255), k.rowHighlight = IM_COL32(120, 110, 40, 255);
        k.spotlight = IM_COL32(255, 110, 30, 255);
    } else {
        k.text = IM_COL32(25, 25, 30, 255), k.dim = IM_COL32(100, 100, 112, 255), k.off = IM_COL32(45, 45, 52, 255);
        k.panel = IM_COL32(252, 252, 253, 255), k.grid = IM_COL32(214, 214, 222, 255), k.axis = IM_COL32(140, 140, 152, 255);
        k.track = IM_COL32(222, 222, 228, 255), k.strong = IM_COL32(0, 0, 0, 255), k.chip = IM_COL32(215, 215, 222, 255);
        k.masked = IM_COL32(232, 232, 236, 255), k.node = IM_COL32(200, 200, 215, 255), k.backdrop = IM_COL32(255, 255, 255, 225);
        k.gold = IM_COL32(190, 130, 0, 255), k.rowHighlight = IM_COL32(250, 228, 130, 255);
        k.spotlight = IM_COL32(215, 60, 0, 255);
    }
    return k;
}

Look g_look = makeLook(false);
std::string g_spotlight, g_spotlightCaption;  // the frame being drawn's spotlight (the window sets it)

}  // namespace

const Look& look() { return g_look; }
void setViewTheme(bool light) { g_look = makeLook(light); }

ImU32 inkOn(ImU32 bg) {
    const float r = (bg & 0xff) / 255.f, g = ((bg >> 8) & 0xff) / 255.f, b = ((bg >> 16) & 0xff) / 255.f;
    return 0.299f * r + 0.587f * g + 0.114f * b > 0.55f ? IM_COL32(20, 20, 20, 255) : IM_COL32(235, 235, 235, 255);
}

void setSpotlight(const std::string& id, const std::string& caption) { g_spotlight = id, g_spotlightCaption = caption; }

Spotlight::Spotlight(const char* id, ViewOutbox& out) : out_(out), on_(!g_spotlight.empty() && g_spotlight == id) {
    ImGui::BeginGroup();
    if (!on_) return;
    ImGui::PushStyleColor(ImGuiCol_Text, look().spotlight);
    ImGui::TextWrapped("Look here: %s", g_spotlightCaption.c_str());
    ImGui::PopStyleColor();
}

Spotlight::~Spotlight() {
    ImGui::EndGroup();
    if (!on_) return;
    // The frame sits just outside the region, on top of what the region drew; a few pixels thick so
    // it reads on a projector and in a scaled-down screenshot.
    const ImVec2 a = ImGui::GetItemRectMin(), b = ImGui::GetItemRectMax();
    ImGui::GetWindowDrawList()->AddRect(ImVec2(a.x - 4, a.y - 3), ImVec2(b.x + 4, b.y + 3), look().spotlight, 4.f, 0, 3.f);
    const ImVec2 w = ImGui::GetWindowPos();
    out_.spotlit = g_spotlight;
    out_.spotlitRect[0] = a.x - 4 - w.x, out_.spotlitRect[1] = a.y - 3 - w.y;
    out_.spotlitRect[2] = b.x - a.x + 8, out_.spotlitRect[3] = b.y - a.y + 6;
}

void viewHint(const char* text) {
    ImGui::PushStyleColor(ImGuiCol_Text, look().dim);
    ImGui::TextUnformatted(text);
    ImGui::PopStyleColor();
}

std::string legendNumber(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return b;
}

ImVec2 colourLegend(const char* what, const std::string& lo, const std::string& mid, const std::string& hi, float barWidth,
                    const char* offLabel, const ImVec2* at) {
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = at ? *at : ImGui::GetCursorScreenPos();
    const float lh = ImGui::GetTextLineHeight(), barH = std::max(8.f, lh * 0.6f);
    float x = o.x;
    if (what && *what) {
        dl->AddText(ImVec2(x, o.y + barH / 2 - halfLine()), look().dim, what);
        x += ImGui::CalcTextSize(what).x + 8;
    }
    // The ramp in 24 steps, each a gradient between its ends.
    const int n = 24;
    for (int k = 0; k < n; k++) {
        const float x0 = x + barWidth * k / n, x1 = x + barWidth * (k + 1) / n;
        const ImU32 c0 = ramp((float)k / n), c1 = ramp((float)(k + 1) / n);
        dl->AddRectFilledMultiColor(ImVec2(x0, o.y), ImVec2(x1, o.y + barH), c0, c1, c1, c0);
    }
    dl->AddRect(ImVec2(x - 1, o.y - 1), ImVec2(x + barWidth + 1, o.y + barH + 1), look().axis);
    const float ty = o.y + barH + 1;
    for (int k = 0; k < 3; k++) {  // ticks at 0, 1/2, 1
        const float tx = x + barWidth * k / 2.f;
        dl->AddLine(ImVec2(tx, o.y + barH), ImVec2(tx, o.y + barH + 3), look().axis);
    }
    const float wl = ImGui::CalcTextSize(lo.c_str()).x, wm = ImGui::CalcTextSize(mid.c_str()).x, wh = ImGui::CalcTextSize(hi.c_str()).x;
    dl->AddText(ImVec2(x - std::min(wl / 2, 4.f), ty + 2), look().text, lo.c_str());
    dl->AddText(ImVec2(x + barWidth / 2 - wm / 2, ty + 2), look().text, mid.c_str());
    dl->AddText(ImVec2(x + barWidth - wh + std::min(wh / 2, 4.f), ty + 2), look().text, hi.c_str());
    x += barWidth + std::min(wh / 2, 4.f);
    if (offLabel) {
        x += 14;
        dl->AddRectFilled(ImVec2(x, o.y), ImVec2(x + barH * 1.6f, o.y + barH), look().off);
        dl->AddRect(ImVec2(x, o.y), ImVec2(x + barH * 1.6f, o.y + barH), look().axis);
        x += barH * 1.6f + 5;
        dl->AddText(ImVec2(x, o.y + barH / 2 - halfLine()), look().dim, offLabel);
        x += ImGui::CalcTextSize(offLabel).x;
    }
    const ImVec2 size(x - o.x, barH + 3 + lh);
    if (!at) ImGui::Dummy(size);
    return size;
}

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

void markTarget(ViewOutbox& out, const char* kind, int index, ImVec2 a, ImVec2 b) {
    if (!ImGui::IsRectVisible(a, b)) return;  // scrolled away or clipped: nothing to point at
    out.targets.push_back({kind, index, a.x, a.y, b.x - a.x, b.y - a.y});
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
    if (underline) dl->AddLine(ImVec2(p0.x, p1.y + 1), ImVec2(p1.x, p1.y + 1), withAlpha(look().strong, 200), 2);
    ImGui::SetCursorScreenPos(ImVec2(p0.x + 3, p0.y + 1));
    ImGui::TextUnformatted(text.c_str());
    const bool hovered = ImGui::IsMouseHoveringRect(p0, p1);
    ImGui::SetCursorScreenPos(p0);
    ImGui::Dummy(ImVec2(sz.x + 9, sz.y + 4));
    // Wrap: stay on this line while the next chip probably fits.
    if (more && ImGui::GetItemRectMax().x - ImGui::GetWindowPos().x < ImGui::GetWindowContentRegionMax().x - 90) ImGui::SameLine(0, 0);
    return hovered;
}

namespace {
// drawMatrix's pieces: row label width, the narrowest column (a "100%" cell), a label's natural column.
float matrixLabelWidth(size_t rows, const char* prefix) { return ImGui::CalcTextSize(numbered(prefix, (int)std::max<size_t>(rows, 1) - 1).c_str()).x + 10; }
float matrixMinColumn() { return ImGui::CalcTextSize("100%").x + 10; }
float matrixColumn(const std::string& label) { return std::max(matrixMinColumn(), ImGui::CalcTextSize(label.c_str()).x + 10); }
// The longest start of s (whole UTF-8 characters) that, with a final ".", fits in w pixels; a start
// that ends inside a later word stops at the word before ("function word" -> "function.").
std::string abbreviate(const std::string& s, float w) {
    for (size_t n = s.size(); n > 1; n--) {
        if ((s[n] & 0xC0) == 0x80) continue;  // inside a character
        std::string t = s.substr(0, n);
        if (ImGui::CalcTextSize((t + ".").c_str()).x > w) continue;
        if (const size_t sp = t.rfind(' '); sp != std::string::npos && sp > 0 && n < s.size() && s[n] != ' ') t.resize(sp);
        while (!t.empty() && t.back() == ' ') t.pop_back();
        return t + ".";
    }
    return s.substr(0, 1);
}
}  // namespace

float matrixWidth(const std::vector<std::string>& colNames, size_t rows, bool narrowest) {
    float w = matrixLabelWidth(rows, "e");
    for (const auto& c : colNames) w += narrowest ? matrixMinColumn() : matrixColumn(c);
    return w;
}

void drawMatrix(ViewOutbox& out, const char* title, const std::vector<std::vector<double>>& m, const std::vector<std::string>& colNames,
                const char* rowPrefix, float maxWidth) {
    ImGui::BeginGroup();
    ImGui::TextUnformatted(title);
    if (m.empty()) {
        ImGui::TextDisabled("(no data yet)");
        ImGui::EndGroup();
        return;
    }
    const float lh = ImGui::GetTextLineHeight(), ch = std::max(16.f, lh + 3), lw = matrixLabelWidth(m.size(), rowPrefix);
    const size_t nc = colNames.size();
    // Columns as wide as their labels; with too little room all share it equally (never below a "100%").
    std::vector<float> cw(nc);
    float natural = lw;
    for (size_t c = 0; c < nc; c++) natural += cw[c] = matrixColumn(colNames[c]);
    if (maxWidth > 0 && natural > maxWidth && nc)
        std::fill(cw.begin(), cw.end(), std::max(matrixMinColumn(), (maxWidth - lw) / nc));
    std::vector<float> cx(nc + 1, lw);
    for (size_t c = 0; c < nc; c++) cx[c + 1] = cx[c] + cw[c];
    bool twoRows = false;  // a label wider than its column: the labels alternate between two rows
    for (size_t c = 0; c < nc; c++) twoRows |= ImGui::CalcTextSize(colNames[c].c_str()).x > cw[c] - 4;
    const float header = (twoRows ? 2 : 1) * lh + 2;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    for (size_t c = 0; c < nc; c++) {
        // On two rows a label may use its neighbour's width too (the neighbours sit on the other row).
        const float room = twoRows ? cw[c] + (c + 1 < nc ? cw[c + 1] : 0) - 8 : cw[c] - 4;
        const bool fits = ImGui::CalcTextSize(colNames[c].c_str()).x <= room;
        const std::string label = fits ? colNames[c] : abbreviate(colNames[c], room);
        const ImVec2 at(o.x + cx[c] + 2, o.y + (twoRows && c % 2 ? lh : 0));
        dl->AddText(at, look().dim, label.c_str());
        const ImVec2 ts = ImGui::CalcTextSize(label.c_str());
        if (ImGui::IsMouseHoveringRect(at, ImVec2(at.x + ts.x, at.y + ts.y))) {
            char tip[120];
            std::snprintf(tip, sizeof tip, "column: %s", colNames[c].c_str());
            tooltip(out, tip);
        }
    }
    bool emptyRow = false;
    for (size_t r = 0; r < m.size(); r++) {
        double tot = 0;
        for (double v : m[r]) tot += v;
        emptyRow |= tot <= 0;
        const float y = o.y + header + r * ch;
        dl->AddText(ImVec2(o.x, y + (ch - 2) / 2 - halfLine()), viewColour((int)r), numbered(rowPrefix, (int)r).c_str());
        for (size_t c = 0; c < m[r].size() && c < nc; c++) {
            const float share = tot > 0 ? (float)(m[r][c] / tot) : 0.f;
            const ImVec2 a(o.x + cx[c], y), b(o.x + cx[c + 1] - 2, a.y + ch - 2);
            const ImU32 fill = tot > 0 ? ramp(share) : look().off;
            dl->AddRectFilled(a, b, fill);
            char v[16];
            std::snprintf(v, sizeof v, "%.0f%%", 100 * share);
            dl->AddText(ImVec2(a.x + 4, a.y + (ch - 2) / 2 - halfLine()), inkOn(fill), v);
            if (ImGui::IsMouseHoveringRect(a, b)) {
                char tip[160];
                std::snprintf(tip, sizeof tip, "%s%zu x %s: %.0f tokens, %.1f%% of this expert's top-1 tokens", rowPrefix, r,
                              colNames[c].c_str(), m[r][c], 100 * share);
                tooltip(out, tip);
            }
        }
    }
    ImGui::Dummy(ImVec2(cx[nc], header + m.size() * ch + 4));
    colourLegend("share of the row", "0%", "50%", "100%", 120, emptyRow ? "no tokens" : nullptr);
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
        dl->AddText(ImVec2(o.x, y + h / 2 - halfLine()), on[i] ? look().text : look().dim, labels[i].c_str());
        const ImVec2 a(o.x + 34, y), b(o.x + 34 + w, y + h);
        dl->AddRectFilled(a, b, look().track);
        const float bw = vmax > 0 ? grow * w * std::clamp(v[i] / vmax, 0.f, 1.f) : 0;
        dl->AddRectFilled(a, ImVec2(a.x + bw, b.y), on[i] ? colours[i] : withAlpha(colours[i], 70));
        char t[24];
        std::snprintf(t, sizeof t, "%.3f", v[i]);
        dl->AddText(ImVec2(a.x + 4, y + h / 2 - halfLine()), on[i] ? (bw > 40 ? inkOn(colours[i]) : look().text) : look().dim, t);
        if (ImGui::IsMouseHoveringRect(ImVec2(o.x, y), b)) {
            char tip[120];
            std::snprintf(tip, sizeof tip, "%s %s: %.4f%s", what, labels[i].c_str(), v[i], on[i] ? " (selected)" : " (not selected)");
            tooltip(out, tip);
        }
        ends.push_back(ImVec2(b.x, (a.y + b.y) / 2));
    }
    return ends;
}

namespace {

// The plot's hover: a cursor line, and every series' value at that step in a tooltip (with its raw
// band), a dot on each line. at(x, y): the pixel of a value.
void plotHover(ViewOutbox& out, ImDrawList* dl, const char* title, const std::vector<Series>& series, ImVec2 a, ImVec2 b, float x0,
               float x1, bool seconds, const std::function<ImVec2(float, float)>& at) {
    const float mx = ImGui::GetIO().MousePos.x, step = x0 + (mx - a.x) / (b.x - a.x) * (x1 - x0);
    dl->AddLine(ImVec2(mx, a.y), ImVec2(mx, b.y), withAlpha(look().strong, 90));
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
        dl->AddCircleFilled(at(s.x[i], s.y[i]), 3.5f, s.colour);
    }
    tooltip(out, tip);
}

}  // namespace

void plot(ViewOutbox& out, const char* title, std::vector<Series> series, float height, bool logY, const char* xUnit) {
    const bool seconds = std::string(xUnit) == "s";
    const float w = ImGui::GetContentRegionAvail().x;
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float lh = ImGui::GetTextLineHeight();
    // The title, then the legend's entries, wrapping onto more lines when they pass the right edge.
    std::vector<ImVec2> entry(series.size());
    float lx = o.x + ImGui::CalcTextSize(title).x + 24, ly = o.y;
    for (size_t i = 0; i < series.size(); i++) {
        const float ew = 14 + ImGui::CalcTextSize(series[i].name.c_str()).x;
        if (lx + ew > o.x + w - 10 && lx > o.x + 60) lx = o.x + 56, ly += lh;
        entry[i] = ImVec2(lx, ly);
        lx += ew + 16;
    }
    const float left = 56, top = ly - o.y + lh + 2, bottom = lh + 1;
    const ImVec2 a(o.x + left, o.y + top), b(o.x + w - 10, o.y + height - bottom);
    dl->AddRectFilled(a, b, look().panel);
    dl->AddText(o, look().text, title);
    for (size_t i = 0; i < series.size(); i++) {  // legend
        const ImVec2 e = entry[i];
        dl->AddRectFilled(ImVec2(e.x, e.y + lh / 2 - 5), ImVec2(e.x + 10, e.y + lh / 2 + 5), series[i].colour);
        dl->AddText(ImVec2(e.x + 14, e.y), look().text, series[i].name.c_str());
    }
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
        dl->AddLine(ImVec2(a.x, yy), ImVec2(b.x, yy), look().grid);
        char lab[24];
        std::snprintf(lab, sizeof lab, "%.3g", logY ? std::pow(10.f, yv) : yv);
        const float tw = ImGui::CalcTextSize(lab).x;  // right-aligned against the plot
        dl->AddText(ImVec2(std::max(o.x, a.x - 6 - tw), std::clamp(yy - halfLine(), a.y - 2, b.y - lh + 2)), look().dim, lab);
    }
    char xl[48];
    if (seconds) std::snprintf(xl, sizeof xl, "%.1f .. %.1f s of training", x0, x1);
    else std::snprintf(xl, sizeof xl, "step %.0f .. %.0f", x0, x1);
    dl->AddText(ImVec2(b.x - ImGui::CalcTextSize(xl).x - 4, b.y + 1), look().dim, xl);
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
    markTarget(out, "curves.plot", (int)std::count_if(out.targets.begin(), out.targets.end(), [](const ViewTarget& t) { return t.kind == "curves.plot"; }), a, b);
    if (ImGui::IsMouseHoveringRect(a, b)) plotHover(out, dl, title, series, a, b, x0, x1, seconds, [&](float x, float y) { return ImVec2(px(x), py(y)); });
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

namespace {

// CIELAB (D65) of an 8-bit sRGB colour: distances there are close to the differences people see.
std::array<float, 3> lab(ImU32 c) {
    auto lin = [](int u) {
        const float x = u / 255.f;
        return x > 0.04045f ? std::pow((x + 0.055f) / 1.055f, 2.4f) : x / 12.92f;
    };
    const float r = lin(c & 255), g = lin((c >> 8) & 255), b = lin((c >> 16) & 255);
    const float X = (0.4124f * r + 0.3576f * g + 0.1805f * b) / 0.95047f, Y = 0.2126f * r + 0.7152f * g + 0.0722f * b,
                Z = (0.0193f * r + 0.1192f * g + 0.9505f * b) / 1.08883f;
    auto f = [](float t) { return t > 0.008856f ? std::cbrt(t) : 7.787f * t + 16.f / 116.f; };
    return {116 * f(Y) - 16, 500 * (f(X) - f(Y)), 200 * (f(Y) - f(Z))};
}

float labDistance(const std::array<float, 3>& a, const std::array<float, 3>& b) {
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// The first eight as they always were; each next colour is the candidate (72 hues x 7 levels of
// saturation and brightness, none dark) farthest in CIELAB from every colour already taken, so 64
// experts (DeepSeek-V3 style, real checkpoints) get 64 colours at least ~20 Delta-E apart.
std::vector<ImU32> makePalette() {
    std::vector<ImU32> p = {IM_COL32(230, 85, 80, 255),  IM_COL32(80, 160, 230, 255), IM_COL32(120, 200, 90, 255),
                            IM_COL32(230, 180, 60, 255), IM_COL32(170, 110, 220, 255), IM_COL32(60, 200, 190, 255),
                            IM_COL32(230, 120, 190, 255), IM_COL32(160, 160, 160, 255)};
    const float levels[7][2] = {{0.35f, 1.f}, {0.6f, 1.f}, {0.85f, 0.95f}, {0.9f, 0.75f}, {0.6f, 0.8f}, {0.75f, 0.6f}, {0.45f, 0.7f}};
    std::vector<ImU32> cand;
    for (int h = 0; h < 72; h++)
        for (const auto& l : levels) {
            float r, g, b;
            ImGui::ColorConvertHSVtoRGB(h / 72.f, l[0], l[1], r, g, b);
            cand.push_back(IM_COL32((int)(r * 255), (int)(g * 255), (int)(b * 255), 255));
        }
    std::vector<float> nearest(cand.size(), 1e9f);
    auto take = [&](ImU32 c) {
        const auto lc = lab(c);
        for (size_t i = 0; i < cand.size(); i++) nearest[i] = std::min(nearest[i], labDistance(lab(cand[i]), lc));
    };
    for (ImU32 c : p) take(c);
    while ((int)p.size() < k_viewColours) {
        const size_t k = (size_t)(std::max_element(nearest.begin(), nearest.end()) - nearest.begin());
        p.push_back(cand[k]);
        take(cand[k]);
    }
    return p;
}

}  // namespace

float viewColourDistance(int a, int b) { return labDistance(lab(viewColour(a)), lab(viewColour(b))); }

unsigned viewColour(int e) {
    static const std::vector<ImU32> palette = makePalette();
    return palette[(size_t)(((e % k_viewColours) + k_viewColours) % k_viewColours)];
}

unsigned overlayColour(int i) {
    static const ImU32 palette[] = {IM_COL32(255, 110, 255, 255), IM_COL32(255, 230, 90, 255), IM_COL32(110, 255, 200, 255),
                                    IM_COL32(255, 150, 100, 255), IM_COL32(190, 170, 255, 255), IM_COL32(200, 255, 110, 255)};
    return palette[((i % 6) + 6) % 6];
}
