// The experiments view (issue 24): on a model nothing trains (a finished run, a model folder), the
// routing keys as live controls with the numbers of the unchanged model beside them, perplexity
// against active compute over top-k, bias calibration's curve, and specialisation on the user's
// domains (its matrices are drawn by the experts view). The session runs each request on the thread
// that owns the model (app/session_experiments.cpp); this view only asks and draws.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "views.h"
#include "widgets.h"

namespace {

using rl::ExperimentKind;
using rl::ExperimentResult;

const ExperimentResult& last(const RunData& run, ExperimentKind k) { return run.experiments[(size_t)k]; }

rl::Interventions interventionsOf(const ExperimentsState& s) {
    rl::Interventions iv;
    iv.top_k = s.topK;
    iv.renorm = s.renorm == 0 ? -1 : s.renorm == 1 ? 1 : 0;
    iv.mask = s.mask;
    iv.capacity_factor = s.capacity;
    iv.mask_least_used = s.maskLeastUsed;
    return iv;
}

}  // namespace

rl::ExperimentRequest experimentRequest(const ExperimentsState& s, ExperimentKind k) {
    rl::ExperimentRequest r;
    r.kind = k;
    r.iv = interventionsOf(s);
    r.bias_off = s.biasOff;
    r.text_file = s.textFile;
    r.tokens = s.tokens;
    r.context = s.context;
    if (k == ExperimentKind::sweep) r.ks = s.sweepKs;
    if (k == ExperimentKind::analyse) {
        r.tokens = s.domainTokens;
        std::istringstream in(s.domains);
        for (std::string line; std::getline(in, line);)
            if (line.find_first_not_of(" \t\r") != std::string::npos) r.domains.push_back(line);
    }
    return r;
}

namespace {

// Everything a compare's numbers depend on, as one string: a change of any sends the request again.
std::string compareKeys(const ExperimentsState& s) {
    char b[128];
    std::snprintf(b, sizeof b, "%d|%d|%.3f|%d|%d|%d|%d|", s.topK, s.renorm, s.capacity, s.biasOff, s.tokens, s.context,
                  s.maskLeastUsed);
    return b + std::string(s.mask) + "|" + s.textFile;
}

std::string millions(double v) {
    char b[32];
    if (v >= 1e9) std::snprintf(b, sizeof b, "%.2fB", v / 1e9);
    else if (v >= 1e6) std::snprintf(b, sizeof b, "%.1fM", v / 1e6);
    else std::snprintf(b, sizeof b, "%.0fk", v / 1e3);
    return b;
}

double meanOf(const rl::EvalReport& r, double rl::EvalLayer::*f) {
    double m = 0;
    for (const auto& l : r.layers) m += l.*f;
    return r.layers.empty() ? 0 : m / r.layers.size();
}

// The keys. true when one changed this frame.
bool drawKeys(const RunData& run, ExperimentsState& s) {
    const int E = std::max(1, run.probe.n_experts);
    bool changed = false;
    ImGui::PushItemWidth(160);
    changed |= ImGui::SliderInt("top-k (0 = the model's)", &s.topK, 0, E, "%d", k_clamp);
    ImGui::SameLine(0, 24);
    const char* renorms[] = {"the model's", "renormalise", "plain probabilities"};
    changed |= ImGui::Combo("weights", &s.renorm, renorms, 3);
    changed |= ImGui::InputText("mask experts (3,5; 0:3 = layer 0 only)", s.mask, sizeof s.mask,
                                ImGuiInputTextFlags_EnterReturnsTrue);
    ImGui::SameLine(0, 24);
    changed |= ImGui::SliderInt("mask least used per layer (compare)", &s.maskLeastUsed, 0, std::max(0, E - 1), "%d", k_clamp);
    changed |= ImGui::SliderFloat("capacity factor (0 = none)", &s.capacity, 0.f, 4.f, "%.2f", k_clamp);
    const bool hasBias = !run.probe.layers.empty() && std::any_of(run.probe.layers.begin(), run.probe.layers.end(),
                                                                  [](const rl::ProbeLayer& L) { return !L.expert_bias.empty(); });
    if (hasBias || s.biasOff) {
        changed |= ImGui::Checkbox("selection biases off", &s.biasOff);
        ImGui::SameLine(0, 24);
    }
    ImGui::Checkbox("live (evaluate on each change)", &s.live);
    ImGui::InputText("held-out text file (empty = the validation text)", s.textFile, sizeof s.textFile);
    changed |= ImGui::IsItemDeactivatedAfterEdit();
    changed |= ImGui::SliderInt("tokens", &s.tokens, 64, 65536, "%d", k_clamp | ImGuiSliderFlags_Logarithmic);
    ImGui::SameLine(0, 24);
    changed |= ImGui::SliderInt("context", &s.context, 16, 4096, "%d", k_clamp | ImGuiSliderFlags_Logarithmic);
    ImGui::PopItemWidth();
    return changed;
}

// unchanged | intervention | change, then per layer.
void drawCompare(const ExperimentResult& r) {
    if (r.base.tokens == 0) return;  // nothing measured yet (or cancelled before the unchanged model's first window)
    const rl::EvalReport &a = r.base, &b = r.changed;
    const bool both = b.tokens > 0;
    ImGui::Text("On %lld held-out tokens in windows of %d: the unchanged model against %s.", (long long)r.text_tokens,
                a.context, r.what.c_str());
    if (r.applied.mask.find(':') != std::string::npos)  // the least used, as the unchanged model measured them
        ImGui::TextWrapped("masked (layer:expert): %s", r.applied.mask.c_str());
    const ImGuiTableFlags f = ImGuiTableFlags_Borders | ImGuiTableFlags_SizingFixedFit | ImGuiTableFlags_RowBg;
    if (ImGui::BeginTable("compare", 4, f)) {
        for (const char* h : {"", "unchanged", "intervention", "change"}) ImGui::TableSetupColumn(h);
        ImGui::TableHeadersRow();
        auto row = [&](const char* name, double x, double y, const char* fmt, bool rel) {
            char bx[32], by[32], bd[32] = "";
            std::snprintf(bx, sizeof bx, fmt, x);
            std::snprintf(by, sizeof by, fmt, y);
            if (both && rel && x != 0) std::snprintf(bd, sizeof bd, "%+.1f%%", 100 * (y / x - 1));
            else if (both) std::snprintf(bd, sizeof bd, "%+.3f", y - x);
            ImGui::TableNextRow();
            ImGui::TableNextColumn(), ImGui::TextUnformatted(name);
            ImGui::TableNextColumn(), ImGui::TextUnformatted(bx);
            ImGui::TableNextColumn(), ImGui::TextUnformatted(both ? by : "...");
            ImGui::TableNextColumn(), ImGui::TextUnformatted(bd);
        };
        row("perplexity", a.perplexity, b.perplexity, "%.3f", true);
        row("active params / token (M)", a.active_params / 1e6, b.active_params / 1e6, "%.2f", true);
        row("mean load CV", meanOf(a, &rl::EvalLayer::load_cv), meanOf(b, &rl::EvalLayer::load_cv), "%.3f", false);
        row("mean dropped share", meanOf(a, &rl::EvalLayer::dropped), meanOf(b, &rl::EvalLayer::dropped), "%.4f", false);
        row("experts / token", meanOf(a, &rl::EvalLayer::experts_per_token), meanOf(b, &rl::EvalLayer::experts_per_token), "%.2f", false);
        row("forward time (s)", a.forward_s, b.forward_s, "%.2f", true);
        ImGui::EndTable();
    }
    if (!both || a.layers.size() != b.layers.size()) return;
    if (ImGui::TreeNode("per layer: load CV and dropped share")) {
        if (ImGui::BeginTable("layers", 5, f)) {
            for (const char* h : {"layer", "CV unchanged", "CV intervention", "dropped unchanged", "dropped intervention"})
                ImGui::TableSetupColumn(h);
            ImGui::TableHeadersRow();
            for (size_t i = 0; i < a.layers.size(); i++) {
                ImGui::TableNextRow();
                ImGui::TableNextColumn(), ImGui::Text("%d", a.layers[i].layer);
                ImGui::TableNextColumn(), ImGui::Text("%.3f", a.layers[i].load_cv);
                ImGui::TableNextColumn(), ImGui::Text("%.3f", b.layers[i].load_cv);
                ImGui::TableNextColumn(), ImGui::Text("%.2f%%", 100 * a.layers[i].dropped);
                ImGui::TableNextColumn(), ImGui::Text("%.2f%%", 100 * b.layers[i].dropped);
            }
            ImGui::EndTable();
        }
        ImGui::TreePop();
    }
}

struct Curve {
    std::string name;
    ImU32 colour;
    std::vector<double> x, y;
    std::vector<std::string> label;  // written beside each point ("" = none)
};

// A line through labelled points on linear axes named xName and yName; hover gives a point's values.
void pointPlot(ViewOutbox& out, const char* title, const char* xName, const char* yName, const Curve& c, float width, float height) {
    ImGui::TextUnformatted(title);
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const ImVec2 o = ImGui::GetCursorScreenPos();
    const float lh = ImGui::GetTextLineHeight(), left = 60;
    const ImVec2 a(o.x + left, o.y + lh + 6), b(o.x + width - 12, o.y + height - 2 * lh);  // the y axis's name above it
    dl->AddRectFilled(a, b, look().panel);
    ImGui::Dummy(ImVec2(width, height));
    if (c.x.empty()) return;
    double x0 = *std::min_element(c.x.begin(), c.x.end()), x1 = *std::max_element(c.x.begin(), c.x.end());
    double y0 = *std::min_element(c.y.begin(), c.y.end()), y1 = *std::max_element(c.y.begin(), c.y.end());
    const double padX = std::max(1e-9, (x1 - x0) * 0.06), padY = std::max(1e-9, (y1 - y0) * 0.1);
    x0 -= padX, x1 += padX, y0 -= padY, y1 += padY;
    auto at = [&](double x, double y) {
        return ImVec2(a.x + (float)((x - x0) / (x1 - x0)) * (b.x - a.x), b.y - (float)((y - y0) / (y1 - y0)) * (b.y - a.y));
    };
    // Ticks: whole numbers where every x is one (passes), else five steps written with the decimals
    // their spacing needs (a perplexity that moves in its third decimal).
    const bool wholeX = std::all_of(c.x.begin(), c.x.end(), [](double v) { return v == std::floor(v); }) && x1 - x0 <= 24;
    auto tick = [](double v, double step) {
        char t[32];
        std::snprintf(t, sizeof t, "%.*f", std::clamp((int)std::ceil(-std::log10(std::max(step, 1e-9))), 0, 6), v);
        return std::string(t);
    };
    for (int k = 0; k <= 4; k++) {
        const double yv = y0 + (y1 - y0) * k / 4;
        const float py = at(x0, yv).y;
        dl->AddLine(ImVec2(a.x, py), ImVec2(b.x, py), look().grid);
        const std::string ly = tick(yv, (y1 - y0) / 4);
        dl->AddText(ImVec2(a.x - 6 - ImGui::CalcTextSize(ly.c_str()).x, py - halfLine()), look().dim, ly.c_str());
    }
    std::vector<double> xt;
    if (wholeX)
        for (double v = std::ceil(x0); v <= x1; v++) xt.push_back(v == 0 ? 0.0 : v);  // not "-0"
    else
        for (int k = 0; k <= 4; k++) xt.push_back(x0 + (x1 - x0) * k / 4);
    for (double xv : xt) {
        const std::string lx = wholeX ? tick(xv, 1) : tick(xv, (x1 - x0) / 4);
        const float px = at(xv, y0).x;
        dl->AddText(ImVec2(px - ImGui::CalcTextSize(lx.c_str()).x / 2, b.y + 2), look().dim, lx.c_str());
    }
    dl->AddText(ImVec2(b.x - ImGui::CalcTextSize(xName).x, b.y + lh + 2), look().dim, xName);
    dl->AddText(ImVec2(o.x, o.y + 2), look().dim, yName);
    std::vector<ImVec2> pts;
    for (size_t i = 0; i < c.x.size(); i++) pts.push_back(at(c.x[i], c.y[i]));
    if (pts.size() > 1) dl->AddPolyline(pts.data(), (int)pts.size(), c.colour, 0, 1.8f);
    for (size_t i = 0; i < pts.size(); i++) {
        dl->AddCircleFilled(pts[i], 4, c.colour);
        if (i < c.label.size() && !c.label[i].empty())
            dl->AddText(ImVec2(pts[i].x + 6, pts[i].y - lh - 1), look().text, c.label[i].c_str());
        if (ImGui::IsMouseHoveringRect(ImVec2(pts[i].x - 6, pts[i].y - 6), ImVec2(pts[i].x + 6, pts[i].y + 6))) {
            char tip[200];
            std::snprintf(tip, sizeof tip, "%s %s\n%s: %.5g\n%s: %.5g", c.name.c_str(), i < c.label.size() ? c.label[i].c_str() : "",
                          xName, c.x[i], yName, c.y[i]);
            tooltip(out, tip);
        }
    }
    markTarget(out, "experiments.plot", 0, a, b);
}

void drawSweep(const ExperimentResult& r, ViewOutbox& out) {
    if (r.sweep.empty()) return;
    Curve c{"top-k", viewColour(0), {}, {}, {}};
    for (size_t i = 0; i < r.sweep.size(); i++) {
        c.x.push_back(r.sweep[i].active_params / 1e6);
        c.y.push_back(r.sweep[i].perplexity);
        c.label.push_back("k=" + std::to_string(r.ks[i]) + (r.ks[i] == r.model_top_k ? "*" : ""));
    }
    const float w = std::min(ImGui::GetContentRegionAvail().x, 720.f);
    pointPlot(out, "Perplexity against active compute: one point per top-k", "active parameters per token (M)", "perplexity", c, w, 230);
    std::string line = "* the model's own top-k.  forward time:";
    for (size_t i = 0; i < r.sweep.size(); i++) {
        char b[48];
        std::snprintf(b, sizeof b, "  k=%d %.2f s", r.ks[i], r.sweep[i].forward_s);
        line += b;
    }
    ImGui::TextWrapped("%s", line.c_str());
}

void drawCalibration(const ExperimentResult& r, ExperimentsState& s, ViewOutbox& out, const std::string& saved) {
    const rl::CalibrationReport& c = r.calibration;
    if (c.passes.empty()) return;
    Curve cv{"load CV", viewColour(2), {}, {}, {}}, ppl{"perplexity", viewColour(5), {}, {}, {}};
    if (r.done && !r.error.size()) cv.x.push_back(0), cv.y.push_back(c.load_cv_before), ppl.x.push_back(0), ppl.y.push_back(c.perplexity_before);
    for (const auto& p : c.passes) {
        cv.x.push_back(p.pass), cv.y.push_back(p.load_cv);
        ppl.x.push_back(p.pass), ppl.y.push_back(p.perplexity);
    }
    if (r.done) {
        cv.label.assign(cv.x.size(), "");
        if (c.best_pass > 0 && c.best_pass < (int)cv.x.size()) cv.label[c.best_pass] = "kept";
    }
    const float w = std::min((ImGui::GetContentRegionAvail().x - 20) / 2, 480.f);
    ImGui::BeginGroup();
    pointPlot(out, "Mean load CV over passes (0 = before)", "pass", "load CV", cv, w, 200);
    ImGui::EndGroup();
    ImGui::SameLine(0, 20);
    ImGui::BeginGroup();
    pointPlot(out, "Perplexity over passes", "pass", "perplexity", ppl, w, 200);
    ImGui::EndGroup();
    if (!r.done) return;
    ImGui::Text("load CV %.3f -> %.3f (pass %d kept), perplexity %.3f -> %.3f.", c.load_cv_before, c.load_cv_after, c.best_pass,
                c.perplexity_before, c.perplexity_after);
    ImGui::PushItemWidth(320);
    ImGui::InputText("##biasfile", s.biasFile, sizeof s.biasFile);
    ImGui::PopItemWidth();
    ImGui::SameLine();
    if (ImGui::Button("Save biases")) out.saveBiases = s.biasFile;
    if (!saved.empty()) ImGui::TextDisabled("saved to %s (probe / eval / analyse --expert-bias take it)", saved.c_str());
}

void drawAnalyseSummary(const ExperimentResult& r) {
    const rl::Analysis& a = r.analysis;
    if (a.layers.empty()) return;
    std::string names;
    for (size_t d = 0; d < a.domains.size(); d++) names += (d ? ", " : "") + a.domains[d];
    ImGui::TextWrapped("%lld tokens of %s in %.1f s%s. The experts view draws each layer's matrices; per layer, NMI(first "
                       "expert; domain) against a random router of the same load:",
                       (long long)a.tokens, names.c_str(), a.seconds, a.cancelled ? " (cancelled: the windows done)" : "");
    std::string line;
    for (const auto& l : a.layers) {
        char b[64];
        std::snprintf(b, sizeof b, "  L%d %.3f/%.3f", l.layer, l.nmi_domain, l.nmi_domain_random_router);
        line += b;
    }
    ImGui::TextWrapped("%s", line.c_str());
}

// A section the user may fold away (each starts open).
bool section(const char* title) { return ImGui::CollapsingHeader(title, ImGuiTreeNodeFlags_DefaultOpen); }

// The error or the progress of the experiment in flight, with Cancel.
void drawStatus(const RunData& run, ViewOutbox& out) {
    for (const auto& r : run.experiments)
        if (r.id && r.id == run.experimentRunning) {
            char b[96];
            std::snprintf(b, sizeof b, "%s: %.0f%%", rl::experiment_kind_name(r.kind), 100 * r.progress);
            ImGui::ProgressBar((float)r.progress, ImVec2(300, 0), b);
            ImGui::SameLine();
            if (ImGui::Button("Cancel")) out.experimentCancel = true;
            return;
        }
    if (run.experimentRunning) {
        ImGui::TextDisabled("starting...");
        ImGui::SameLine();
        if (ImGui::Button("Cancel")) out.experimentCancel = true;
    }
}

void drawError(const ExperimentResult& r) {
    if (!r.error.empty()) ImGui::TextColored(ImVec4(0.95f, 0.45f, 0.35f, 1), "%s", r.error.c_str());
    else if (r.cancelled) ImGui::TextDisabled("cancelled: the numbers cover the windows done");
}

}  // namespace

void drawExperimentsView(const RunData& run, ExperimentsState& s, ViewOutbox& out) {
    if (run.probe.n_experts == 0) {
        ImGui::TextWrapped("Experiments: this model has a dense FFN. Open an MoE model folder (File > Open model folder) or train "
                           "an MoE preset such as moe-top2-8.");
        return;
    }
    viewHint("What a routing change does to this model on held-out text, next to the model unchanged; the other views show the "
             "probe with the same routing.");
    drawStatus(run, out);
    if (section("Interventions")) {
        const bool changed = drawKeys(run, s);
        if ((changed && s.live && compareKeys(s) != s.sent) || ImGui::Button("Evaluate")) {
            s.sent = compareKeys(s);
            out.experiment = experimentRequest(s, ExperimentKind::compare);
        }
        drawError(last(run, ExperimentKind::compare));
        drawCompare(last(run, ExperimentKind::compare));
    }
    if (section("Top-k sweep")) {
        if (ImGui::Button("Sweep top-k (1, 2, 4 ... E)")) out.experiment = experimentRequest(s, ExperimentKind::sweep);
        drawError(last(run, ExperimentKind::sweep));
        drawSweep(last(run, ExperimentKind::sweep), out);
    }
    if (section("Balance without retraining")) {
        if (ImGui::Button("Calibrate selection biases")) out.experiment = experimentRequest(s, ExperimentKind::calibrate);
        ImGui::SameLine();
        ImGui::TextDisabled("b_e += u sign(mean load - load_e) over forward passes, no gradients; the best pass's biases are kept");
        drawError(last(run, ExperimentKind::calibrate));
        drawCalibration(last(run, ExperimentKind::calibrate), s, out, run.biasesSaved);
    }
    if (!section("Specialisation on your domains")) return;
    ImGui::InputTextMultiline("NAME=FILE, one per line\n(empty: the embedded\ncorpus's domains)", s.domains, sizeof s.domains,
                              ImVec2(420, ImGui::GetTextLineHeight() * 4));
    ImGui::PushItemWidth(160);
    ImGui::SliderInt("tokens per domain", &s.domainTokens, 256, 200000, "%d", k_clamp | ImGuiSliderFlags_Logarithmic);
    ImGui::PopItemWidth();
    if (ImGui::Button("Analyse")) out.experiment = experimentRequest(s, ExperimentKind::analyse);
    drawError(last(run, ExperimentKind::analyse));
    drawAnalyseSummary(last(run, ExperimentKind::analyse));
}
