// What the head router and the expert router share (docs/routing-math.md §2, §3): top-k selection
// with deterministic ties, the aux-loss-free bias rule, the logistic function and one softmax row's
// backward.
#pragma once
#include <cmath>

namespace rl {

// Top-k of v[0..n) by value, ties to the lowest index (deterministic routing); writes k indices
// in rank order.
void topk_indices(int* out, const float* v, int n, int k);

// Aux-loss-free balancing (DeepSeek-V3; Megatron-Core's get_updated_expert_bias), for experts and
// routed heads alike: bias_i += rate * sign(mean count - count_i), sign(0) = 0. counts: (n) the last
// step's choices per expert or head, whole numbers (so a count equal to the mean moves nothing).
void route_bias_update(float* bias, const float* counts, int n, float rate);

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// Backward of one softmax row p = softmax(z): dz = p * (dp - sum(p * dp)) over n entries. Inline, as
// it was when only the head router had it: called out of line, -march=native contracts its
// arithmetic differently and the trained weights change in their last bits.
inline void softmax_row_backward(float* dz, const float* p, const float* dp, int n) {
    float dot = 0.f;
    for (int i = 0; i < n; i++) dot += p[i] * dp[i];
    for (int i = 0; i < n; i++) dz[i] = p[i] * (dp[i] - dot);
}

}  // namespace rl
