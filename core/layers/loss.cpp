#include "layers/loss.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace rl {

double crossentropy_forward(float* losses, float* probs, const float* logits, const int* targets, int N, int V,
                            int* n_valid) {
    double total = 0.0;
    int valid = 0;
    for (int n = 0; n < N; n++) {
        const float* l = logits + (size_t)n * V;
        float* p = probs + (size_t)n * V;
        float mx = l[0];
        for (int v = 1; v < V; v++) mx = std::max(mx, l[v]);
        const double lt = targets[n] < 0 ? 0.0 : (double)l[targets[n]] - mx;  // read before probs overwrite logits
        double sum = 0.0;
        for (int v = 0; v < V; v++) {
            p[v] = std::exp(l[v] - mx);
            sum += p[v];
        }
        // The row loss from the logits directly (log-sum-exp in double), not from a rounded p.
        const double row = targets[n] < 0 ? 0.0 : std::log(sum) - lt;
        const float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) p[v] *= inv;
        losses[n] = (float)row;
        if (targets[n] < 0) continue;
        total += row;
        valid++;
    }
    if (n_valid) *n_valid = valid;
    return valid ? total / valid : 0.0;
}

void crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, float scale) {
    for (int n = 0; n < N; n++) {
        float* d = dlogits + (size_t)n * V;
        const float* p = probs + (size_t)n * V;
        if (targets[n] < 0) {
            std::fill_n(d, V, 0.f);
            continue;
        }
        for (int v = 0; v < V; v++) d[v] = scale * p[v];
        d[targets[n]] -= scale;
    }
}

float crossentropy_forward_ref(const float* logits, const int* targets, int N, int V) {
    double total = 0;
    int valid = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        double mx = -1e300, sum = 0;
        for (int v = 0; v < V; v++) mx = std::max(mx, (double)logits[(size_t)n * V + v]);
        for (int v = 0; v < V; v++) sum += std::exp(logits[(size_t)n * V + v] - mx);
        total += -(logits[(size_t)n * V + targets[n]] - mx - std::log(sum));
        valid++;
    }
    return valid ? (float)(total / valid) : 0.f;
}

}  // namespace rl
