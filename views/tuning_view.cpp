// The tuning view (docs/architecture.md §12.5): every stored run of the workspace in one sortable table
// with the config keys that differ among the listed runs and the final metrics, and a
// parallel-coordinates plot of the chosen keys against validation loss. Hovering a line or a row
// highlights the run in both; a click ticks it in the Runs dock (the curves view overlays it).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "run_groups.h"
#include "run_table.h"
#include "tuning_plots.h"
#include "views.h"
#include "widgets.h"

namespace {

// The best run's star and the highlighted run (white on the dark theme, black on the light one).
ImU32 gold() { return look().light ? IM_COL32(200, 140, 0, 255) : IM_COL32(255, 205, 60, 255); }
ImU32 highlightColour() { return look().strong; }

// A key's shortest dotted tail that no other key of `keys` ends with: "beta", but "heads.kind" and
// "moe.kind" where both differ (two checkboxes both labelled "kind" would be guesswork).
std::string shortName(const std::string& key, const std::vector<std::string>& keys) {
    auto tail = [](const std::string& k, int parts) {
        size_t p = k.size();
        for (int i = 0; i < parts && p != std::string::npos && p > 0; i++) p = k.rfind('.', p - 1);
        return p == std::string::npos || p == 0 ? k : k.substr(p + 1);
    };
    for (int parts = 1;; parts++) {
        const std::string mine = tail(key, parts);
        if (mine == key) return key;
        bool unique = true;
        for (const auto& other : keys) unique &= other == key || tail(other, parts) != mine;
        if (unique) return mine;
    }
}

std::string lower(std::string s) {
    for (char& c : s) c = (char)std::tolower((unsigned char)c);
    return s;
}

bool tagMatches(const rl::RunRecord& r, const char* filter) {
    if (!*filter) return true;
    const std::string f = lower(filter);
    for (const auto& t : r.tags)
        if (lower(t).find(f) != std::string::npos) return true;
    return false;
}

// Bright on the dark theme, deeper on the light one (the dark theme's green is 1.9:1 on white).
ImU32 statusColour(rl::RunStatus s) {
    const bool l = look().light;
    switch (s) {
        case rl::RunStatus::finished: return l ? IM_COL32(30, 125, 45, 255) : IM_COL32(120, 200, 90, 255);
        case rl::RunStatus::running: return l ? IM_COL32(25, 95, 185, 255) : IM_COL32(80, 160, 230, 255);
        case rl::RunStatus::interrupted: return l ? IM_COL32(165, 100, 0, 255) : IM_COL32(230, 180, 60, 255);
        case rl::RunStatus::failed: return l ? IM_COL32(185, 35, 30, 255) : IM_COL32(230, 85, 80, 255);
        case rl::RunStatus::pruned: return l ? IM_COL32(110, 110, 120, 255) : IM_COL32(160, 160, 170, 255);
    }
    return look().text;
}

// One vertical axis: a differing key (numeric, log when it spans 20x or more of positive values, or
// categorical) or, last, the validation loss.
struct Axis {
    std::string key;  // "" = validation loss
    int column = -1;  // index into RunTable::keys
    bool numeric = true, log = false;
    double lo = 0, hi = 0;
    std::vector<std::string> categories;
    // Position of a value in [0, 1] (0 = bottom), NaN when the run has no value on this axis.
    double pos(double v, const std::string& text) const {
        if (!numeric) {
            auto it = std::find(categories.begin(), categories.end(), text);
            if (it == categories.end()) return NAN;
            return categories.size() < 2 ? 0.5 : double(it - categories.begin()) / double(categories.size() - 1);
        }
        if (!std::isfinite(v)) return NAN;
        if (hi <= lo) return 0.5;
        return log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    }
};

double distanceToSegment(ImVec2 p, ImVec2 a, ImVec2 b) {
    const double dx = b.x - a.x, dy = b.y - a.y, len = dx * dx + dy * dy;
    double t = len > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / len : 0;
    t = std::clamp(t, 0.0, 1.0);
    const double x = a.x + t * dx - p.x, y = a.y + t * dy - p.y;
    return std::sqrt(x * x + y * y);
}

std::string metricText(float v, const char* fmt = "%.4f") {
    if (v < 0) return "-";
    char b[32];
    std::snprintf(b, sizeof b, fmt, v);
    return b;
}

// Stay on this line while the next item of width w fits.
void sameLineIfFits(float w) {
    const float right = ImGui::GetWindowPos().x + ImGui::GetWindowContentRegionMax().x;
    if (ImGui::GetItemRectMax().x + ImGui::GetStyle().ItemSpacing.x + w < right) ImGui::SameLine();
}

// What one frame of the view shares between its controls, its plot and its table.
struct Frame {
    std::vector<rl::RunRecord> rows;      // the runs the filters keep
    RunTable t;                           // their differing keys (views/run_table.h)
    std::vector<std::string> shortNames;  // [key] shortName(key, t.keys): computed once a frame
    std::vector<size_t> plotted;          // rows with a validation loss
    std::set<int64_t> best, ticked;       // the best run of each sweep; the runs ticked in the Runs dock
    std::map<int64_t, ImU32> overlayColours;
    std::map<int64_t, RunSpread> spread;  // grouped seeds: a row's spread over its runs (views/run_groups.h)
    int64_t highlight = 0;   // hovered, else pinned
    int64_t hoveredNow = 0;  // under the mouse in this frame (plot or table)
    bool nowFromPlot = false;
};

// The sweep and tag filters; the runs they keep go to f.rows.
void drawFilters(const RunData& run, TuningState& s, ViewOutbox& out, Frame& f) {
    std::set<std::string> sweeps;
    for (const auto& r : run.runs)
        if (!r.sweep.empty()) sweeps.insert(r.sweep);
    if (!s.sweep.empty() && !sweeps.count(s.sweep)) s.sweep.clear();  // that sweep's runs were deleted
    viewHint("Which settings reach the lowest validation loss (yellow lines, the star); click a run to overlay its curves.");
    ImGui::Text("Tuning: %zu stored runs", run.runs.size());
    ImGui::SameLine(0, 20);
    ImGui::SetNextItemWidth(200);
    const ImVec2 filterAt = ImGui::GetCursorScreenPos();
    if (ImGui::BeginCombo("sweep", s.sweep.empty() ? "(all runs)" : s.sweep.c_str())) {
        int i = 0;
        if (ImGui::Selectable("(all runs)", s.sweep.empty())) s.sweep.clear();
        markTarget(out, "tuning.sweep", i++, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
        for (const auto& w : sweeps) {
            if (ImGui::Selectable(w.c_str(), s.sweep == w)) s.sweep = w;
            markTarget(out, "tuning.sweep", i++, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
        }
        ImGui::EndCombo();
    }
    markTarget(out, "tuning.filter", 0, filterAt, ImVec2(filterAt.x + 200, filterAt.y + ImGui::GetFrameHeight()));
    ImGui::SameLine(0, 20);
    ImGui::SetNextItemWidth(140);
    ImGui::InputText("tag", s.tag, sizeof s.tag);
    ImGui::SameLine(0, 20);
    ImGui::Checkbox("group seeds", &s.groupSeeds);
    if (ImGui::IsItemHovered()) tooltip(out, "A sweep's runs of one config on several seeds are one row: the mean of their metrics, ranked by it, with their spread.");
    for (const auto& r : run.runs)
        if ((s.sweep.empty() || r.sweep == s.sweep) && tagMatches(r, s.tag)) f.rows.push_back(r);
    if (!s.groupSeeds) return;
    RunGroups g = runGroups(f.rows);
    f.rows = std::move(g.rows), f.spread = std::move(g.spread);
}

// The table, the best of each sweep, the ticked runs and the highlight, for the kept rows.
void prepareFrame(const RunData& run, const TuningState& s, Frame& f) {
    f.t = runTable(f.rows);
    // A grouped row stands for all its seeds (its config keeps one of them): no seed column or axis, which
    // would otherwise show when an ungrouped run of another seed is in view.
    if (s.groupSeeds) dropTableKey(f.t, "train.seed");
    for (const auto& k : f.t.keys) f.shortNames.push_back(shortName(k, f.t.keys));
    std::map<std::string, size_t> bestOf;  // sweep -> row with the lowest validation loss
    for (size_t i = 0; i < f.rows.size(); i++) {
        const auto& r = f.rows[i];
        if (r.val_loss >= 0) f.plotted.push_back(i);
        if (r.sweep.empty() || r.val_loss < 0) continue;
        auto it = bestOf.find(r.sweep);
        if (it == bestOf.end() || r.val_loss < f.rows[it->second].val_loss) bestOf[r.sweep] = i;
    }
    for (const auto& [w, i] : bestOf) f.best.insert(f.rows[i].id);
    for (const auto& o : run.overlays) f.ticked.insert(o.id), f.overlayColours[o.id] = o.colour;
    f.highlight = s.hovered ? s.hovered : s.pinned;
}

bool axisOn(const TuningState& s, const Frame& f, size_t k) {
    auto it = s.axes.find(f.t.keys[k]);
    return it != s.axes.end() ? it->second : (bool)f.t.numeric[k];
}

// A checkbox per differing key: which are axes of the plot.
void drawAxisPicker(TuningState& s, const Frame& f) {
    if (f.t.keys.empty()) {
        ImGui::TextDisabled("All listed runs share one config: the plot has the validation-loss axis only.");
        return;
    }
    ImGui::TextDisabled("axes:");
    for (size_t k = 0; k < f.t.keys.size(); k++) {
        bool on = axisOn(s, f, k);
        const std::string label = f.shortNames[k] + "##" + f.t.keys[k];
        sameLineIfFits(ImGui::CalcTextSize(f.shortNames[k].c_str()).x + ImGui::GetFrameHeight() + 12);
        if (ImGui::Checkbox(label.c_str(), &on)) s.axes[f.t.keys[k]] = on;
        if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", f.t.keys[k].c_str());
    }
}

// The ticked keys' axes over the plotted runs' values, then the validation loss's, last.
std::vector<Axis> buildAxes(const TuningState& s, const Frame& f) {
    std::vector<Axis> axes;
    for (size_t k = 0; k < f.t.keys.size(); k++) {
        if (!axisOn(s, f, k)) continue;
        Axis a;
        a.key = f.t.keys[k], a.column = (int)k, a.numeric = f.t.numeric[k];
        std::set<std::string> cats;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i : f.plotted) {
            if (!f.t.text[i][k].empty()) cats.insert(f.t.text[i][k]);
            if (std::isfinite(f.t.number[i][k])) lo = std::min(lo, f.t.number[i][k]), hi = std::max(hi, f.t.number[i][k]);
        }
        a.categories.assign(cats.begin(), cats.end());
        a.lo = lo, a.hi = hi;
        a.log = a.numeric && lo > 0 && hi / lo >= 20;
        axes.push_back(std::move(a));
    }
    Axis v;
    v.lo = INFINITY, v.hi = -INFINITY;
    for (size_t i : f.plotted) {
        v.lo = std::min(v.lo, (double)f.rows[i].val_loss), v.hi = std::max(v.hi, (double)f.rows[i].val_loss);
        if (auto sp = f.spread.find(f.rows[i].id); sp != f.spread.end() && std::isfinite(sp->second.lo[0]))  // the seeds' bars fit too
            v.lo = std::min(v.lo, sp->second.lo[0]), v.hi = std::max(v.hi, sp->second.hi[0]);
    }
    axes.push_back(v);
    return axes;
}

// Where the plot is: its panel (o, w x h), the axes' box (a top left, b bottom right), its axes.
struct Plot {
    ImDrawList* dl = nullptr;
    ImVec2 o, a, b;
    float w = 0, h = 0, lh = 0;
    std::vector<Axis> axes;
    float axisX(size_t i) const { return axes.size() < 2 ? (a.x + b.x) / 2 : a.x + (b.x - a.x) * float(i) / float(axes.size() - 1); }
    float yOf(double p) const { return b.y - (b.y - a.y) * (float)p; }
};

// Each axis: its line, its title (two rows when they would run into each other, shortened when still
// too wide, the whole key on hover) and its ticks or categories.
void drawAxes(const Plot& p, const Frame& f) {
    // Narrow spacing (many axes): titles alternate between two rows and the middle tick goes.
    const float spacing = p.axes.size() < 2 ? p.b.x - p.a.x : (p.b.x - p.a.x) / float(p.axes.size() - 1);
    std::vector<std::string> names;
    float widest = 0;
    for (const Axis& ax : p.axes) {
        names.push_back(ax.key.empty() ? "val loss" : f.shortNames[ax.column] + (ax.log ? " (log)" : ""));
        widest = std::max(widest, ImGui::CalcTextSize(names.back().c_str()).x);
    }
    const bool narrow = spacing < 110 || widest > spacing - 10;
    const float room = (narrow ? 2 * spacing : spacing) - 10;
    for (size_t i = 0; i < p.axes.size(); i++) {
        const Axis& ax = p.axes[i];
        const float x = p.axisX(i);
        p.dl->AddLine(ImVec2(x, p.a.y), ImVec2(x, p.b.y), look().axis, 1.5f);
        std::string name = names[i];
        if (const float wide = ImGui::CalcTextSize(name.c_str()).x; wide > room && p.axes.size() > 1)
            name = shortText(name, std::max<size_t>(4, (size_t)(name.size() * room / wide)));
        const ImVec2 ts = ImGui::CalcTextSize(name.c_str());
        const float ty = narrow && i % 2 ? p.a.y - p.lh - 4 : p.a.y - 2 * p.lh - 4;
        p.dl->AddText(ImVec2(x - ts.x / 2, ty), ax.key.empty() ? gold() : look().text, name.c_str());
        if (ImGui::IsMouseHoveringRect(ImVec2(x - ts.x / 2, ty), ImVec2(x + ts.x / 2, ty + p.lh)))
            ImGui::SetTooltip("%s", ax.key.empty() ? "validation cross-entropy at the end of the run" : ax.key.c_str());
        if (f.plotted.empty()) continue;
        if (!ax.numeric) {
            for (const auto& c : ax.categories) p.dl->AddText(ImVec2(x + 5, p.yOf(ax.pos(0, c)) - halfLine()), look().dim, shortText(c, 14).c_str());
        } else if (std::isfinite(ax.lo)) {
            std::vector<double> ticks = {ax.lo, ax.hi};
            if (ax.hi > ax.lo && !narrow) ticks.push_back(ax.log ? std::sqrt(ax.lo * ax.hi) : (ax.lo + ax.hi) / 2);
            for (double v : ticks) {
                const float y = p.yOf(ax.pos(v, ""));
                p.dl->AddLine(ImVec2(x - 4, y), ImVec2(x + 4, y), look().axis);
                p.dl->AddText(ImVec2(x + 6, y - halfLine()), look().dim, tableNumber(v).c_str());
            }
        }
    }
}

// The highlighted run's line on top, with its values written at each axis and its id at the end.
void drawHighlight(const Plot& p, const Frame& f, size_t row, const std::vector<ImVec2>& line) {
    const auto& r = f.rows[row];
    for (size_t k = 0; k + 1 < line.size(); k++)
        if (std::isfinite(line[k].x) && std::isfinite(line[k + 1].x)) p.dl->AddLine(line[k], line[k + 1], highlightColour(), 3.5f);
    for (size_t k = 0; k < p.axes.size(); k++) {
        const ImVec2 at = line[k];
        if (!std::isfinite(at.x)) continue;
        p.dl->AddCircleFilled(at, 4.5f, highlightColour());
        const std::string v = p.axes[k].key.empty() ? metricText(r.val_loss) : f.t.text[row][p.axes[k].column];
        const ImVec2 ts = ImGui::CalcTextSize(v.c_str());
        const bool below = at.y - ts.y - 4 < p.a.y;  // near the top: under the point, clear of the axis titles
        const ImVec2 tp(at.x - ts.x - 8, below ? at.y + 4 : at.y - ts.y - 4);
        p.dl->AddRectFilled(ImVec2(tp.x - 2, tp.y - 1), ImVec2(tp.x + ts.x + 2, tp.y + ts.y + 1), look().backdrop, 3);
        p.dl->AddText(tp, highlightColour(), v.c_str());
    }
    char lab[32];
    std::snprintf(lab, sizeof lab, "#%lld", (long long)r.id);
    p.dl->AddText(ImVec2(p.b.x + 60, line.back().y - halfLine()), highlightColour(), lab);
}

// Each run's line through its value on every axis (a missing value breaks the line), coloured by
// its validation loss; the run nearest the mouse becomes f.hoveredNow.
void drawLines(const Plot& p, Frame& f, ViewOutbox& out) {
    const Axis& valAxis = p.axes.back();
    std::vector<std::vector<ImVec2>> lines(f.rows.size());
    for (size_t i : f.plotted)
        for (size_t k = 0; k < p.axes.size(); k++) {
            const Axis& ax = p.axes[k];
            const double v = ax.key.empty() ? ax.pos(f.rows[i].val_loss, "") : ax.pos(f.t.number[i][ax.column], f.t.text[i][ax.column]);
            lines[i].push_back(std::isfinite(v) ? ImVec2(p.axisX(k), p.yOf(v)) : ImVec2(NAN, NAN));
        }
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const bool inPlot = ImGui::IsMouseHoveringRect(ImVec2(p.o.x, p.a.y - 4), ImVec2(p.o.x + p.w, p.b.y + 4)) && ImGui::IsWindowHovered();
    double nearest = 6.0;  // pixels
    size_t highlightRow = f.rows.size();
    auto drawLine = [&](size_t i, ImU32 col, float thick) {
        for (size_t k = 0; k + 1 < lines[i].size(); k++)
            if (std::isfinite(lines[i][k].x) && std::isfinite(lines[i][k + 1].x)) p.dl->AddLine(lines[i][k], lines[i][k + 1], col, thick);
    };
    for (size_t i : f.plotted) {
        const double shade = valAxis.hi > valAxis.lo ? 1.0 - (f.rows[i].val_loss - valAxis.lo) / (valAxis.hi - valAxis.lo) : 1.0;
        if (f.rows[i].id == f.highlight) {
            highlightRow = i;
        } else {
            // On the light panel the ramp's yellow end (the best runs) all but vanishes: a grey casing
            // under each line keeps it visible and the colour still matches the scale.
            if (look().light) drawLine(i, IM_COL32(110, 110, 120, 200), 3.6f);
            drawLine(i, withAlpha(ramp((float)shade), look().light ? 255 : 210), 1.8f);
        }
        if (inPlot)
            for (size_t k = 0; k + 1 < lines[i].size(); k++)
                if (std::isfinite(lines[i][k].x) && std::isfinite(lines[i][k + 1].x)) {
                    const double d = distanceToSegment(mouse, lines[i][k], lines[i][k + 1]);
                    if (d < nearest) nearest = d, f.hoveredNow = f.rows[i].id, f.nowFromPlot = true;
                }
    }
    for (size_t i : f.plotted) {
        const auto& L = lines[i];
        if (f.best.count(f.rows[i].id) && std::isfinite(L.back().x)) drawStar(p.dl, L.back(), 7, gold());
        const size_t n = L.size();  // the middle of its last segment, into the val-loss axis
        if (n >= 2 && std::isfinite(L[n - 2].x) && std::isfinite(L[n - 1].x)) {
            const ImVec2 m((L[n - 2].x + L[n - 1].x) / 2, (L[n - 2].y + L[n - 1].y) / 2);
            markTarget(out, "tuning.line", (int)f.rows[i].id, ImVec2(m.x - 1, m.y - 1), ImVec2(m.x + 1, m.y + 1));
        }
    }
    // Seeds' spread (min to max) beside the validation-loss axis, left of it, each bar in its line's
    // colour and staggered in eight columns so overlapping ranges stay apart.
    int nth = 0;
    for (size_t i : f.plotted) {
        auto sp = f.spread.find(f.rows[i].id);
        if (sp == f.spread.end() || !std::isfinite(sp->second.lo[0])) continue;
        const bool hi = f.rows[i].id == f.highlight;
        const float x = p.axisX(p.axes.size() - 1) - 6 - 4 * (float)(nth++ % 8);
        const float y0 = p.yOf(valAxis.pos(sp->second.lo[0], "")), y1 = p.yOf(valAxis.pos(sp->second.hi[0], ""));
        const double shade = valAxis.hi > valAxis.lo ? 1.0 - (f.rows[i].val_loss - valAxis.lo) / (valAxis.hi - valAxis.lo) : 1.0;
        const ImU32 c = hi ? highlightColour() : withAlpha(ramp((float)shade), 230);
        p.dl->AddLine(ImVec2(x, y0), ImVec2(x, y1), c, hi ? 3.f : 1.5f);
        p.dl->AddLine(ImVec2(x - 2, y0), ImVec2(x + 2, y0), c, 1.f);
        p.dl->AddLine(ImVec2(x - 2, y1), ImVec2(x + 2, y1), c, 1.f);
    }
    if (highlightRow < f.rows.size()) drawHighlight(p, f, highlightRow, lines[highlightRow]);
}

// The parallel-coordinates plot: title and colour scale on top, two rows of axis titles, the axes,
// each run's line; a hovered line's tooltip, a click ticks it in the Runs dock.
void drawParallelCoordinates(const TuningState& s, Frame& f, ViewOutbox& out) {
    Plot p;
    p.axes = buildAxes(s, f);
    const Axis& valAxis = p.axes.back();
    p.w = ImGui::GetContentRegionAvail().x;
    p.h = std::max(220.f, ImGui::GetContentRegionAvail().y * 0.46f);
    p.dl = ImGui::GetWindowDrawList();
    p.o = ImGui::GetCursorScreenPos();
    p.lh = ImGui::GetTextLineHeight();
    p.a = ImVec2(p.o.x + 70, p.o.y + 4 * p.lh + 24), p.b = ImVec2(p.o.x + p.w - 150, p.o.y + p.h - 24);
    p.dl->AddRectFilled(p.o, ImVec2(p.o.x + p.w, p.o.y + p.h), look().panel);
    char title[160];
    std::snprintf(title, sizeof title, "%zu runs with a validation loss%s; colour:", f.plotted.size(),
                  f.best.empty() ? "" : " (star: the best of its sweep)");
    p.dl->AddText(ImVec2(p.o.x + 8, p.o.y + 4), look().text, title);
    if (std::isfinite(valAxis.lo)) {  // lowest loss = the ramp's top (yellow)
        const ImVec2 at(p.o.x + 16 + ImGui::CalcTextSize(title).x, p.o.y + 4 + p.lh * 0.2f);
        colourLegend("val loss", legendNumber(valAxis.hi), legendNumber((valAxis.lo + valAxis.hi) / 2), legendNumber(valAxis.lo), 120,
                     nullptr, &at);
    }
    drawAxes(p, f);
    p.dl->PushClipRect(p.o, ImVec2(p.o.x + p.w, p.o.y + p.h), true);
    drawLines(p, f, out);
    p.dl->PopClipRect();
    if (f.hoveredNow && f.nowFromPlot) {
        size_t i = 0;
        while (f.rows[i].id != f.hoveredNow) i++;
        const auto& r = f.rows[i];
        char id[32];
        std::snprintf(id, sizeof id, "#%lld ", (long long)r.id);  // not "#" + to_string: GCC 12's -Wrestrict false positive
        std::string tip = id;
        tip.append(r.name).append(" (").append(rl::run_status_name(r.status)).append(")");
        for (size_t k = 0; k < f.t.keys.size(); k++) tip += "\n" + f.t.keys[k] + " = " + (f.t.text[i][k].empty() ? "-" : f.t.text[i][k]);
        tip += "\nval loss " + metricText(r.val_loss) + (f.best.count(r.id) ? "  (best of " + r.sweep + ")" : "");
        tooltip(out, tip);
        if (ImGui::IsMouseClicked(0)) out.toggleOverlay = f.hoveredNow;
    }
    ImGui::Dummy(ImVec2(p.w, p.h));
}

// The table's columns: the ranking (validation loss) first, beside the run's id and name, all three
// frozen when the table scrolls sideways; the differing keys, then the other metrics.
enum Fixed { Tick, Val, Id, Name, Status, Sweep, Keys };
constexpr int k_metricsAfter = 6;  // load CV, head CV, dropped, tok/s, steps, tags

void setUpColumns(const Frame& f, size_t nKeys) {
    ImGui::TableSetupScrollFreeze(Name + 1, 1);
    ImGui::TableSetupColumn("", ImGuiTableColumnFlags_NoSort | ImGuiTableColumnFlags_NoResize, 34);
    ImGui::TableSetupColumn("val loss", ImGuiTableColumnFlags_DefaultSort | ImGuiTableColumnFlags_PreferSortAscending);
    for (const char* c : {"id", "name", "status", "sweep"}) ImGui::TableSetupColumn(c);
    for (size_t k = 0; k < nKeys; k++) ImGui::TableSetupColumn(f.shortNames[k].c_str());
    for (const char* c : {"load CV", "head CV", "dropped", "tok/s", "steps", "tags"}) ImGui::TableSetupColumn(c);
    // Headers by hand: a key's column is its last part; hovering shows the whole key.
    ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
    const int cVal = Keys + (int)nKeys, nCols = cVal + k_metricsAfter;
    for (int c = 0; c < nCols; c++) {
        if (!ImGui::TableSetColumnIndex(c)) continue;
        ImGui::TableHeader(ImGui::TableGetColumnName(c));
        if (c >= Keys && c < cVal && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", f.t.keys[c - Keys].c_str());
    }
}

// The rows in the order of the header the user clicked (ImGui keeps the spec); unmeasured values
// (-1, "") go last.
std::vector<size_t> sortedRows(const Frame& f, size_t nKeys) {
    std::vector<size_t> order(f.rows.size());
    for (size_t i = 0; i < f.rows.size(); i++) order[i] = i;
    ImGuiTableSortSpecs* spec = ImGui::TableGetSortSpecs();
    if (!spec || spec->SpecsCount == 0) return order;
    const int col = spec->Specs[0].ColumnIndex, cVal = Keys + (int)nKeys;
    const bool asc = spec->Specs[0].SortDirection != ImGuiSortDirection_Descending;
    auto num = [&](size_t i) -> double {
        const auto& r = f.rows[i];
        if (col == Id) return (double)r.id;
        if (col == Val) return r.val_loss < 0 ? NAN : r.val_loss;
        if (col >= Keys && col < cVal) return f.t.number[i][col - Keys];
        const float m[] = {f.t.routedExperts[i] ? r.load_cv : -1, f.t.routedHeads[i] ? r.head_cv : -1,
                           f.t.routedExperts[i] ? r.dropped : -1, r.tok_per_s, (float)r.steps};
        if (col >= cVal && col < cVal + 5) return m[col - cVal] < 0 ? NAN : m[col - cVal];
        return NAN;
    };
    auto str = [&](size_t i) -> std::string {
        const auto& r = f.rows[i];
        if (col == Name) return r.name;
        if (col == Status) return rl::run_status_name(r.status);
        if (col == Sweep) return r.sweep;
        if (col >= Keys && col < cVal) return f.t.text[i][col - Keys];
        std::string tags;
        for (const auto& g : r.tags) tags += g + ",";
        return tags;
    };
    const bool numeric = col == Id || col == Val || (col >= Keys && col < cVal && f.t.numeric[col - Keys]) || (col >= cVal && col < cVal + 5);
    std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        if (numeric) {
            const double u = num(x), v = num(y);
            if (std::isnan(u) || std::isnan(v)) return !std::isnan(u) && std::isnan(v);
            return asc ? u < v : u > v;
        }
        const std::string u = str(x), v = str(y);
        if (u.empty() || v.empty()) return !u.empty() && v.empty();
        return asc ? u < v : u > v;
    });
    spec->SpecsDirty = false;
    return order;
}

// One run's row: its tick (a click ticks it in the Runs dock), colour swatch and star, then its cells.
void drawRow(const RunData& run, const TuningState& s, Frame& f, ViewOutbox& out, size_t i, size_t nKeys) {
    const auto& r = f.rows[i];
    ImGui::TableNextRow();
    if (r.id == f.highlight) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg1, look().rowHighlight);
    ImGui::TableSetColumnIndex(Tick);
    ImGui::PushID((int)r.id);
    if (ImGui::Selectable("##row", f.ticked.count(r.id) > 0, ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowItemOverlap))
        out.toggleOverlay = r.id;
    if (ImGui::IsItemHovered()) f.hoveredNow = r.id, f.nowFromPlot = false;
    markTarget(out, "tuning.row", (int)r.id, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
    if (r.id == f.highlight && s.hoverFromPlot && !ImGui::IsItemVisible()) ImGui::SetScrollHereY();
    const ImVec2 p = ImGui::GetItemRectMin(), q = ImGui::GetItemRectMax();
    ImDrawList* cell = ImGui::GetWindowDrawList();  // the table's own scrolling window
    if (auto c = f.overlayColours.find(r.id); c != f.overlayColours.end())
        cell->AddRectFilled(ImVec2(p.x + 2, p.y + 3), ImVec2(p.x + 10, q.y - 3), c->second);
    const bool best = f.best.count(r.id) > 0;
    if (best) drawStar(cell, ImVec2(p.x + 22, (p.y + q.y) / 2), 6, gold());
    ImGui::TableSetColumnIndex(Val);
    if (best) ImGui::PushStyleColor(ImGuiCol_Text, gold());
    const auto sp = f.spread.find(r.id);
    if (sp != f.spread.end() && r.val_loss >= 0) ImGui::Text("%.4f ±%.3f", r.val_loss, sp->second.sd[0]);
    else ImGui::TextUnformatted(metricText(r.val_loss).c_str());
    if (best) ImGui::PopStyleColor();
    if (sp != f.spread.end() && ImGui::IsItemHovered())
        tooltip(out, "mean of " + std::to_string(sp->second.n) + " seeds; min " + metricText((float)sp->second.lo[0]) + ", max " +
                         metricText((float)sp->second.hi[0]) + ", sd " + metricText((float)sp->second.sd[0]));
    ImGui::TableSetColumnIndex(Id);
    ImGui::Text("%lld", (long long)r.id);
    ImGui::TableSetColumnIndex(Name);
    ImGui::TextUnformatted((shortText(r.name, 40) + (r.id == run.currentRunId ? " (current)" : "")).c_str());
    ImGui::TableSetColumnIndex(Status);
    ImGui::PushStyleColor(ImGuiCol_Text, statusColour(r.status));
    ImGui::TextUnformatted(rl::run_status_name(r.status));
    ImGui::PopStyleColor();
    if (ImGui::IsItemHovered() && !r.status_message.empty()) tooltip(out, r.status_message);
    ImGui::TableSetColumnIndex(Sweep);
    ImGui::TextUnformatted(r.sweep.c_str());
    for (size_t k = 0; k < nKeys; k++) {
        ImGui::TableSetColumnIndex(Keys + (int)k);
        ImGui::TextUnformatted(f.t.text[i][k].empty() ? "-" : f.t.text[i][k].c_str());
    }
    const int cVal = Keys + (int)nKeys;
    const std::string metrics[] = {metricText(f.t.routedExperts[i] ? r.load_cv : -1, "%.3f"),  // "-": no such router
                                   metricText(f.t.routedHeads[i] ? r.head_cv : -1, "%.3f"),
                                   metricText(f.t.routedExperts[i] ? r.dropped : -1, "%.3f"), metricText(r.tok_per_s, "%.0f"),
                                   std::to_string(r.steps)};
    for (int m = 0; m < 5; m++) {
        ImGui::TableSetColumnIndex(cVal + m);
        ImGui::TextUnformatted(metrics[m].c_str());
    }
    ImGui::TableSetColumnIndex(cVal + 5);
    std::string tags;
    for (const auto& g : r.tags) tags += (tags.empty() ? "" : ", ") + g;
    ImGui::TextUnformatted(tags.c_str());
    ImGui::PopID();
}

void drawRunTable(const RunData& run, const TuningState& s, Frame& f, ViewOutbox& out) {
    const size_t nKeys = std::min<size_t>(f.t.keys.size(), 48);  // ImGui tables hold 64 columns at most
    const int nCols = Keys + (int)nKeys + k_metricsAfter;
    const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV |
                                  ImGuiTableFlags_BordersOuter | ImGuiTableFlags_ScrollY | ImGuiTableFlags_ScrollX |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    // One table per set of columns: ImGui keeps a table's sort column by index, and a new key would
    // shift it onto another column.
    std::string tableId = "runs";
    for (size_t k = 0; k < nKeys; k++) tableId += "|" + f.t.keys[k];
    if (!ImGui::BeginTable(tableId.c_str(), nCols, flags, ImVec2(0, std::max(80.f, ImGui::GetContentRegionAvail().y - 4)))) return;
    setUpColumns(f, nKeys);
    for (size_t i : sortedRows(f, nKeys)) drawRow(run, s, f, out, i, nKeys);
    ImGui::EndTable();
}

}  // namespace

bool drawTuningView(const RunData& run, TuningState& s, ViewOutbox& out) {
    if (run.runs.empty()) {
        ImGui::Text("Tuning: no stored runs in this workspace yet. Train, or run a sweep (Run > Sweep...).");
        return false;
    }
    Frame f;
    drawFilters(run, s, out, f);
    if (f.rows.empty()) {
        ImGui::TextDisabled("No stored run matches the filter.");
        return false;
    }
    prepareFrame(run, s, f);
    ImGui::RadioButton("parallel coordinates", &s.plot, 0);
    ImGui::SameLine();
    ImGui::RadioButton("Pareto front", &s.plot, 1);
    ImGui::SameLine();
    ImGui::RadioButton("importance", &s.plot, 2);
    const float h = std::max(220.f, ImGui::GetContentRegionAvail().y * 0.46f);
    if (s.plot == 1) {
        drawParetoScatter(f.rows, f.spread, s, out, f.highlight, f.hoveredNow, h);
        f.nowFromPlot = f.hoveredNow != 0;
    } else if (s.plot == 2) {
        drawImportance(f.rows, f.t, out, h);
    } else {
        drawAxisPicker(s, f);
        drawParallelCoordinates(s, f, out);
    }
    drawRunTable(run, s, f, out);
    // The highlight follows the mouse; a change needs one more frame to show in both the plot and the table.
    const bool changed = f.hoveredNow != s.hovered;
    s.hovered = f.hoveredNow;
    if (f.hoveredNow) s.hoverFromPlot = f.nowFromPlot;
    return changed;
}
