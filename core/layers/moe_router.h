// The MoE router in stages (the experts are in moe.cpp; docs/routing-math.md §2): route (router
// logits with input jitter or noisy top-k's noise, softmax probabilities), select (top-k with an
// optional capacity, or expert choice -> per-expert assignment lists with combine weights), stats
// (load, f, P, the aux and z losses), and the backward of all of it onto the router and its input.
// Size key as moe.h; A assignments.
#pragma once
#include <cstddef>

#include "layers/moe.h"
#include "layers/routing.h"

namespace rl {

// Softmax combine weights renormalised over the selected logits (Mixtral top-k, noisy top-k), rather
// than the plain softmax probability (Switch top-1, DeepSeek shared experts, expert choice) or the
// sigmoid rule (s, or s / sum of the selected s when K > 1).
bool moe_renormalised(const MoeDims& d);

// The key (E) one token's top-K reads (docs/routing-math.md §12.2): the logits z (renormalised softmax)
// or the scores s, plus the selection bias, with the experts outside the token's best group_topk
// groups at -inf under group-limited routing. The views use it to show biased vs unbiased choice.
void moe_selection_key(float* key, const float* z, const float* s, const MoeDims& d);

// Route and select: fills sv's logits, probs (and noise), choice (N,K), the assignment lists
// a_token, a_expert, a_w (A) grouped by expert with offset (E+1), and n_assign; st.entropy.
// Returns the logits the selection used (the noisy ones for noisy top-k in training).
const float* moe_route(MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d);
// Dropped share, load, f and P, and this layer's L_aux and L_z from the routing of the last forward.
void moe_stats(MoeStats& st, const MoeSaved& sv, const MoeDims& d);

// Backward from dw (A), dLoss/d combine weight of each assignment, plus the aux and z losses
// (weights daux, dzl): accumulates dx (N,C), g.router and g.noise. scratch: moe_router_scratch_floats.
size_t moe_router_scratch_floats(const MoeDims& d);
void moe_router_backward(float* dx, const MoeWeights& g, float* scratch, const float* dw, const float* x,
                         const MoeStats& st, const MoeSaved& sv, const MoeWeights& w, const MoeDims& d, float daux,
                         float dzl);

}  // namespace rl
