// What a measured routing would cost on a cluster of expert-parallel GPUs (issue 25; the model and its
// sources: docs/cluster-cost.md, docs/cluster-cost-sources.md). Inputs are each expert's share of the
// routed (token, expert) assignments per layer, measured on RouteLab's own runs or on a real model's
// text, and a stated cluster; outputs are per-rank load and imbalance, all-to-all bytes, drops at a
// capacity factor, expert memory per GPU and a time range "balanced vs measured". Megatron-Core's
// semantics: contiguous expert placement, capacity per source rank, one dispatched row per (token,
// expert) pair. Pure arithmetic on the loads: nothing here runs a model.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/step_stats.h"
#include "util/status.h"

namespace rl {

enum class ExpertPlacement { contiguous, balanced };

struct ClusterSetup {
    int ep = 8;                      // expert-parallel ranks one MoE layer spans
    int gpus_per_node = 8;
    int tokens_per_rank = 4096;      // tokens each rank routes per micro-batch (its sequence slice x micro-batch)
    int hidden = 0;                  // C of a dispatched row (required: the model's or a target's)
    int top_k = 0;                   // K (required)
    double expert_width = 0;         // F of one expert (its FLOPs and parameters; SwiGLU: 3 C F); F / m for a split's parts
    double dispatch_bytes = 2;       // bytes per element of a dispatched row (bf16 2, fp8 1 + its scales, fp32 4)
    double combine_bytes = 2;        // of a combined row; backward moves the same shapes again
    double capacity_factor = 0;      // 0 = dropless; else each source rank sends at most ceil(T K cf / E) pairs per expert
    bool pad_to_capacity = false;    // every (source rank, expert) chunk padded to the capacity (static shapes)
    ExpertPlacement placement = ExpertPlacement::contiguous;
    // Per-GPU bandwidths, GB/s: DeepEP's published H800 normal-kernel bottleneck bandwidths (EP8 NVLink
    // dispatch 153, EP16 RDMA dispatch 43; docs/cluster-cost-sources.md §4.1).
    double nvlink_gbps = 153, rdma_gbps = 43;
    double peak_tflops = 989;        // dense BF16 per GPU (H100 SXM)
    double gemm_efficiency = 0.6;    // share of peak the expert GEMMs reach
    int expert_dp = 1;               // EDP: ranks the experts' optimizer state is sharded over (6 + 12 / EDP bytes)
    int noise_draws = 400;           // seeded draws behind each expected imbalance (the view's trend takes fewer)
    int nodes() const { return (ep + gpus_per_node - 1) / gpus_per_node; }
};

// One layer's loads: mean shares (E, summing to 1) and, where several batches were measured, each
// expert's variance of its share between them, and how many assignments each batch held.
struct LayerLoads {
    int layer = 0;
    std::vector<double> share;       // (E) persistent popularity: the mean over batches
    std::vector<double> noise_var;   // (E) variance of a batch's share around it; empty: unknown
    double batch_assignments = 0;    // (token, expert) pairs per measured batch (0: unknown)
    int batches = 1;
    int split = 1;                   // each of these experts is 1/split of a measured one (cluster_split_experts)
    // Per-token expert sets, where known (the node-count figures): [token][K], measured experts' ids
    // (with a split, expert e stands for its parts e split .. e split + split - 1).
    std::vector<std::vector<int>> token_experts;
};

// Splits per-batch shares [batch][E] (each batch `assignments` pairs) into the persistent popularity
// (the mean) and the sampling noise around it (each expert's variance over the batches).
LayerLoads cluster_loads_split(const std::vector<std::vector<double>>& batch_shares, double assignments);

struct Config;
struct ModelConfig;

// The run's last steps its loads are costed on: a quarter of its stored steps, at least 1 and at most
// 200 (late in the run, where the routing has settled; the CLI's --run default, the view, the lesson).
size_t cluster_late_steps(size_t stored_steps);
// (token, expert) pairs one training step routes, B T K: the batch a stored step's shares were measured at.
double cluster_step_pairs(const Config& c);
// The model's side of a setup: the dispatched row's width C, top-k K and each expert's width F.
void cluster_setup_model(ClusterSetup& s, const ModelConfig& m);

// The loads of a run's steps (any stretch of them), each step a batch of `step_pairs` pairs (B T K):
// per layer whose rows hold E shares, the split into popularity and noise. Rows of another size are skipped.
std::vector<LayerLoads> cluster_loads_of_steps(std::span<const StepLoads> steps, double step_pairs, int n_experts);

// The rank holding each expert: contiguous blocks of E / EP (Megatron-Core: rank r holds experts
// [r E/EP, (r+1) E/EP)), or, with `balanced`, each expert in turn, most popular first, to the least
// loaded rank that still has room for E / EP (a placement that balances the measured popularity).
std::vector<int> cluster_placement(const std::vector<double>& share, int ep, ExpertPlacement p);

// Rank loads q_r (EP) of the shares under a placement.
std::vector<double> cluster_rank_loads(const std::vector<double>& share, const std::vector<int>& rank_of, int ep);

// Expected dropped share of one source rank's A = T K pairs at capacity `cap` per expert, each expert
// receiving A p_e pairs give or take a normal spread of variance var_e (pairs^2; 0: exactly A p_e):
// sum_e E[(X_e - cap)+] / A. With var 0 it is the overflow count over A.
double cluster_dropped_share(const std::vector<double>& share, const std::vector<double>& var_pairs, double assignments,
                             double cap);

// E[EP max_r q_r] when each expert's share is its popularity plus independent normal noise of the given
// variance (at the batch the imbalance is asked about), by `draws` seeded draws (shares clipped at 0).
double cluster_expected_imbalance(const std::vector<double>& share, const std::vector<double>& var, const std::vector<int>& rank_of,
                                  int ep, int draws = 400, unsigned seed = 1);

// Each expert split into m parts of width F/m, every part visited by every token routed to the expert
// (a token's K experts become K m parts, each part holding 1/m of the expert's share): how the loads of
// E experts are laid out on EP = m E ranks, each rank a slice of one expert's FFN.
LayerLoads cluster_split_experts(const LayerLoads& l, int m);

struct ClusterLayer {
    int layer = 0;
    std::vector<double> rank_share;   // q_r (EP) of the popularity
    double imbalance = 1;             // EP max q_r at the cluster's batch, sampling noise rescaled to it
    double imbalance_popularity = 1;  // EP max q_r of the popularity alone (no noise)
    double imbalance_measured = 1;    // EP max q_r with the noise of the measured batch (what the small run saw)
    double expert_imbalance = 1;      // E max p_e
    double a2a_bytes_per_rank = 0;    // mean over ranks per micro-batch: dispatch + combine, forward + backward, off-rank rows
    double hottest_rank_bytes = 0;    // the same for the rank that receives the most
    double nvlink_bytes_hottest = 0, rdma_bytes_hottest = 0;  // of hottest_rank_bytes
    double dropped_share = 0;         // of the (token, expert) pairs, at the capacity factor (0 dropless)
    double padded_share = 0;          // with pad_to_capacity: share of the computed rows that are padding
    double nodes_per_token = 0;       // mean distinct nodes a token's experts sit on
    bool nodes_from_tokens = false;   // true: counted on token sets; false: estimated from the shares
    double comm_s_balanced = 0, comm_s = 0;      // per micro-batch, forward + backward, the slowest rank
    double compute_s_balanced = 0, compute_s = 0;
};

struct ClusterReport {
    ClusterSetup setup;               // as costed: with a split, the parts' top-k and width
    int n_experts = 0;                // as costed (E m with a split)
    int split = 1;                    // m: each measured expert split into m parts (EP > E), 1 = none
    std::vector<ClusterLayer> layers;
    double expert_params_per_gpu = 0;  // routed experts' parameters on one GPU, over all layers
    double expert_bytes_per_gpu = 0;   // their weights, gradients and optimizer state (6 + 12 / EDP bytes each)
    double time_balanced_s = 0, time_measured_s = 0;  // per micro-batch over the layers: comm + compute, no overlap
    std::vector<std::string> assumptions;  // what the figures cannot know, said next to them
};

// The report of `loads` (one entry per sparse layer, E experts each) on cluster s. EP a multiple of E
// splits each expert into EP / E parts (cluster_split_experts, said in the assumptions). Refuses, in
// one line, a setup it cannot compute: EP neither dividing E nor a multiple of it, a missing hidden
// size or top-k, K > E.
Result<ClusterReport> cluster_cost(const std::vector<LayerLoads>& loads, const ClusterSetup& s);

}  // namespace rl
