// AdamW (Loshchilov & Hutter 2019), global grad-norm clipping, warmup + cosine schedule.
#pragma once
#include <cstddef>

namespace rl {

struct AdamWParams {
    float lr, beta1, beta2, eps, weight_decay;
    int t;  // 1-based step, for bias correction
};

// Updates n parameters in place. decay_mask[i] != 0 applies decoupled weight decay (matrices, not
// norms or biases); m, v are the moment buffers.
void adamw_update(float* params, const float* grads, float* m, float* v, const unsigned char* decay_mask, size_t n,
                  const AdamWParams& p);
// Returns the global L2 norm of grads; when max_norm > 0 and the norm exceeds it, scales grads down.
float grad_clip(float* grads, size_t n, float max_norm);
// Linear warmup to lr over warmup steps, then cosine decay to min_lr at total_steps.
float lr_schedule(int step, int total_steps, int warmup, float lr, float min_lr);

}  // namespace rl
