#include "layers/routing.h"

#include <algorithm>

namespace rl {

void topk_indices(int* out, const float* v, int n, int k) {
    // Insertion into a small sorted list: k and n are head/expert counts (tens at most).
    int m = 0;
    for (int i = 0; i < n; i++) {
        int pos = m;
        while (pos > 0 && v[out[pos - 1]] < v[i]) pos--;  // strict: an equal value keeps the lower index first
        if (pos >= k) continue;
        for (int j = std::min(m, k - 1); j > pos; j--) out[j] = out[j - 1];
        out[pos] = i;
        m = std::min(m + 1, k);
    }
}

void route_bias_update(float* bias, const float* counts, int n, float rate) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += counts[i];
    // Compare n * count with the sum: exact for whole counts, so sign(0) is 0 and not round-off.
    for (int i = 0; i < n; i++) {
        const double c = (double)counts[i] * n;
        bias[i] += rate * (float)((sum > c) - (sum < c));
    }
}

}  // namespace rl
