// CostReport (docs/architecture.md §9): what routing costs and saves, per component, three ways:
//   naive    - the notes' arithmetic (docs/routing-math.md §9.1): active fraction x the component's
//              share of a dense model (all heads, one dense FFN of width ffn.d_ff);
//   flops    - the FLOP model on the real routing of a forward: dense (the same weights computed
//              without skipping: every head, every expert on every token) over routed;
//   measured - wall time of the same weights, dense path over routed path (medians).
// Three sides: the forward, KV-cache decode and a training step (forward + backward; for MoH and
// static pruning the dense side is dense-masked training, every head computed and masked as the
// official MoH code does, and the routed side the skip path). With head selection each side also
// compares the routed path with the plain model of the same shape, every head and no router
// (heads.kind = all_heads): what a user would run instead of MoH.
#pragma once
#include <string>
#include <vector>

#include "model/model.h"

namespace rl {

struct CostComponent {
    std::string name;                 // attention, ffn, lm_head, total
    double flops_baseline = 0;        // per token: the notes' dense model (all heads, one dense FFN)
    double flops_dense = 0;           // per token: the same weights without skipping
    double flops_routed = 0;          // per token: what the routed path computes
    double naive_fraction = 1;        // the notes' active fraction for this component
    double sec_dense = 0, sec_routed = 0;  // measured seconds per token (medians)
    double measured_ratio = 0;        // median over back-to-back (dense, routed) pairs of their time ratio
    double ratio_q1 = 0, ratio_q3 = 0;  // the quartiles of those per-round ratios: their spread
    int rounds = 0;                   // interleaved rounds timed
    // (q3 - q1) / median of the per-round ratios: 0.1 = the middle half of the rounds within 10%.
    double spread() const { return measured_ratio > 0 ? (ratio_q3 - ratio_q1) / measured_ratio : 0; }
    double speedup_naive() const;     // baseline / (baseline x fraction), summed over components for total
    double speedup_flops() const { return flops_routed > 0 ? flops_dense / flops_routed : 1; }
    double speedup_measured() const { return measured_ratio > 0 ? measured_ratio : sec_routed > 0 ? sec_dense / sec_routed : 1; }
    double speedup_vs_baseline_flops() const { return flops_routed > 0 ? flops_baseline / flops_routed : 1; }
    // The same shape with every head and no router (heads.kind = all_heads), head selection only.
    double flops_all_heads = 0;       // per token
    double sec_all_heads = 0;         // measured seconds per token (median)
    double ratio_vs_all_heads = 0;    // median over interleaved (all-heads, routed) calls of their time ratio
    double speedup_vs_all_heads_flops() const { return flops_routed > 0 ? flops_all_heads / flops_routed : 1; }
    double speedup_vs_all_heads() const {
        return ratio_vs_all_heads > 0 ? ratio_vs_all_heads : sec_routed > 0 ? sec_all_heads / sec_routed : 1;
    }
};

struct CostSide {
    std::vector<CostComponent> components;  // attention, ffn, lm_head, then total
    const CostComponent& total() const { return components.back(); }
};

struct CostReport {
    CostSide forward;        // B = 16, T = seq_len
    CostSide decode;         // KV-cache decode of seq_len tokens
    CostSide train;          // one training step (forward with targets + backward) at B = 16, T = seq_len
    bool heads_gated = false;           // MoH or static pruning: the all-heads comparison is filled
    int seq_len = 0;                    // T of the forward and the decoded length
    double active_head_fraction = 1;    // (token, head) pairs with a non-zero gate
    double active_expert_fraction = 1;  // expert rows run / (tokens x experts)
    std::string explanation;            // why the three differ, from the numbers
    int threads = 1;                    // threads every timed call ran on (fixed for the measurement)
    double others_busy = -1;            // cores other processes kept busy while it was timed (-1: unknown)
};

// Whether a measured speedup can be stood behind. Timing noise makes the per-round ratios disagree
// (a wide spread), and a routed path can only save the work it skips, so a measurement that beats
// its FLOP model by half again, even at its lower quartile, was disturbed (the dense path preempted
// by another process), not a real saving. Empty when the measurement is sound; else why, in words.
constexpr double k_cost_max_spread = 0.25;     // (q3 - q1) / median of the per-round ratios
constexpr double k_cost_beyond_flops = 1.5;    // lower quartile over the FLOP model's speedup
std::string cost_doubt(const CostComponent& c);
// Every doubtful component of a report ("forward ffn: ..."), one a line; empty when all are sound.
std::string cost_doubts(const CostReport& r);

// FLOP side only (no timing), from one forward of `tokens` (B,T).
CostReport cost_flops(const Model& m, const int* tokens, int B, int T);
// FLOPs plus measured times: forward at B = 16, T = seq_len, decode of seq_len tokens and a training
// step at B = 16, T = seq_len. Dense, routed (and, with head selection, all-heads) calls alternate
// back to back for at least `seconds` per side and repeat, and each measured speedup is the median of
// the per-round time ratios, so drift on a shared machine hits every variant alike.
// Runs on the calling thread's thread count, pinned for the whole measurement.
CostReport cost_measure(const Model& m, double seconds, int repeats);

}  // namespace rl
