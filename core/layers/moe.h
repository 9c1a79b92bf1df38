// Sparse MoE FFN (docs/routing-math.md §2): router, gather-based experts, shared experts, aux and z losses.
// Size key: N rows (tokens, or MH-MoE sub-tokens), C row width, E routed experts, K top-k,
// F expert width, A assignments (rows gathered for the experts).
//
// Compute follows llama.cpp's build_moe_ffn / ggml_mul_mat_id: the rows routed to each expert are
// gathered, each expert runs one GEMM chain over its rows, outputs are scatter-added with their
// combine weights. No expert ever runs on rows it was not given.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "layers/ffn.h"

namespace rl {

using ExpertWeights = SwigluWeights;  // each expert is a SwiGLU FFN of width F

struct MoeWeights {
    float* router = nullptr;           // (E, C)
    float* bias = nullptr;             // (E) expert_bias: selection-only bias, a buffer (null in gradients)
    float* noise = nullptr;            // (E, C) noisy_topk only
    std::vector<ExpertWeights> experts;  // [E]
    std::vector<ExpertWeights> shared;   // [n_shared], each of width Fs
    float* shared_gate = nullptr;      // (1, C) shared_expert_gate: the shared sum times sigmoid(w . x)
};

struct MoeDims {
    int N = 1, C = 1, E = 1, K = 1, F = 1, n_shared = 0;
    int Fs = 0;                        // shared experts' width; 0 = F
    int norm_topk = -1;                // softmax top-k weights: -1 the routing's rule, 0 plain p, 1 renormalised
    MoeRouting routing = MoeRouting::topk;
    AuxConvention aux = AuxConvention::switch_t;
    float capacity_factor = 1.25f;
    float jitter = 0.f;                // noisy_topk: noise scale; others: input jitter U(1-j, 1+j)
    bool training = true;              // noise and jitter only while training
    uint64_t noise_seed = 0;           // the step's seed: the same forward twice draws the same noise
    bool all_experts = false;          // cost probe (inference): run every expert on every row and mask
    // Engine routing (docs/routing-math.md §12)
    ScoreFunction score = ScoreFunction::softmax;  // sigmoid: s = sigma(z), weights s / sum of the selected s
    LoadBalancing balance = LoadBalancing::aux_loss;
    TokenDropPolicy drop = TokenDropPolicy::position;  // over capacity: latest tokens lose, or lowest weights
    const float* bias = nullptr;       // (E) added to the selection key only (expert_bias); null = none
    float topk_scale = 1.f;            // gamma on every routed combine weight
    int n_groups = 1, group_topk = 0;  // group-limited routing when group_topk > 0
    int seq_rows = 0;                  // seq_aux_loss: rows per sequence (T, or T*h sub-tokens)
    const float* global_counts = nullptr;  // global_aux_loss: (E) choice counts of the earlier steps in the window
    double global_rows = 0;            // rows those counts came from
    // Interventions on a frozen model (MoeConfig::masked_experts, inference_capacity_factor).
    std::array<uint64_t, 16> masked{};  // bit e: expert e is never selected (E <= 1024)
    bool any_masked = false;
    float inference_capacity_factor = 0.f;  // topk outside training: ceil(N*K*cf/E) per expert; 0 none
    bool is_masked(int e) const { return (masked[e >> 6] >> (e & 63)) & 1; }
    int capacity() const;              // top1_capacity (training): ceil(N/E*cf); expert_choice: ceil(N*cf/E);
                                       // topk at inference with an inference capacity: ceil(N*K*cf/E); else N
    int max_assign() const;            // rows the gather buffers must hold
    int shared_width() const { return Fs > 0 ? Fs : F; }
};

// Saved for backward and read by the stats (views into the activations arena, plus int buffers).
struct MoeSaved {
    float* xr = nullptr;          // (N,C) router input (jittered copy; == x without jitter)
    float* jit = nullptr;         // (N,C) jitter multipliers (null without input jitter)
    float* logits = nullptr;      // (N,E) clean router logits
    float* probs = nullptr;       // (N,E) softmax(logits)
    float* noisy = nullptr;       // (N,E) noisy logits (noisy_topk), null otherwise
    float* eps = nullptr;         // (N,E) standard normal draws (noisy_topk)
    float* noise_pre = nullptr;   // (N,E) W_noise x (noisy_topk)
    float* xg = nullptr;          // (A,C) gathered rows, expert-major
    float* fa = nullptr; float* fb; float* fh;   // (A,F) SwiGLU gate, up, hidden
    float* ye = nullptr;          // (A,C) expert outputs before weighting
    float* sfa = nullptr; float* sfb; float* sfh;  // (n_shared,N,F)
    float* sye = nullptr;         // (n_shared,N,C)
    int* a_token = nullptr;       // (A) token of each assignment
    int* a_expert = nullptr;      // (A) expert of each assignment
    float* a_w = nullptr;         // (A) combine weight
    float* cw = nullptr;          // (N,K) combine weight of each choice, before capacity (token choice)
    int* offset = nullptr;        // (E+1) rows of expert e are [offset[e], offset[e+1])
    int* choice = nullptr;        // (N,K) routing choice per token before capacity (-1 none): f counts these
    int* n_assign = nullptr;      // (1) A actually used
    int* work = nullptr;          // (moe_work_ints) selection scratch, so a step allocates nothing
};
size_t moe_work_ints(const MoeDims& d);

// Per-layer routing numbers of the last forward (training stats and losses).
struct MoeStats {
    float aux = 0, zloss = 0;           // unweighted losses of this layer
    float dropped_frac = 0;             // tokens that reached no expert
    float entropy = 0;                  // mean router entropy (nats)
    std::vector<float> load;            // (E) assignments per expert / A
    std::vector<float> f, P;            // (E) choice fraction (before capacity) and mean normalised score
    std::vector<float> counts;          // (E) choices per expert (before capacity), whole numbers
    std::vector<float> f_bal;           // (rows,E) the balance loss's f: the batch's f, one row per sequence
                                        // (seq_aux_loss) or the window's (global_aux_loss); empty with none
    std::vector<float> P_rows;          // (rows,E) sums of p^ per f_bal row (working memory of moe_stats)
};

size_t moe_scratch_floats(const MoeDims& d);
// out (N,C) overwritten.
void moe_forward(float* out, MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w,
                 const MoeDims& d);
// Accumulates dx (N,C) and the weight gradients in g (same layout as w). daux / dz: dLoss/dL_aux,
// dLoss/dL_z of this layer. scratch: moe_scratch_floats.
void moe_backward(float* dx, const MoeWeights& g, float* scratch, const float* dout, const float* x,
                  const MoeStats& st, const MoeSaved& sv, const MoeWeights& w, const MoeDims& d, float daux,
                  float dz);
// Naive reference of the forward output (double precision, per token, per chosen expert) for the
// deterministic routings (topk, top1_capacity, expert_choice, shared experts; no noise, no jitter).
void moe_forward_ref(float* out, const float* x, const MoeWeights& w, const MoeDims& d);

}  // namespace rl
