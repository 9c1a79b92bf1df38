// The cluster view (issue 25, docs/cluster-cost.md): the run's measured loads turned into what they
// would cost with expert parallelism. Sliders pick the cluster; the report is recomputed only when the
// loads or the cluster change (software GL: a frame is not free, and the noise draws are not either).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "views.h"
#include "widgets.h"

namespace {

constexpr int k_windows = 40;  // the trend's windows over training

// EP choices for E experts: the divisors of E, then its multiples (each expert split) up to 256 ranks
// (the report is recomputed on the GUI thread; routelab-cli cluster takes any EP).
std::vector<int> epChoices(int E) {
    std::vector<int> v;
    for (int d = 1; d <= E; d++)
        if (E % d == 0) v.push_back(d);
    for (int m = 2; E * m <= 256; m *= 2) v.push_back(E * m);
    return v;
}

rl::ClusterSetup setupOf(const RunData& run, const ClusterSettings& s) {
    rl::ClusterSetup c;
    c.ep = s.ep, c.gpus_per_node = s.gpusPerNode, c.tokens_per_rank = s.tokensPerRank;
    c.hidden = run.shape.hidden, c.top_k = run.shape.topK, c.expert_width = run.shape.expertWidth;
    c.capacity_factor = s.capacityFactor, c.pad_to_capacity = s.pad && s.capacityFactor > 0;
    c.placement = s.balanced ? rl::ExpertPlacement::balanced : rl::ExpertPlacement::contiguous;
    if (s.dtype == 1) c.dispatch_bytes = 1 + 4.0 / 128, c.combine_bytes = 2;  // fp8 and its scales (DeepEP)
    if (s.dtype == 2) c.dispatch_bytes = c.combine_bytes = 4;
    return c;
}

// The report of the late steps (the last quarter, at most 200: where routing has settled, as
// `routelab-cli cluster --run` takes them) and the trend over training in k_windows windows.
void recompute(const RunData& run, ClusterState& s) {
    const rl::ClusterSetup c = setupOf(run, s.set);
    const size_t n = run.loads.size(), late = std::min(n, rl::cluster_late_steps(n));
    const std::span<const rl::StepLoads> all(run.loads);
    auto r = rl::cluster_cost(rl::cluster_loads_of_steps(all.last(late), run.shape.stepPairs, run.shape.nExperts), c);
    s.report.reset();
    s.error = r ? "" : r.status.msg;
    if (r) s.report = std::move(*r);
    s.trendX.clear(), s.trendI.clear(), s.trendSlow.clear(), s.trendDrop.clear();
    if (!s.report) return;
    rl::ClusterSetup t = c;
    t.noise_draws = 64;  // 40 windows a recompute on the GUI thread: the trend's imbalance to a few percent
    const size_t windows = std::min<size_t>(k_windows, n / 2), width = windows ? n / windows : 0;
    for (size_t w = 0; w < windows; w++) {
        const std::span<const rl::StepLoads> part = all.subspan(w * width, width);  // no copy: the GUI thread
        auto pr = rl::cluster_cost(rl::cluster_loads_of_steps(part, run.shape.stepPairs, run.shape.nExperts), t);
        if (!pr || pr->layers.size() != s.report->layers.size()) continue;  // every series one point a window
        s.trendX.push_back((float)part.back().step);
        s.trendI.resize(pr->layers.size());
        float drop = 0;
        for (size_t l = 0; l < pr->layers.size(); l++) s.trendI[l].push_back((float)pr->layers[l].imbalance), drop += (float)pr->layers[l].dropped_share;
        s.trendSlow.push_back((float)(pr->time_measured_s / std::max(1e-30, pr->time_balanced_s)));
        s.trendDrop.push_back(100 * drop / std::max<size_t>(1, pr->layers.size()));
    }
}

// The cluster's sliders and checkboxes (the report is recomputed when their values change).
void controls(const RunData& run, ClusterSettings& s, ViewOutbox& out) {
    const std::vector<int> eps = epChoices(run.shape.nExperts);
    int at = (int)(std::lower_bound(eps.begin(), eps.end(), s.ep) - eps.begin());
    at = std::clamp(at, 0, (int)eps.size() - 1);
    char label[32];
    std::snprintf(label, sizeof label, "EP %d", eps[at]);
    ImGui::SetNextItemWidth(150);
    ImGui::SliderInt("expert-parallel ranks", &at, 0, (int)eps.size() - 1, label, ImGuiSliderFlags_AlwaysClamp);
    markTarget(out, "cluster.ep", 0, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
    s.ep = eps[std::clamp(at, 0, (int)eps.size() - 1)];
    ImGui::SameLine();
    ImGui::SetNextItemWidth(90);
    ImGui::SliderInt("GPUs a node", &s.gpusPerNode, 1, 16, "%d", ImGuiSliderFlags_AlwaysClamp);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(150);
    ImGui::SliderFloat("capacity factor", &s.capacityFactor, 0.f, 4.f, s.capacityFactor > 0 ? "%.2f" : "dropless",
                       ImGuiSliderFlags_AlwaysClamp);
    markTarget(out, "cluster.capacity", 0, ImGui::GetItemRectMin(), ImGui::GetItemRectMax());
    if (s.capacityFactor < 0.05f) s.capacityFactor = 0;
    ImGui::SetNextItemWidth(150);
    ImGui::SliderInt("tokens a rank", &s.tokensPerRank, 256, 32768, "%d", ImGuiSliderFlags_AlwaysClamp | ImGuiSliderFlags_Logarithmic);
    ImGui::SameLine();
    ImGui::SetNextItemWidth(140);
    ImGui::Combo("dispatch", &s.dtype, "bf16\0fp8 (bf16 combine)\0fp32\0");
    ImGui::SameLine();
    ImGui::Checkbox("pad", &s.pad);
    ImGui::SameLine();
    ImGui::Checkbox("balanced placement", &s.balanced);
}

// One layer's rank loads q_r as bars, the balanced 1/EP as a line.
void rankBars(const rl::ClusterLayer& l, int gpusPerNode, ViewOutbox& out) {
    const int EP = (int)l.rank_share.size();
    const float w = ImGui::GetContentRegionAvail().x, h = 90;
    const ImVec2 o = ImGui::GetCursorScreenPos();
    ImDrawList* dl = ImGui::GetWindowDrawList();
    const double qmax = std::max(*std::max_element(l.rank_share.begin(), l.rank_share.end()), 1.0 / EP);
    const float bw = std::max(1.f, (w - 10) / EP);
    for (int r = 0; r < EP; r++) {
        const float bh = (float)(l.rank_share[r] / qmax) * (h - 4);
        const ImU32 c = (r / std::max(1, gpusPerNode)) % 2 ? IM_COL32(90, 150, 220, 255) : IM_COL32(70, 120, 190, 255);  // nodes alternate
        dl->AddRectFilled(ImVec2(o.x + r * bw, o.y + h - bh), ImVec2(o.x + (r + 1) * bw - (bw > 3 ? 1 : 0), o.y + h), c);
    }
    const float y1 = o.y + h - (float)(1.0 / EP / qmax) * (h - 4);
    dl->AddLine(ImVec2(o.x, y1), ImVec2(o.x + EP * bw, y1), IM_COL32(240, 180, 60, 255), 2);
    ImGui::Dummy(ImVec2(w, h + 2));
    if (ImGui::IsItemHovered()) {
        const int r = std::clamp((int)((ImGui::GetIO().MousePos.x - o.x) / bw), 0, EP - 1);
        char b[96];
        std::snprintf(b, sizeof b, "rank %d (node %d): %.2f%% of the pairs (balanced %.2f%%)", r, r / std::max(1, gpusPerNode),
                      100 * l.rank_share[r], 100.0 / EP);
        tooltip(out, b);
    }
}

}  // namespace

namespace {

// Per layer: imbalance three ways, bytes, drops, nodes a token and the time range.
void layerTable(const rl::ClusterReport& r) {
    const ImGuiTableFlags f = ImGuiTableFlags_Borders | ImGuiTableFlags_RowBg | ImGuiTableFlags_SizingFixedFit;
    if (!ImGui::BeginTable("cluster.layers", 9, f)) return;
    for (const char* h : {"layer", "I", "I popularity / batch", "E max p", "MB/rank", "hottest MB (RDMA)", "dropped", "nodes/token",
                          "ms bal. -> meas."})
        ImGui::TableSetupColumn(h);
    ImGui::TableHeadersRow();
    for (const rl::ClusterLayer& l : r.layers) {
        ImGui::TableNextRow();
        ImGui::TableNextColumn(), ImGui::Text("%d", l.layer);
        ImGui::TableNextColumn(), ImGui::Text("%.3f", l.imbalance);
        ImGui::TableNextColumn(), ImGui::Text("%.3f / %.3f", l.imbalance_popularity, l.imbalance_measured);
        ImGui::TableNextColumn(), ImGui::Text("%.2f", l.expert_imbalance);
        ImGui::TableNextColumn(), ImGui::Text("%.2f", l.a2a_bytes_per_rank / 1e6);
        ImGui::TableNextColumn();
        if (l.rdma_bytes_hottest > 0) ImGui::Text("%.2f (%.2f)", l.hottest_rank_bytes / 1e6, l.rdma_bytes_hottest / 1e6);
        else ImGui::Text("%.2f", l.hottest_rank_bytes / 1e6);
        ImGui::TableNextColumn(), ImGui::Text("%.2f%%%s", 100 * l.dropped_share, l.padded_share > 0 ? " +pad" : "");
        ImGui::TableNextColumn(), ImGui::Text("%.2f%s", l.nodes_per_token, l.nodes_from_tokens ? "" : " (est.)");
        ImGui::TableNextColumn(), ImGui::Text("%.3f -> %.3f", 1e3 * (l.comm_s_balanced + l.compute_s_balanced), 1e3 * (l.comm_s + l.compute_s));
    }
    ImGui::EndTable();
}

// The trend over training: each layer's imbalance, and the MoE layers' measured / balanced time.
void trend(const ClusterState& s, ViewOutbox& out) {
    if (s.trendX.size() < 2) return;
    std::vector<Series> imb;
    for (size_t l = 0; l < s.trendI.size(); l++)
        imb.push_back({numbered("layer ", (int)l), viewColour((int)l), s.trendX, s.trendI[l], {}, {}});
    const bool drops = s.report && s.report->setup.capacity_factor > 0;
    const float h = std::max(110.f, (ImGui::GetContentRegionAvail().y - 200) / (drops ? 3 : 2));
    plot(out, "imbalance EP max q_r over training (1 = balanced; at the cluster's batch)", std::move(imb), h, false);
    plot(out, "the MoE layers' time over training, measured / balanced",
         {{"measured / balanced", IM_COL32(230, 160, 60, 255), s.trendX, s.trendSlow, {}, {}}}, h, false);
    if (drops)
        plot(out, "pairs dropped at the capacity factor over training, % (layer mean)",
             {{"dropped %", IM_COL32(215, 105, 170, 255), s.trendX, s.trendDrop, {}, {}}}, h, false);
}

}  // namespace

void drawClusterView(const RunData& run, ClusterState& s, int& layer, ViewOutbox& out) {
    if (run.shape.nExperts == 0 || run.loads.empty()) {
        ImGui::TextWrapped("Cluster: what this run's routing would cost with expert parallelism (experts on different GPUs, "
                           "two all-to-alls a layer, the busiest GPU setting the pace). It needs a run with routed experts "
                           "(moe-top2-8, deepseek-v3-style, switch-top1 ...): train one and its loads arrive here step by step. "
                           "routelab-cli cluster does the same for a stored run (--run ID) or a real model on a text.");
        return;
    }
    viewHint("Each GPU holds E/EP experts; the one with the most routed pairs sets every layer's pace. Drag EP and the capacity factor.");
    controls(run, s.set, out);
    // New steps: recompute every 2% of the run's length (the late-step report moves slowly); new settings: at once.
    if (s.set != s.computedFor || s.steps == 0 || run.loads.size() < s.steps || run.loads.size() >= s.steps + std::max<size_t>(1, s.steps / 50)) {
        recompute(run, s);
        s.computedFor = s.set, s.steps = run.loads.size();
    }
    if (!s.report) {
        ImGui::TextColored(ImVec4(0.95f, 0.5f, 0.2f, 1), "%s", s.error.c_str());
        return;
    }
    const rl::ClusterReport& r = *s.report;
    const double slower = r.time_measured_s / std::max(1e-30, r.time_balanced_s);
    ImGui::TextWrapped("EP %d on %d node%s, the last %zu steps: the MoE layers take %.3f ms a micro-batch balanced, %.3f ms as "
                "measured (%+.0f%%); the experts %.2f MB a GPU (weights, grads, optimizer). I = EP max q_r at the cluster's batch.", r.setup.ep, r.setup.nodes(), r.setup.nodes() == 1 ? "" : "s",
                rl::cluster_late_steps(run.loads.size()), 1e3 * r.time_balanced_s, 1e3 * r.time_measured_s,
                100 * (slower - 1), r.expert_bytes_per_gpu / 1e6);
    {
        Spotlight look_here("cluster.table", out);
        layerTable(r);
    }
    const int L = (int)r.layers.size();
    layerPicker(layer, L);
    const rl::ClusterLayer& l = r.layers[std::clamp(layer, 0, L - 1)];
    ImGui::SameLine();
    ImGui::Text("layer %d's ranks: pairs each receives; the line is 1/EP", l.layer);
    rankBars(l, r.setup.gpus_per_node, out);
    {
        Spotlight look_here("cluster.trend", out);
        trend(s, out);
    }
    ImGui::PushStyleColor(ImGuiCol_Text, ImGui::GetStyleColorVec4(ImGuiCol_TextDisabled));
    for (const std::string& a : r.assumptions) ImGui::TextWrapped("assumes %s", a.c_str());
    ImGui::PopStyleColor();
}
