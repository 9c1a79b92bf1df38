#include "optim/optim.h"

#include "util/threads.h"

#include <algorithm>
#include <cmath>

namespace rl {

// Both loops run over 64 fixed slices of the parameters (vectorised within a slice), so results
// do not depend on the thread count.
constexpr int k_slices = 64;

void adamw_update(float* params, const float* grads, float* m, float* v, const unsigned char* decay_mask, size_t n,
                  const AdamWParams& p) {
    const float bc1 = 1.f - std::pow(p.beta1, (float)p.t);
    const float bc2 = 1.f - std::pow(p.beta2, (float)p.t);
    const size_t per = (n + k_slices - 1) / k_slices;
    parallel_for(k_slices, n >= 65536, [&](int b) {
        const size_t i1 = std::min(n, (b + 1) * per);
#pragma omp simd
        for (size_t i = b * per; i < i1; i++) {
            const float g = grads[i];
            m[i] = p.beta1 * m[i] + (1.f - p.beta1) * g;
            v[i] = p.beta2 * v[i] + (1.f - p.beta2) * g * g;
            const float mhat = m[i] / bc1, vhat = v[i] / bc2;
            const float wd = decay_mask[i] ? p.weight_decay * params[i] : 0.f;
            params[i] -= p.lr * (mhat / (std::sqrt(vhat) + p.eps) + wd);
        }
    });
}

float grad_clip(float* grads, size_t n, float max_norm) {
    const size_t per = (n + k_slices - 1) / k_slices;
    double part[k_slices];
    parallel_for(k_slices, n >= 65536, [&](int b) {
        // 16 fp32 lanes (one AVX-512 vector; the compiler keeps them in registers) over runs of
        // 1024, added up in double in a fixed order: fast, and reproducible.
        double s = 0.0;
        const size_t i0 = std::min(n, b * per), i1 = std::min(n, (b + 1) * per);
        for (size_t j = i0; j < i1; j += 1024) {
            const size_t j1 = std::min(i1, j + 1024);
            float lane[16] = {};
            size_t i = j;
            for (; i + 16 <= j1; i += 16)
                for (int l = 0; l < 16; l++) lane[l] += grads[i + l] * grads[i + l];
            for (; i < j1; i++) lane[0] += grads[i] * grads[i];
            for (int l = 0; l < 16; l++) s += lane[l];
        }
        part[b] = s;
    });
    double ss = 0.0;
    for (double s : part) ss += s;
    const float norm = (float)std::sqrt(ss);
    if (max_norm > 0.f && norm > max_norm) {
        const float s = max_norm / (norm + 1e-6f);
        parallel_for(k_slices, n >= 65536, [&](int b) {
            const size_t i1 = std::min(n, (b + 1) * per);
#pragma omp simd
            for (size_t i = b * per; i < i1; i++) grads[i] *= s;
        });
    }
    return norm;
}

float lr_schedule(int step, int total_steps, int warmup, float lr, float min_lr) {
    if (step < warmup) return lr * (float)(step + 1) / (float)warmup;
    if (step >= total_steps) return min_lr;
    const float progress = (float)(step - warmup) / (float)std::max(1, total_steps - warmup);
    return min_lr + 0.5f * (lr - min_lr) * (1.f + std::cos(3.14159265358979f * progress));
}

}  // namespace rl
