#include "metrics/cluster_cost.h"

#include "config/config.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

namespace rl {

LayerLoads cluster_loads_split(const std::vector<std::vector<double>>& batch_shares, double assignments) {
    LayerLoads l;
    l.batches = (int)batch_shares.size();
    l.batch_assignments = assignments;
    if (batch_shares.empty()) return l;
    const size_t E = batch_shares[0].size();
    l.share.assign(E, 0.0);
    for (const auto& b : batch_shares)
        for (size_t e = 0; e < E; e++) l.share[e] += b[e] / l.batches;
    if (l.batches < 2) return l;  // one batch: no spread to measure
    l.noise_var.assign(E, 0.0);
    for (const auto& b : batch_shares)
        for (size_t e = 0; e < E; e++) l.noise_var[e] += (b[e] - l.share[e]) * (b[e] - l.share[e]) / (l.batches - 1);
    return l;
}

size_t cluster_late_steps(size_t stored_steps) { return std::clamp<size_t>(stored_steps / 4, 1, 200); }

double cluster_step_pairs(const Config& c) { return (double)c.train.batch_size * c.model.seq_len * c.model.moe.top_k; }

void cluster_setup_model(ClusterSetup& s, const ModelConfig& m) {
    s.hidden = m.d_model, s.top_k = m.moe.top_k, s.expert_width = m.moe.d_ff_expert;
}

std::vector<LayerLoads> cluster_loads_of_steps(std::span<const StepLoads> steps, double step_pairs, int n_experts) {
    size_t L = 0;
    for (const StepLoads& p : steps) L = std::max(L, p.expert.size());
    std::vector<LayerLoads> out;
    for (size_t l = 0; l < L; l++) {
        std::vector<std::vector<double>> batches;
        for (const StepLoads& p : steps)
            if (l < p.expert.size() && (int)p.expert[l].size() == n_experts) batches.emplace_back(p.expert[l].begin(), p.expert[l].end());
        if (batches.empty()) continue;
        LayerLoads ll = cluster_loads_split(batches, step_pairs);
        ll.layer = (int)l;
        out.push_back(std::move(ll));
    }
    return out;
}

std::vector<int> cluster_placement(const std::vector<double>& share, int ep, ExpertPlacement p) {
    const int E = (int)share.size(), per = E / ep;
    std::vector<int> rank_of(E);
    if (p == ExpertPlacement::contiguous) {
        for (int e = 0; e < E; e++) rank_of[e] = e / per;
        return rank_of;
    }
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return share[a] > share[b]; });
    std::vector<double> load(ep, 0.0);
    std::vector<int> held(ep, 0);
    for (int e : order) {  // greedy: the most popular first, each to the lightest rank with room
        int best = -1;
        for (int r = 0; r < ep; r++)
            if (held[r] < per && (best < 0 || load[r] < load[best])) best = r;
        rank_of[e] = best, load[best] += share[e], held[best]++;
    }
    return rank_of;
}

std::vector<double> cluster_rank_loads(const std::vector<double>& share, const std::vector<int>& rank_of, int ep) {
    std::vector<double> q(ep, 0.0);
    for (size_t e = 0; e < share.size(); e++) q[rank_of[e]] += share[e];
    return q;
}

namespace {
// E[(X - cap)+] for X ~ N(mu, sd^2): d Phi(d / sd) + sd phi(d / sd), d = mu - cap; (mu - cap)+ when sd = 0.
double expected_overflow(double mu, double sd, double cap) {
    const double d = mu - cap;
    if (sd <= 0) return std::max(0.0, d);
    const double z = d / sd;
    return d * 0.5 * std::erfc(-z / std::sqrt(2.0)) + sd * std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
}
double sd_of(const std::vector<double>& var_pairs, size_t e) {
    return e < var_pairs.size() ? std::sqrt(std::max(0.0, var_pairs[e])) : 0;
}
}  // namespace

double cluster_dropped_share(const std::vector<double>& share, const std::vector<double>& var_pairs, double assignments,
                             double cap) {
    if (assignments <= 0) return 0;
    double dropped = 0;
    for (size_t e = 0; e < share.size(); e++) dropped += expected_overflow(assignments * share[e], sd_of(var_pairs, e), cap);
    return dropped / assignments;
}

double cluster_expected_imbalance(const std::vector<double>& share, const std::vector<double>& var, const std::vector<int>& rank_of,
                                  int ep, int draws, unsigned seed) {
    const size_t E = share.size();
    bool noisy = false;
    for (double v : var) noisy |= v > 0;
    if (!noisy) {
        const std::vector<double> q = cluster_rank_loads(share, rank_of, ep);
        return ep * *std::max_element(q.begin(), q.end());
    }
    std::mt19937 rng(seed);
    std::normal_distribution<double> nd;
    std::vector<double> p(E);
    double sum_max = 0;
    for (int d = 0; d < draws; d++) {
        double total = 0;
        for (size_t e = 0; e < E; e++) total += p[e] = std::max(0.0, share[e] + std::sqrt(var[e]) * nd(rng));
        for (double& v : p) v /= std::max(total, 1e-300);  // shares of one batch sum to 1
        const std::vector<double> q = cluster_rank_loads(p, rank_of, ep);
        sum_max += *std::max_element(q.begin(), q.end());
    }
    return ep * sum_max / draws;
}

LayerLoads cluster_split_experts(const LayerLoads& l, int m) {
    LayerLoads out = l;
    if (m <= 1) return out;
    const size_t E = l.share.size();
    out.share.assign(E * m, 0.0);
    if (!l.noise_var.empty()) out.noise_var.assign(E * m, 0.0);
    for (size_t e = 0; e < E; e++)
        for (int j = 0; j < m; j++) {
            out.share[e * m + j] = l.share[e] / m;  // contiguous: expert e's parts sit on adjacent ranks
            if (!l.noise_var.empty()) out.noise_var[e * m + j] = l.noise_var[e] / ((double)m * m);
        }
    out.batch_assignments = l.batch_assignments * m;  // every pair became m
    out.split = l.split * m;  // token_experts keep the measured experts' ids: expert e is parts e m .. e m + m - 1
    return out;
}

namespace {

// Each expert's variance of its share at a batch of `assignments` pairs: the measured noise rescaled
// from the measured batch (variance of a share falls as 1 / batch), or, where none was measured, a
// multinomial draw's p (1 - p) / batch.
std::vector<double> share_var_at(const LayerLoads& l, double assignments) {
    std::vector<double> v(l.share.size(), 0.0);
    for (size_t e = 0; e < v.size(); e++) {
        if (!l.noise_var.empty() && l.batch_assignments > 0) v[e] = l.noise_var[e] * l.batch_assignments / assignments;
        else v[e] = l.share[e] * (1 - l.share[e]) / assignments;
    }
    return v;
}

// Mean distinct nodes a token's experts sit on: counted on the token sets, or, with none, estimated
// by drawing K distinct experts by their shares (with a split, K / split measured experts, each
// touching the nodes its parts are on).
double nodes_per_token(const LayerLoads& l, const std::vector<int>& rank_of, const ClusterSetup& s, bool& counted) {
    const int G = s.gpus_per_node, nodes = s.nodes();
    // The measured experts (parents of a split's parts): their shares and the nodes their parts are on.
    const int m = std::max(1, l.split), P = (int)l.share.size() / m;
    std::vector<double> parent(P, 0.0);
    std::vector<std::vector<int>> nodes_of(P);
    for (int e = 0; e < P * m; e++) {
        parent[e / m] += l.share[e];
        const int n = rank_of[e] / G;
        if (std::find(nodes_of[e / m].begin(), nodes_of[e / m].end(), n) == nodes_of[e / m].end()) nodes_of[e / m].push_back(n);
    }
    counted = !l.token_experts.empty();
    if (counted) {
        double sum = 0;
        std::set<int> at;
        for (const auto& row : l.token_experts) {
            at.clear();
            for (int e : row)
                if (e >= 0 && e < P) at.insert(nodes_of[e].begin(), nodes_of[e].end());
            sum += (double)at.size();
        }
        return sum / (double)l.token_experts.size();
    }
    // A token picks K / split distinct measured experts; each touches the nodes its parts are on. Top-k
    // as successive draws without replacement, each by share (seeded): the expected distinct nodes.
    const int picks = std::min(P, std::max(1, s.top_k / m));
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> U(0.0, 1.0);
    const int draws = 10 * std::max(1, s.noise_draws);
    std::vector<char> taken(P), at(nodes);
    double sum = 0;
    for (int d = 0; d < draws; d++) {
        std::fill(taken.begin(), taken.end(), 0), std::fill(at.begin(), at.end(), 0);
        double left = 1.0;  // the shares not yet picked
        for (int k = 0; k < picks; k++) {
            double u = U(rng) * left;
            int e = 0;
            while (e < P - 1 && (taken[e] || (u -= parent[e]) > 0)) e++;
            while (taken[e]) e--;  // rounding at the end of the scan: the last one not taken
            taken[e] = 1, left -= parent[e];
            for (int n : nodes_of[e]) at[n] = 1;
        }
        sum += std::count(at.begin(), at.end(), 1);
    }
    return sum / draws;
}

// E[EP max_r q_r] under noise. A split's m parts of one expert carry the same tokens, so their noise is
// one draw: with EP = E m every rank holds one part, and EP max_r q_r = E max_e (the expert's share).
double expected_imbalance(const LayerLoads& l, const std::vector<double>& var, const std::vector<int>& rank_of, int ep, int draws) {
    const int m = std::max(1, l.split);
    if (m == 1) return cluster_expected_imbalance(l.share, var, rank_of, ep, draws);
    const int P = (int)l.share.size() / m;
    std::vector<double> share(P, 0.0), pvar(P, 0.0);
    std::vector<int> own(P);
    for (int e = 0; e < P * m; e++) share[e / m] += l.share[e], pvar[e / m] += var[e] * m;  // sd of the sum: m sd
    std::iota(own.begin(), own.end(), 0);
    return cluster_expected_imbalance(share, pvar, own, P, draws);
}

// Communication and compute of one layer per micro-batch (forward and backward) on its slowest rank,
// which receives `hot_rows` rows from each source rank (A / EP when balanced).
struct LayerTime {
    double comm = 0, compute = 0;  // seconds
    double nvl = 0, rdma = 0;      // the hottest rank's bytes over each
};
LayerTime layer_time(const ClusterSetup& s, double hot_rows, double pad_rows_per_rank) {
    const int EP = s.ep, local = std::min(s.gpus_per_node, EP);
    const double C = s.hidden, bytes_per_row = C * (s.dispatch_bytes + s.combine_bytes) * 2;  // dispatch + combine, fwd + bwd
    // Rows the hottest rank receives from each other rank (and sends back combined).
    const double from_each = pad_rows_per_rank > 0 ? pad_rows_per_rank / EP : hot_rows;
    LayerTime t;
    t.nvl = (local - 1) * from_each * bytes_per_row, t.rdma = (EP - local) * from_each * bytes_per_row;
    t.comm = std::max(t.nvl / (s.nvlink_gbps * 1e9), t.rdma / (s.rdma_gbps * 1e9));
    const double rows = pad_rows_per_rank > 0 ? pad_rows_per_rank : EP * hot_rows;
    const double flops = rows * 18.0 * C * s.expert_width;  // SwiGLU: 3 GEMMs of 2 C F, forward and twice backward
    t.compute = flops / (s.peak_tflops * 1e12 * s.gemm_efficiency);
    return t;
}

ClusterLayer layer_cost(const LayerLoads& l, const ClusterSetup& s) {
    const int EP = s.ep, E = (int)l.share.size();
    const double A = (double)s.tokens_per_rank * s.top_k;  // pairs one rank routes per micro-batch
    ClusterLayer out;
    out.layer = l.layer;
    const std::vector<int> rank_of = cluster_placement(l.share, EP, s.placement);
    out.rank_share = cluster_rank_loads(l.share, rank_of, EP);
    out.imbalance_popularity = EP * *std::max_element(out.rank_share.begin(), out.rank_share.end());
    out.expert_imbalance = E * *std::max_element(l.share.begin(), l.share.end());
    if (l.batch_assignments > 0)
        out.imbalance_measured = expected_imbalance(l, share_var_at(l, l.batch_assignments), rank_of, EP, s.noise_draws);
    else
        out.imbalance_measured = out.imbalance_popularity;
    out.imbalance = expected_imbalance(l, share_var_at(l, EP * A), rank_of, EP, s.noise_draws);
    // Dropless, the hottest rank gets A I / EP rows from each source. At a capacity per source rank and
    // expert (Megatron-Core get_capacity: ceil(T K cf / E)), the pairs one rank sends an expert spread as
    // its own batch's sampling noise; each expert keeps what fits (A p_e less its expected overflow) and
    // the hottest rank is the one keeping the most.
    double cap = 0, pad_rows = 0, hot_rows = A * out.imbalance / EP;
    if (s.capacity_factor > 0) {
        cap = std::ceil(A * s.capacity_factor / E);
        std::vector<double> var_pairs = share_var_at(l, A);
        for (double& v : var_pairs) v *= A * A;
        out.dropped_share = cluster_dropped_share(l.share, var_pairs, A, cap);
        std::vector<double> kept_at(EP, 0.0);
        for (int e = 0; e < E; e++) kept_at[rank_of[e]] += A * l.share[e] - expected_overflow(A * l.share[e], sd_of(var_pairs, e), cap);
        hot_rows = std::min(hot_rows, *std::max_element(kept_at.begin(), kept_at.end()));
        if (s.pad_to_capacity) {
            pad_rows = cap * E;  // each source rank's E chunks of cap rows
            out.padded_share = std::max(0.0, 1 - A * (1 - out.dropped_share) / pad_rows);
        }
    }
    const double kept = A * (1 - out.dropped_share);
    out.a2a_bytes_per_rank = (pad_rows > 0 ? pad_rows : kept) * (1 - 1.0 / EP) * s.hidden * (s.dispatch_bytes + s.combine_bytes) * 2;
    const LayerTime measured = layer_time(s, hot_rows, pad_rows);
    const LayerTime balanced = layer_time(s, A / EP, pad_rows);  // every rank 1/EP, nothing dropped
    out.comm_s = measured.comm, out.compute_s = measured.compute;
    out.comm_s_balanced = balanced.comm, out.compute_s_balanced = balanced.compute;
    out.hottest_rank_bytes = measured.nvl + measured.rdma;
    out.nvlink_bytes_hottest = measured.nvl, out.rdma_bytes_hottest = measured.rdma;
    out.nodes_per_token = nodes_per_token(l, rank_of, s, out.nodes_from_tokens);
    return out;
}

// EP = m E: each expert split into m parts on m adjacent ranks, then costed as E m experts.
Result<ClusterReport> cluster_cost_split(const std::vector<LayerLoads>& loads, const ClusterSetup& s) {
    const int E = (int)loads[0].share.size(), m = s.ep / E;
    std::vector<LayerLoads> parts;
    for (const LayerLoads& l : loads) parts.push_back(cluster_split_experts(l, m));
    ClusterSetup t = s;
    t.top_k = s.top_k * m, t.expert_width = s.expert_width / m;
    auto r = cluster_cost(parts, t);
    if (!r) return r;
    r->split = m;
    r->assumptions.insert(r->assumptions.begin(),
                          "split: EP " + std::to_string(s.ep) + " exceeds the " + std::to_string(E) + " measured experts, so each is split into " +
                              std::to_string(m) + " parts of width F/" + std::to_string(m) + " on adjacent ranks that every one of its tokens visits (top-" +
                              std::to_string(t.top_k) + " over " + std::to_string(E * m) + " parts): the parts share the expert's load evenly and a token's row goes to each");
    return r;
}

}  // namespace

Result<ClusterReport> cluster_cost(const std::vector<LayerLoads>& loads, const ClusterSetup& s) {
    if (loads.empty() || loads[0].share.empty()) return Status::error("cluster: no loads (a model with experts has one list per sparse layer)");
    const int E = (int)loads[0].share.size();
    for (const LayerLoads& l : loads)
        if ((int)l.share.size() != E)
            return Status::error("cluster: layer " + std::to_string(l.layer) + " has " + std::to_string(l.share.size()) +
                                 " experts, layer " + std::to_string(loads[0].layer) + " has " + std::to_string(E) + "; give every layer its E shares");
    if (s.ep < 1 || (E % s.ep != 0 && s.ep % E != 0))
        return Status::error("cluster: EP " + std::to_string(s.ep) + " must divide the " + std::to_string(E) +
                             " experts (Megatron-Core places E / EP on each rank) or be a multiple of them (each expert split)");

    if (s.gpus_per_node < 1) return Status::error("cluster: GPUs per node must be 1 or more");
    if (s.hidden < 1) return Status::error("cluster: the hidden size is missing; pass --hidden H");
    if (s.top_k < 1 || s.top_k > E)
        return Status::error("cluster: top-k must be in 1.." + std::to_string(E) + ", got " + std::to_string(s.top_k));
    if (s.tokens_per_rank < 1) return Status::error("cluster: tokens per rank must be 1 or more");
    if (s.ep > E && loads[0].split == 1) return cluster_cost_split(loads, s);
    ClusterReport r;
    r.setup = s;
    r.n_experts = E;
    for (const LayerLoads& l : loads) {
        r.layers.push_back(layer_cost(l, s));
        const ClusterLayer& c = r.layers.back();
        r.time_balanced_s += c.comm_s_balanced + c.compute_s_balanced;
        r.time_measured_s += c.comm_s + c.compute_s;
    }
    r.expert_params_per_gpu = (double)loads.size() * (E / s.ep) * 3.0 * s.hidden * s.expert_width;
    r.expert_bytes_per_gpu = r.expert_params_per_gpu * (6 + 12.0 / std::max(1, s.expert_dp));
    r.assumptions = {
        "loads: measured on the text or run given; whether routing at the cluster's scale and data resembles them is unknown",
        "noise: each expert's batch-to-batch spread rescaled as 1/batch to the EP group's tokens; without several batches, a multinomial draw's",
        "bytes: one row per (token, expert) pair off its rank (Megatron's all-to-all dispatcher); DeepEP sends one per (token, rank)",
        "time: the slowest rank's all-to-all at the stated per-GPU bandwidths and its expert GEMMs at the stated efficiency, "
        "added with no overlap, no congestion, no kernel launch cost: a range to compare routings, not an MFU",
        "memory: routed experts only, bf16 weights and fp32 grads (6 bytes) plus fp32 master and Adam (12 bytes over EDP)"};
    return r;
}

}  // namespace rl
