#include "layers/loss.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "tensor/eigen.h"
#include "util/threads.h"

namespace rl {

// Rows are independent: threads over rows, each row's max / exp / sum vectorised (Eigen's exp),
// the total summed afterwards in row order so it does not depend on the thread count.
double crossentropy_forward(float* losses, float* probs, const float* logits, const int* targets, int N, int V,
                            int* n_valid) {
    parallel_for(N, N >= 8, [&](int n) {
        Eigen::Map<const Eigen::ArrayXf> l(logits + (size_t)n * V, V);
        Eigen::Map<Eigen::ArrayXf> p(probs + (size_t)n * V, V);
        const float mx = l.maxCoeff();
        const double lt = targets[n] < 0 ? 0.0 : (double)l[targets[n]] - mx;  // read before probs overwrite logits
        p = (l - mx).exp();
        const double sum = p.sum();
        // The row loss from the logits directly (log-sum-exp), not from a rounded p.
        losses[n] = targets[n] < 0 ? 0.f : (float)(std::log(sum) - lt);
        p *= (float)(1.0 / sum);
    });
    double total = 0.0;
    int valid = 0;
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        total += losses[n];
        valid++;
    }
    if (n_valid) *n_valid = valid;
    return valid ? total / valid : 0.0;
}

void crossentropy_backward(float* dlogits, const float* probs, const int* targets, int N, int V, float scale) {
    parallel_for(N, N >= 8, [&](int n) {
        float* d = dlogits + (size_t)n * V;
        const float* p = probs + (size_t)n * V;
        if (targets[n] < 0) {
            std::fill_n(d, V, 0.f);
            return;
        }
        for (int v = 0; v < V; v++) d[v] = scale * p[v];
        d[targets[n]] -= scale;
    });
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
