#include "tuning_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "tune/importance.h"
#include "tune/pareto.h"
#include "widgets.h"

namespace {

const char* const k_metricLabels[] = {"val loss", "final loss", "tok/s", "load CV", "head CV", "dropped", "active params", "wall s"};

double minimised(double v, bool maximise) { return maximise ? -v : v; }

// One axis of the scatter: its range and pixel span.
struct Scale {
    double lo = 0, hi = 1;
    float p0 = 0, p1 = 1;  // pixels of lo and hi
    float at(double v) const { return hi > lo ? p0 + (float)((v - lo) / (hi - lo)) * (p1 - p0) : (p0 + p1) / 2; }
};
// The finite values' range, padded 5% of it (of the value itself where they are all one).
AxisRange rangeOf(const std::vector<double>& v) {
    AxisRange r;
    double lo = INFINITY, hi = -INFINITY;
    for (double x : v)
        if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
    if (!std::isfinite(lo)) return r;
    const double pad = hi > lo ? 0.05 * (hi - lo) : std::max(1e-9, 0.05 * std::abs(lo));
    r.lo = lo - pad, r.hi = hi + pad;
    return r;
}

void drawDiamond(ImDrawList* dl, ImVec2 c, float r, ImU32 col) {
    dl->AddQuad(ImVec2(c.x, c.y - r), ImVec2(c.x + r, c.y), ImVec2(c.x, c.y + r), ImVec2(c.x - r, c.y), col, 1.5f);
}

// The pickers above the scatter: x and y metrics with their directions, and the constraint.
void drawScatterControls(TuningState& s, const ParetoFront& pf) {
    auto picker = [](const char* id, int& m, bool& maximise) {
        ImGui::SetNextItemWidth(120);
        ImGui::Combo(id, &m, k_metricLabels, IM_ARRAYSIZE(k_metricLabels));
        ImGui::SameLine();
        int d = maximise ? 1 : 0;
        ImGui::SetNextItemWidth(70);
        const std::string dir = std::string("##dir") + id;
        if (ImGui::Combo(dir.c_str(), &d, "min\0max\0")) maximise = d == 1;
    };
    picker("across", s.paretoX, s.maxX);
    ImGui::SameLine(0, 20);
    picker("up", s.paretoY, s.maxY);
    ImGui::SameLine(0, 20);
    ImGui::SetNextItemWidth(160);
    ImGui::InputText("constraint", s.constraint, sizeof s.constraint);
    if (!pf.ok) {
        ImGui::SameLine();
        ImGui::TextColored(ImVec4(0.9f, 0.35f, 0.3f, 1), "%s", pf.error.c_str());
    }
}

// What the scatter shows of each row and how it draws it.
struct Mark {
    ImVec2 at;
    bool front = false, feasible = true, pruned = false, finished = false;
    ImVec2 out{0, 0};  // past the axes (a pruned run's rung value): which way, the mark held at their edge
    bool beyond() const { return out.x != 0 || out.y != 0; }
};

// V's pixel on S, held inside its span; OUT: -1 or 1 in pixels' direction where it had to be, else 0.
float clampedAt(const Scale& s, double v, float& out) {
    const float p = s.at(v), a = std::min(s.p0, s.p1), b = std::max(s.p0, s.p1);
    out = p < a - 0.5f ? -1.f : p > b + 0.5f ? 1.f : 0.f;
    return std::clamp(p, a, b);
}

// A pruned run's mark: a diamond with its step, or at the axes' edge a triangle pointing out of them.
void drawPrunedMark(ImDrawList* dl, const Mark& m, int steps, ImU32 grey, float lh) {
    if (!m.beyond()) {
        drawDiamond(dl, m.at, 5, grey);
    } else {
        const float n = std::hypot(m.out.x, m.out.y), dx = m.out.x / n, dy = m.out.y / n;  // unit, outwards
        const ImVec2 tip(m.at.x + 5 * dx, m.at.y + 5 * dy), base(m.at.x - 3 * dx, m.at.y - 3 * dy);
        dl->AddTriangle(tip, ImVec2(base.x - 5 * dy, base.y + 5 * dx), ImVec2(base.x + 5 * dy, base.y - 5 * dx), grey, 1.5f);
    }
    const std::string at = "@" + std::to_string(steps);
    dl->AddText(ImGui::GetFont(), ImGui::GetFontSize() * 0.8f, ImVec2(m.at.x + 6, m.at.y - (m.out.y < 0 ? 0 : lh * 0.9f)), grey, at.c_str());
}

// The seeds' min-max both ways, held inside the axes (a wide spread would run over the tick labels).
void drawErrorBars(ImDrawList* dl, const Mark& m, const RunSpread& sp, const TuningState& s, const Scale& sx, const Scale& sy) {
    const ImU32 c = withAlpha(look().text, 120);
    float out = 0;
    if (std::isfinite(sp.lo[s.paretoY]) && sp.hi[s.paretoY] > sp.lo[s.paretoY])
        dl->AddLine(ImVec2(m.at.x, clampedAt(sy, sp.lo[s.paretoY], out)), ImVec2(m.at.x, clampedAt(sy, sp.hi[s.paretoY], out)), c, 1.f);
    if (std::isfinite(sp.lo[s.paretoX]) && sp.hi[s.paretoX] > sp.lo[s.paretoX])
        dl->AddLine(ImVec2(clampedAt(sx, sp.lo[s.paretoX], out), m.at.y), ImVec2(clampedAt(sx, sp.hi[s.paretoX], out), m.at.y), c, 1.f);
}

// The marks' legend, right-aligned at `right` (its top right corner).
void drawScatterLegend(ImDrawList* dl, ImVec2 right, size_t onFront, ImU32 grey, ImU32 accent) {
    float lx = right.x;
    const float lh = ImGui::GetTextLineHeight();
    const std::string items[] = {"front (" + std::to_string(onFront) + ")", "dominated", "infeasible", "pruned @steps"};
    for (int k = 3; k >= 0; k--) {
        lx -= ImGui::CalcTextSize(items[k].c_str()).x + 26;
        const ImVec2 c(lx + 6, right.y + lh / 2);
        if (k == 0) dl->AddCircleFilled(c, 5, accent);
        if (k == 1) dl->AddCircleFilled(c, 4, grey);
        if (k == 2) dl->AddCircle(c, 4.5f, grey, 12, 1.5f);
        if (k == 3) drawDiamond(dl, c, 5, grey);
        dl->AddText(ImVec2(lx + 14, right.y), look().text, items[k].c_str());
    }
}

}  // namespace

ParetoFront paretoFront(const std::vector<rl::RunRecord>& rows, const TuningState& s) {
    ParetoFront pf;
    std::optional<rl::SweepConstraint> c;
    if (s.constraint[0]) {
        auto k = rl::sweep_constraint_parse(s.constraint);
        if (k) c = *k;
        else pf.ok = false, pf.error = "constraint " + k.status.msg;
    }
    std::vector<std::vector<double>> objs;
    std::vector<double> viol;
    std::vector<size_t> idx;
    for (size_t i = 0; i < rows.size(); i++) {
        double v = 0;
        if (c) {
            const double m = runMetric(rows[i], c->metric);
            const double past = c->at_most ? m - c->bound : c->bound - m;
            v = !std::isfinite(m) ? 0 : past > 0 ? past / std::max(std::abs(c->bound), 1e-9) : 0;
        }
        pf.violation.push_back(v);
        const double x = runMetric(rows[i], (rl::TuneMetric)s.paretoX), y = runMetric(rows[i], (rl::TuneMetric)s.paretoY);
        if (rows[i].status != rl::RunStatus::finished || !std::isfinite(x) || !std::isfinite(y)) continue;
        objs.push_back({minimised(x, s.maxX), minimised(y, s.maxY)});
        viol.push_back(v);
        idx.push_back(i);
    }
    for (int f : rl::pareto_front(objs, viol)) pf.front.push_back(idx[f]);
    return pf;
}

namespace {
// scatterAxes for the rows' x and y values already looked up.
std::pair<AxisRange, AxisRange> fitAxes(const std::vector<rl::RunRecord>& rows, const std::vector<double>& xs, const std::vector<double>& ys) {
    std::vector<double> fx, fy;
    for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].status != rl::RunStatus::pruned && std::isfinite(xs[i]) && std::isfinite(ys[i])) fx.push_back(xs[i]), fy.push_back(ys[i]);
    if (fx.size() < 2) fx = xs, fy = ys;
    return {rangeOf(fx), rangeOf(fy)};
}
}  // namespace

std::pair<AxisRange, AxisRange> scatterAxes(const std::vector<rl::RunRecord>& rows, const TuningState& s) {
    std::vector<double> xs, ys;
    for (const auto& r : rows) xs.push_back(runMetric(r, (rl::TuneMetric)s.paretoX)), ys.push_back(runMetric(r, (rl::TuneMetric)s.paretoY));
    return fitAxes(rows, xs, ys);
}

void drawParetoScatter(const std::vector<rl::RunRecord>& rows, const std::map<int64_t, RunSpread>& spread, TuningState& s,
                       ViewOutbox& out, int64_t highlight, int64_t& hoveredNow, float height) {
    const ParetoFront pf = paretoFront(rows, s);
    drawScatterControls(s, pf);
    const float w = ImGui::GetContentRegionAvail().x, lh = ImGui::GetTextLineHeight();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    dl->AddRectFilled(o, ImVec2(o.x + w, o.y + height), look().panel);
    std::vector<double> xs, ys;
    for (const auto& r : rows) xs.push_back(runMetric(r, (rl::TuneMetric)s.paretoX)), ys.push_back(runMetric(r, (rl::TuneMetric)s.paretoY));
    const auto [ax, ay] = fitAxes(rows, xs, ys);
    const Scale sx{ax.lo, ax.hi, o.x + 80, o.x + w - 50}, sy{ay.lo, ay.hi, o.y + height - 2 * lh - 10, o.y + 2 * lh + 8};
    // Grid and ticks.
    for (int k = 0; k <= 4; k++) {
        const double vx = sx.lo + (sx.hi - sx.lo) * k / 4, vy = sy.lo + (sy.hi - sy.lo) * k / 4;
        dl->AddLine(ImVec2(sx.at(vx), sy.p1), ImVec2(sx.at(vx), sy.p0), look().grid);
        dl->AddLine(ImVec2(sx.p0, sy.at(vy)), ImVec2(sx.p1, sy.at(vy)), look().grid);
        const std::string tx = legendNumber(vx), ty = legendNumber(vy);
        dl->AddText(ImVec2(sx.at(vx) - ImGui::CalcTextSize(tx.c_str()).x / 2, sy.p0 + 4), look().dim, tx.c_str());
        dl->AddText(ImVec2(sx.p0 - 8 - ImGui::CalcTextSize(ty.c_str()).x, sy.at(vy) - lh / 2), look().dim, ty.c_str());
    }
    char axis[96];
    std::snprintf(axis, sizeof axis, "%s (%s) ->", k_metricLabels[s.paretoX], s.maxX ? "max" : "min");
    dl->AddText(ImVec2(sx.p1 - ImGui::CalcTextSize(axis).x, o.y + height - lh - 4), look().text, axis);
    std::snprintf(axis, sizeof axis, "%s (%s)", k_metricLabels[s.paretoY], s.maxY ? "max" : "min");
    dl->AddText(ImVec2(o.x + 8, o.y + 6), look().text, axis);
    // The marks: dominated and infeasible grey, pruned as diamonds, the front on top and joined.
    std::vector<Mark> marks(rows.size());
    const std::set<size_t> onFront(pf.front.begin(), pf.front.end());
    const ImU32 grey = withAlpha(look().dim, 200), accent = look().gold;
    int beyond = 0;
    for (size_t i = 0; i < rows.size(); i++) {
        Mark& m = marks[i];
        m.at = ImVec2(std::isfinite(xs[i]) ? clampedAt(sx, xs[i], m.out.x) : NAN, std::isfinite(ys[i]) ? clampedAt(sy, ys[i], m.out.y) : NAN);
        m.front = onFront.count(i), m.feasible = pf.violation[i] <= 0, m.pruned = rows[i].status == rl::RunStatus::pruned;
        if (!std::isfinite(m.at.x) || !std::isfinite(m.at.y)) continue;
        beyond += m.beyond();
        if (auto sp = spread.find(rows[i].id); sp != spread.end() && !m.beyond()) drawErrorBars(dl, m, sp->second, s, sx, sy);
        if (m.pruned) {
            drawPrunedMark(dl, m, rows[i].steps, grey, lh);
        } else if (!m.feasible) {
            dl->AddCircle(m.at, 4.5f, grey, 12, 1.5f);
        } else if (!m.front) {
            dl->AddCircleFilled(m.at, 4, grey);
        }
    }
    for (size_t k = 0; k + 1 < pf.front.size(); k++) {  // the front as a staircase: what it guarantees between its points
        const ImVec2 a = marks[pf.front[k]].at, b = marks[pf.front[k + 1]].at;
        dl->AddLine(a, ImVec2(b.x, a.y), accent, 2.f);
        dl->AddLine(ImVec2(b.x, a.y), b, accent, 2.f);
    }
    for (size_t i : pf.front) dl->AddCircleFilled(marks[i].at, 5.5f, accent);
    // Hover: the nearest mark within 8 px; its tooltip; a click ticks it.
    const ImVec2 mouse = ImGui::GetIO().MousePos;
    double nearest = 8;
    size_t hov = rows.size();
    if (ImGui::IsMouseHoveringRect(o, ImVec2(o.x + w, o.y + height)) && ImGui::IsWindowHovered())
        for (size_t i = 0; i < rows.size(); i++) {
            if (!std::isfinite(marks[i].at.x) || !std::isfinite(marks[i].at.y)) continue;
            const double d = std::hypot(mouse.x - marks[i].at.x, mouse.y - marks[i].at.y);
            if (d < nearest) nearest = d, hov = i;
        }
    for (size_t i = 0; i < rows.size(); i++)
        if (std::isfinite(marks[i].at.x) && std::isfinite(marks[i].at.y))
            markTarget(out, "tuning.point", (int)rows[i].id, ImVec2(marks[i].at.x - 2, marks[i].at.y - 2), ImVec2(marks[i].at.x + 2, marks[i].at.y + 2));
    for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].id == highlight && std::isfinite(marks[i].at.x) && std::isfinite(marks[i].at.y)) dl->AddCircle(marks[i].at, 9, look().strong, 16, 2);
    if (hov < rows.size()) {
        const rl::RunRecord& r = rows[hov];
        hoveredNow = r.id;
        auto sp = spread.find(r.id);
        auto value = [&](int m) {
            char b[96];
            if (sp != spread.end()) std::snprintf(b, sizeof b, "%.4g ± %.2g (%d seeds)", runMetric(r, (rl::TuneMetric)m), sp->second.sd[m], sp->second.n);
            else std::snprintf(b, sizeof b, "%.4g", runMetric(r, (rl::TuneMetric)m));
            return std::string(b);
        };
        std::string tip = "#" + std::to_string(r.id) + " " + r.name + " (" + rl::run_status_name(r.status) + ", " + std::to_string(r.steps) + " steps)\n";
        tip += std::string(k_metricLabels[s.paretoX]) + " " + value(s.paretoX) + "\n" + k_metricLabels[s.paretoY] + " " + value(s.paretoY);
        tip += marks[hov].front ? "\non the front" : marks[hov].pruned ? "\npruned at a rung: measured at its last step, not the end" : !marks[hov].feasible ? std::string("\ninfeasible: ") + s.constraint : "";
        tooltip(out, tip);
        if (ImGui::IsMouseClicked(0)) out.toggleOverlay = r.id;
    }
    drawScatterLegend(dl, ImVec2(o.x + w - 20, o.y + 6), pf.front.size(), grey, accent);
    if (beyond) {
        const std::string note = std::to_string(beyond) + " pruned at a rung lie past the axes (at their edge, hover for values)";
        dl->AddText(ImVec2(o.x + 8, o.y + height - lh - 4), look().dim, note.c_str());
    }
    ImGui::Dummy(ImVec2(w, height));
}

std::vector<double> keyImportance(const std::vector<rl::RunRecord>& rows, const RunTable& t, std::vector<std::string>& keys) {
    std::vector<rl::TuneParam> space;
    std::vector<size_t> cols;
    std::vector<std::vector<std::string>> cats;
    std::vector<size_t> used;
    for (size_t i = 0; i < rows.size(); i++)
        if (rows[i].status == rl::RunStatus::finished && rows[i].val_loss >= 0) used.push_back(i);
    for (size_t k = 0; k < t.keys.size(); k++) {
        if (t.keys[k] == "train.seed" || t.keys[k] == "train.steps") continue;
        rl::TuneParam p;
        p.key = t.keys[k];
        std::vector<std::string> c;
        if (t.numeric[k]) {
            double lo = INFINITY, hi = -INFINITY;
            for (size_t i : used)
                if (std::isfinite(t.number[i][k])) lo = std::min(lo, t.number[i][k]), hi = std::max(hi, t.number[i][k]);
            if (!(hi > lo)) continue;
            p.lo = lo, p.hi = hi, p.log = lo > 0 && hi / lo >= 20;
        } else {
            for (size_t i : used)
                if (std::find(c.begin(), c.end(), t.text[i][k]) == c.end()) c.push_back(t.text[i][k]);
            if (c.size() < 2) continue;
            p.kind = rl::TuneParam::Kind::choice, p.n_choices = (int)c.size(), p.hi = (double)c.size() - 1;
        }
        space.push_back(p), cols.push_back(k), cats.push_back(c), keys.push_back(p.key);
    }
    if (used.size() < 10 || space.empty()) return {};
    std::vector<rl::TunePoint> x;
    std::vector<double> loss;
    for (size_t i : used) {
        rl::TunePoint pt;
        for (size_t k = 0; k < space.size(); k++) {
            const size_t c = cols[k];
            pt.push_back(space[k].kind == rl::TuneParam::Kind::choice
                             ? double(std::find(cats[k].begin(), cats[k].end(), t.text[i][c]) - cats[k].begin())
                             : std::isfinite(t.number[i][c]) ? t.number[i][c] : space[k].lo);
        }
        x.push_back(pt), loss.push_back(rows[i].val_loss);
    }
    return rl::tune_importance(space, x, loss);
}

void drawImportance(const std::vector<rl::RunRecord>& rows, const RunTable& t, ViewOutbox& out, float height) {
    std::vector<std::string> keys;
    const std::vector<double> imp = keyImportance(rows, t, keys);
    size_t finished = 0;
    for (const auto& r : rows) finished += r.status == rl::RunStatus::finished && r.val_loss >= 0;
    if (imp.empty()) {
        ImGui::TextDisabled("Importance needs 10 finished runs (configurations, with seeds grouped) and a key that differs: %zu here.", finished);
        return;
    }
    ImGui::TextWrapped("Which keys matter for the validation loss: PED-ANOVA (Watanabe et al. 2023), how differently a key's values fall "
                "among the best 10%% of the %zu finished runs than among all of them; shares sum to 100%%.", finished);
    std::vector<size_t> order(imp.size());
    for (size_t k = 0; k < order.size(); k++) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return imp[a] > imp[b]; });
    const float w = ImGui::GetContentRegionAvail().x, lh = ImGui::GetTextLineHeight();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    float labelW = 0;
    for (const auto& k : keys) labelW = std::max(labelW, ImGui::CalcTextSize(k.c_str()).x);
    const float rowH = std::min(2.2f * lh, std::max(lh * 1.3f, (height - lh) / std::max<size_t>(1, order.size())));
    const float barX = o.x + labelW + 20, barW = std::max(60.f, w - labelW - 90);
    for (size_t r = 0; r < order.size(); r++) {
        const size_t k = order[r];
        const float y = o.y + r * rowH;
        dl->AddText(ImVec2(o.x + 4, y + (rowH - lh) / 2), look().text, keys[k].c_str());
        dl->AddRectFilled(ImVec2(barX, y + 3), ImVec2(barX + barW, y + rowH - 3), look().track);
        dl->AddRectFilled(ImVec2(barX, y + 3), ImVec2(barX + barW * (float)imp[k], y + rowH - 3), ramp(0.35f + 0.6f * (float)imp[k]));
        char pct[16];
        std::snprintf(pct, sizeof pct, "%.0f%%", 100 * imp[k]);
        dl->AddText(ImVec2(barX + barW + 6, y + (rowH - lh) / 2), look().text, pct);
        markTarget(out, "tuning.importance", (int)r, ImVec2(barX, y), ImVec2(barX + barW, y + rowH));
    }
    ImGui::Dummy(ImVec2(w, rowH * order.size()));
}
