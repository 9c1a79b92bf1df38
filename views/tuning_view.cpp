// The tuning view (docs/architecture.md §13): every stored run of the workspace in one sortable table
// with the config keys that differ among the listed runs and the final metrics, and a
// parallel-coordinates plot of the chosen keys against validation loss. Hovering a line or a row
// highlights the run in both; a click ticks it in the Runs dock (the curves view overlays it).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "run_table.h"
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

}  // namespace

bool drawTuningView(const RunData& run, TuningState& s, ViewOutbox& out) {
    if (run.runs.empty()) {
        ImGui::Text("Tuning: no stored runs in this workspace yet. Train, or run a sweep (Run > Sweep...).");
        return false;
    }
    // ---------------------------------------------------------------- filters
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

    std::vector<rl::RunRecord> rows;
    for (const auto& r : run.runs)
        if ((s.sweep.empty() || r.sweep == s.sweep) && tagMatches(r, s.tag)) rows.push_back(r);
    if (rows.empty()) {
        ImGui::TextDisabled("No stored run matches the filter.");
        return false;
    }
    const RunTable t = runTable(rows);
    std::map<std::string, size_t> bestOf;  // sweep -> row with the lowest validation loss
    for (size_t i = 0; i < rows.size(); i++) {
        const auto& r = rows[i];
        if (r.sweep.empty() || r.val_loss < 0) continue;
        auto it = bestOf.find(r.sweep);
        if (it == bestOf.end() || r.val_loss < rows[it->second].val_loss) bestOf[r.sweep] = i;
    }
    std::set<int64_t> best, ticked;
    for (const auto& [w, i] : bestOf) best.insert(rows[i].id);
    std::map<int64_t, ImU32> overlayColours;
    for (const auto& o : run.overlays) ticked.insert(o.id), overlayColours[o.id] = o.colour;
    const int64_t highlight = s.hovered ? s.hovered : s.pinned;
    int64_t hoveredNow = 0;
    bool nowFromPlot = false;

    // ---------------------------------------------------------------- axes of the plot
    if (t.keys.empty()) {
        ImGui::TextDisabled("All listed runs share one config: the plot has the validation-loss axis only.");
    } else {
        ImGui::TextDisabled("axes:");
        for (size_t k = 0; k < t.keys.size(); k++) {
            auto it = s.axes.find(t.keys[k]);
            bool on = it != s.axes.end() ? it->second : (bool)t.numeric[k];
            const std::string label = shortName(t.keys[k], t.keys) + "##" + t.keys[k];
            sameLineIfFits(ImGui::CalcTextSize(shortName(t.keys[k], t.keys).c_str()).x + ImGui::GetFrameHeight() + 12);
            if (ImGui::Checkbox(label.c_str(), &on)) s.axes[t.keys[k]] = on;
            if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", t.keys[k].c_str());
        }
    }
    std::vector<size_t> plotted;  // rows with a validation loss
    for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].val_loss >= 0) plotted.push_back(i);
    std::vector<Axis> axes;
    for (size_t k = 0; k < t.keys.size(); k++) {
        auto it = s.axes.find(t.keys[k]);
        if (!(it != s.axes.end() ? it->second : (bool)t.numeric[k])) continue;
        Axis a;
        a.key = t.keys[k], a.column = (int)k, a.numeric = t.numeric[k];
        std::set<std::string> cats;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i : plotted) {
            if (!t.text[i][k].empty()) cats.insert(t.text[i][k]);
            if (std::isfinite(t.number[i][k])) lo = std::min(lo, t.number[i][k]), hi = std::max(hi, t.number[i][k]);
        }
        a.categories.assign(cats.begin(), cats.end());
        a.lo = lo, a.hi = hi;
        a.log = a.numeric && lo > 0 && hi / lo >= 20;
        axes.push_back(std::move(a));
    }
    {
        Axis v;
        v.lo = INFINITY, v.hi = -INFINITY;
        for (size_t i : plotted) v.lo = std::min(v.lo, (double)rows[i].val_loss), v.hi = std::max(v.hi, (double)rows[i].val_loss);
        axes.push_back(v);
    }
    const Axis& valAxis = axes.back();

    // ---------------------------------------------------------------- parallel coordinates
    const float w = ImGui::GetContentRegionAvail().x;
    const float h = std::max(220.f, ImGui::GetContentRegionAvail().y * 0.46f);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float lh = ImGui::GetTextLineHeight();
    // Title and colour scale (its values under it) on top, two rows of axis titles, then the axes.
    const ImVec2 a(o.x + 70, o.y + 4 * lh + 24), b(o.x + w - 150, o.y + h - 24);
    dl->AddRectFilled(ImVec2(o.x, o.y), ImVec2(o.x + w, o.y + h), look().panel);
    char title[160];
    std::snprintf(title, sizeof title, "%zu runs with a validation loss%s; colour:", plotted.size(),
                  bestOf.empty() ? "" : " (star: the best of its sweep)");
    dl->AddText(ImVec2(o.x + 8, o.y + 4), look().text, title);
    if (std::isfinite(valAxis.lo)) {  // lowest loss = the ramp's top (yellow)
        const ImVec2 at(o.x + 16 + ImGui::CalcTextSize(title).x, o.y + 4 + lh * 0.2f);
        colourLegend("val loss", legendNumber(valAxis.hi), legendNumber((valAxis.lo + valAxis.hi) / 2), legendNumber(valAxis.lo), 120,
                     nullptr, &at);
    }
    auto axisX = [&](size_t i) { return axes.size() < 2 ? (a.x + b.x) / 2 : a.x + (b.x - a.x) * float(i) / float(axes.size() - 1); };
    auto yOf = [&](double p) { return b.y - (b.y - a.y) * (float)p; };
    // Narrow spacing (many axes): titles alternate between two rows and the middle tick goes.
    const float spacing = axes.size() < 2 ? b.x - a.x : (b.x - a.x) / float(axes.size() - 1);
    // Titles that would run into their neighbours alternate rows too, and one still wider than the room
    // two rows give it is shortened (its whole key on hover).
    std::vector<std::string> names;
    float widest = 0;
    for (const Axis& ax : axes) {
        names.push_back(ax.key.empty() ? "val loss" : shortName(ax.key, t.keys) + (ax.log ? " (log)" : ""));
        widest = std::max(widest, ImGui::CalcTextSize(names.back().c_str()).x);
    }
    const bool narrow = spacing < 110 || widest > spacing - 10;
    const float room = (narrow ? 2 * spacing : spacing) - 10;
    for (size_t i = 0; i < axes.size(); i++) {
        const Axis& ax = axes[i];
        const float x = axisX(i);
        dl->AddLine(ImVec2(x, a.y), ImVec2(x, b.y), look().axis, 1.5f);
        std::string name = names[i];
        if (const float wide = ImGui::CalcTextSize(name.c_str()).x; wide > room && axes.size() > 1)
            name = shortText(name, std::max<size_t>(4, (size_t)(name.size() * room / wide)));
        const ImVec2 ts = ImGui::CalcTextSize(name.c_str());
        const float ty = narrow && i % 2 ? a.y - lh - 4 : a.y - 2 * lh - 4;
        dl->AddText(ImVec2(x - ts.x / 2, ty), ax.key.empty() ? gold() : look().text, name.c_str());
        if (ImGui::IsMouseHoveringRect(ImVec2(x - ts.x / 2, ty), ImVec2(x + ts.x / 2, ty + lh)))
            ImGui::SetTooltip("%s", ax.key.empty() ? "validation cross-entropy at the end of the run" : ax.key.c_str());
        if (plotted.empty()) continue;
        if (!ax.numeric) {
            for (const auto& c : ax.categories) dl->AddText(ImVec2(x + 5, yOf(ax.pos(0, c)) - halfLine()), look().dim, shortText(c, 14).c_str());
        } else if (std::isfinite(ax.lo)) {
            std::vector<double> ticks = {ax.lo, ax.hi};
            if (ax.hi > ax.lo && !narrow) ticks.push_back(ax.log ? std::sqrt(ax.lo * ax.hi) : (ax.lo + ax.hi) / 2);
            for (double v : ticks) {
                const float y = yOf(ax.pos(v, ""));
                dl->AddLine(ImVec2(x - 4, y), ImVec2(x + 4, y), look().axis);
                dl->AddText(ImVec2(x + 6, y - halfLine()), look().dim, tableNumber(v).c_str());
            }
        }
    }
    // Each run's line through its value on every axis; a missing value breaks the line.
    std::vector<std::vector<ImVec2>> lines(rows.size());
    for (size_t i : plotted) {
        for (size_t k = 0; k < axes.size(); k++) {
            const Axis& ax = axes[k];
            const double p = ax.key.empty() ? ax.pos(rows[i].val_loss, "") : ax.pos(t.number[i][ax.column], t.text[i][ax.column]);
            lines[i].push_back(std::isfinite(p) ? ImVec2(axisX(k), yOf(p)) : ImVec2(NAN, NAN));
        }
    }
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    const bool inPlot = ImGui::IsMouseHoveringRect(ImVec2(o.x, a.y - 4), ImVec2(o.x + w, b.y + 4)) && ImGui::IsWindowHovered();
    double nearest = 6.0;  // pixels
    auto drawLine = [&](size_t i, ImU32 col, float thick) {
        for (size_t k = 0; k + 1 < lines[i].size(); k++)
            if (std::isfinite(lines[i][k].x) && std::isfinite(lines[i][k + 1].x)) dl->AddLine(lines[i][k], lines[i][k + 1], col, thick);
    };
    dl->PushClipRect(ImVec2(o.x, o.y), ImVec2(o.x + w, o.y + h), true);
    size_t highlightRow = rows.size();
    for (size_t i : plotted) {
        const double shade = valAxis.hi > valAxis.lo ? 1.0 - (rows[i].val_loss - valAxis.lo) / (valAxis.hi - valAxis.lo) : 1.0;
        if (rows[i].id == highlight) highlightRow = i;
        else {
            // On the light panel the ramp's yellow end (the best runs) all but vanishes: a grey casing
            // under each line keeps it visible and the colour still matches the scale.
            if (look().light) drawLine(i, IM_COL32(110, 110, 120, 200), 3.6f);
            drawLine(i, withAlpha(ramp((float)shade), look().light ? 255 : 210), 1.8f);
        }
        if (inPlot)
            for (size_t k = 0; k + 1 < lines[i].size(); k++)
                if (std::isfinite(lines[i][k].x) && std::isfinite(lines[i][k + 1].x)) {
                    const double d = distanceToSegment(mouse, lines[i][k], lines[i][k + 1]);
                    if (d < nearest) nearest = d, hoveredNow = rows[i].id, nowFromPlot = true;
                }
    }
    for (size_t i : plotted) {
        if (best.count(rows[i].id) && std::isfinite(lines[i].back().x)) drawStar(dl, lines[i].back(), 7, gold());
        const size_t n = lines[i].size();  // the middle of its last segment, into the val-loss axis
        if (n >= 2 && std::isfinite(lines[i][n - 2].x) && std::isfinite(lines[i][n - 1].x)) {
            const ImVec2 m((lines[i][n - 2].x + lines[i][n - 1].x) / 2, (lines[i][n - 2].y + lines[i][n - 1].y) / 2);
            markTarget(out, "tuning.line", (int)rows[i].id, ImVec2(m.x - 1, m.y - 1), ImVec2(m.x + 1, m.y + 1));
        }
    }
    if (highlightRow < rows.size()) {  // on top, with its values written at each axis
        const auto& r = rows[highlightRow];
        drawLine(highlightRow, highlightColour(), 3.5f);
        for (size_t k = 0; k < axes.size(); k++) {
            const ImVec2 p = lines[highlightRow][k];
            if (!std::isfinite(p.x)) continue;
            dl->AddCircleFilled(p, 4.5f, highlightColour());
            const std::string v = axes[k].key.empty() ? metricText(r.val_loss) : t.text[highlightRow][axes[k].column];
            const ImVec2 ts = ImGui::CalcTextSize(v.c_str());
            const bool below = p.y - ts.y - 4 < a.y;  // near the top: under the point, clear of the axis titles
            const ImVec2 at(p.x - ts.x - 8, below ? p.y + 4 : p.y - ts.y - 4);
            dl->AddRectFilled(ImVec2(at.x - 2, at.y - 1), ImVec2(at.x + ts.x + 2, at.y + ts.y + 1), look().backdrop, 3);
            dl->AddText(at, highlightColour(), v.c_str());
        }
        char lab[32];
        std::snprintf(lab, sizeof lab, "#%lld", (long long)r.id);
        dl->AddText(ImVec2(b.x + 60, lines[highlightRow].back().y - halfLine()), highlightColour(), lab);
    }
    dl->PopClipRect();
    if (hoveredNow && nowFromPlot) {
        size_t i = 0;
        while (rows[i].id != hoveredNow) i++;
        std::string tip = "#" + std::to_string(rows[i].id) + " " + rows[i].name + " (" + rl::run_status_name(rows[i].status) + ")";
        for (size_t k = 0; k < t.keys.size(); k++) tip += "\n" + t.keys[k] + " = " + (t.text[i][k].empty() ? "-" : t.text[i][k]);
        tip += "\nval loss " + metricText(rows[i].val_loss) + (best.count(rows[i].id) ? "  (best of " + rows[i].sweep + ")" : "");
        tooltip(out, tip);
        if (ImGui::IsMouseClicked(0)) out.toggleOverlay = hoveredNow;
    }
    ImGui::Dummy(ImVec2(w, h));

    // ---------------------------------------------------------------- the table
    const size_t nKeys = std::min<size_t>(t.keys.size(), 48);  // ImGui tables hold 64 columns at most
    // The ranking (validation loss) first, beside the run's id and name, all three frozen when the
    // table scrolls sideways; the differing keys, then the other metrics.
    enum Fixed { Tick, Val, Id, Name, Status, Sweep, Keys };
    const int nAfter = 6;  // load CV, head CV, dropped, tok/s, steps, tags
    const int nCols = Keys + (int)nKeys + nAfter, cVal = Keys + (int)nKeys;  // cVal: the first metric after the keys
    const ImGuiTableFlags flags = ImGuiTableFlags_Sortable | ImGuiTableFlags_RowBg | ImGuiTableFlags_BordersInnerV |
                                  ImGuiTableFlags_BordersOuter | ImGuiTableFlags_ScrollY | ImGuiTableFlags_ScrollX |
                                  ImGuiTableFlags_Resizable | ImGuiTableFlags_SizingFixedFit;
    // One table per set of columns: ImGui keeps a table's sort column by index, and a new key would
    // shift it onto another column.
    std::string tableId = "runs";
    for (size_t k = 0; k < nKeys; k++) tableId += "|" + t.keys[k];
    if (ImGui::BeginTable(tableId.c_str(), nCols, flags, ImVec2(0, std::max(80.f, ImGui::GetContentRegionAvail().y - 4)))) {
        ImGui::TableSetupScrollFreeze(Name + 1, 1);
        ImGui::TableSetupColumn("", ImGuiTableColumnFlags_NoSort | ImGuiTableColumnFlags_NoResize, 34);
        ImGui::TableSetupColumn("val loss", ImGuiTableColumnFlags_DefaultSort | ImGuiTableColumnFlags_PreferSortAscending);
        ImGui::TableSetupColumn("id");
        ImGui::TableSetupColumn("name");
        ImGui::TableSetupColumn("status");
        ImGui::TableSetupColumn("sweep");
        for (size_t k = 0; k < nKeys; k++) ImGui::TableSetupColumn(shortName(t.keys[k], t.keys).c_str());
        ImGui::TableSetupColumn("load CV");
        ImGui::TableSetupColumn("head CV");
        ImGui::TableSetupColumn("dropped");
        ImGui::TableSetupColumn("tok/s");
        ImGui::TableSetupColumn("steps");
        ImGui::TableSetupColumn("tags");
        // Headers by hand: a key's column is its last part; hovering shows the whole key.
        ImGui::TableNextRow(ImGuiTableRowFlags_Headers);
        for (int c = 0; c < nCols; c++) {
            if (!ImGui::TableSetColumnIndex(c)) continue;
            ImGui::TableHeader(ImGui::TableGetColumnName(c));
            if (c >= Keys && c < cVal && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", t.keys[c - Keys].c_str());
        }
        // Sort by the header the user clicked (ImGui keeps the spec); unmeasured values (-1, "") go last.
        std::vector<size_t> order(rows.size());
        for (size_t i = 0; i < rows.size(); i++) order[i] = i;
        if (ImGuiTableSortSpecs* spec = ImGui::TableGetSortSpecs(); spec && spec->SpecsCount > 0) {
            const int col = spec->Specs[0].ColumnIndex;
            const bool asc = spec->Specs[0].SortDirection != ImGuiSortDirection_Descending;
            auto num = [&](size_t i) -> double {
                const auto& r = rows[i];
                if (col == Id) return (double)r.id;
                if (col == Val) return r.val_loss < 0 ? NAN : r.val_loss;
                if (col >= Keys && col < cVal) return t.number[i][col - Keys];
                const float m[] = {t.routedExperts[i] ? r.load_cv : -1, t.routedHeads[i] ? r.head_cv : -1,
                                   t.routedExperts[i] ? r.dropped : -1, r.tok_per_s, (float)r.steps};
                if (col >= cVal && col < cVal + 5) return m[col - cVal] < 0 ? NAN : m[col - cVal];
                return NAN;
            };
            auto str = [&](size_t i) -> std::string {
                const auto& r = rows[i];
                if (col == Name) return r.name;
                if (col == Status) return rl::run_status_name(r.status);
                if (col == Sweep) return r.sweep;
                if (col >= Keys && col < cVal) return t.text[i][col - Keys];
                std::string tags;
                for (const auto& g : r.tags) tags += g + ",";
                return tags;
            };
            const bool numeric = col == Id || col == Val || (col >= Keys && col < cVal && t.numeric[col - Keys]) || (col >= cVal && col < cVal + 5);
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
        }
        for (size_t i : order) {
            const auto& r = rows[i];
            ImGui::TableNextRow();
            if (r.id == highlight) ImGui::TableSetBgColor(ImGuiTableBgTarget_RowBg1, look().rowHighlight);
            ImGui::TableSetColumnIndex(Tick);
            ImGui::PushID((int)r.id);
            if (ImGui::Selectable("##row", ticked.count(r.id) > 0, ImGuiSelectableFlags_SpanAllColumns | ImGuiSelectableFlags_AllowItemOverlap))
                out.toggleOverlay = r.id;
            if (ImGui::IsItemHovered()) hoveredNow = r.id, nowFromPlot = false;
            markTarget(out, "tuning.row", (int)r.id, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
            if (r.id == highlight && s.hoverFromPlot && !ImGui::IsItemVisible()) ImGui::SetScrollHereY();
            const ImVec2 p = ImGui::GetItemRectMin(), q = ImGui::GetItemRectMax();
            ImDrawList* cell = ImGui::GetWindowDrawList();  // the table's own scrolling window
            if (auto c = overlayColours.find(r.id); c != overlayColours.end())
                cell->AddRectFilled(ImVec2(p.x + 2, p.y + 3), ImVec2(p.x + 10, q.y - 3), c->second);
            if (best.count(r.id)) drawStar(cell, ImVec2(p.x + 22, (p.y + q.y) / 2), 6, gold());
            ImGui::TableSetColumnIndex(Val);
            if (best.count(r.id)) ImGui::PushStyleColor(ImGuiCol_Text, gold());
            ImGui::TextUnformatted(metricText(r.val_loss).c_str());
            if (best.count(r.id)) ImGui::PopStyleColor();
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
                ImGui::TextUnformatted(t.text[i][k].empty() ? "-" : t.text[i][k].c_str());
            }
            ImGui::TableSetColumnIndex(cVal);
            ImGui::TextUnformatted(metricText(t.routedExperts[i] ? r.load_cv : -1, "%.3f").c_str());  // "-": no such router
            ImGui::TableSetColumnIndex(cVal + 1);
            ImGui::TextUnformatted(metricText(t.routedHeads[i] ? r.head_cv : -1, "%.3f").c_str());
            ImGui::TableSetColumnIndex(cVal + 2);
            ImGui::TextUnformatted(metricText(t.routedExperts[i] ? r.dropped : -1, "%.3f").c_str());
            ImGui::TableSetColumnIndex(cVal + 3);
            ImGui::TextUnformatted(metricText(r.tok_per_s, "%.0f").c_str());
            ImGui::TableSetColumnIndex(cVal + 4);
            ImGui::Text("%d", r.steps);
            ImGui::TableSetColumnIndex(cVal + 5);
            std::string tags;
            for (const auto& g : r.tags) tags += (tags.empty() ? "" : ", ") + g;
            ImGui::TextUnformatted(tags.c_str());
            ImGui::PopID();
        }
        ImGui::EndTable();
    }
    // The highlight follows the mouse; a change needs one more frame to show in both the plot and the table.
    const bool changed = hoveredNow != s.hovered;
    s.hovered = hoveredNow;
    if (hoveredNow) s.hoverFromPlot = nowFromPlot;
    return changed;
}
