// Finite-difference gradient checking shared by the layer and model tests.
//
// Tolerance (stated once, used everywhere): for each checked coordinate,
//   err = |g_analytic - g_fd| / max(|g_analytic|, |g_fd|, 1e-2 * max_j |g_analytic_j|)
// must stay below `tol` (default 2e-2), with g_fd the central difference (f(x+h) - f(x-h)) / 2h.
// The floor keeps coordinates whose true gradient is ~0 from failing on float32 round-off
// (whole-model checks raise it with abs_floor, see test_model.cpp);
// a wrong sign or a dropped term gives err near 1 or 2 on the affected coordinates.
// ReLU and CoPE's interpolation and clamp are piecewise linear: when [x-h, x+h] straddles a kink
// the central difference averages two slopes. Callers pass a `piece` signature (a hash of the
// ReLU signs / CoPE integer positions after the last loss() call). When x+h or x-h lies on another
// piece than x, the check also measures at h/2 and h/4 and takes second-order one-sided
// differences on the side that stays on x's piece; a coordinate passes when one of these
// estimates agrees (a sign error or a dropped term agrees with none of them).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace rl::test {

struct GradCheck {
    double norm_err = 0;  // ||g_analytic - g_fd|| / max(||g_analytic||, ||g_fd||) over the checked coordinates
    double max_err = 0;
    size_t worst = 0;
    double analytic = 0, numeric = 0;
    size_t checked = 0;
    std::string describe(const std::string& what) const {
        char b[256];
        std::snprintf(b, sizeof b,
                      "%s: max err %.3g at [%zu] (analytic %.6g, finite-diff %.6g), norm err %.3g, %zu coords checked",
                      what.c_str(), max_err, worst, analytic, numeric, norm_err, checked);
        return b;
    }
};

// loss(): evaluates the scalar loss with the current contents of x. analytic: dloss/dx (n).
// samples == 0 checks every coordinate, otherwise that many random ones.
// Estimates of d/dx_i loss at x by finite differences: the central difference at h, h/2, h/4,
// plus, wherever x+-step leaves x's linear piece, second-order one-sided differences on the side
// that stays on it (see above).
inline std::vector<double> fd_estimates(const std::function<double()>& loss, float* x, size_t i, float h,
                                        const std::function<uint64_t()>& piece) {
    const float orig = x[i];
    auto at = [&](float dx, uint64_t* sig) {
        x[i] = orig + dx;
        const double f = loss();
        *sig = piece ? piece() : 0;
        return f;
    };
    std::vector<double> est;
    uint64_t s0, sp, sm, s2;
    const double f0 = at(0.f, &s0);
    float step = h;
    for (int k = 0; k < 3; k++, step /= 2) {
        const double fp = at(step, &sp), fm = at(-step, &sm);
        est.push_back((fp - fm) / (2.0 * step));
        if (sp == s0 && sm == s0) break;  // no kink inside [x-h, x+h]: the central difference is exact to O(h^2)
        if (sp == s0) {
            const double fp2 = at(2 * step, &s2);
            if (s2 == s0) est.push_back((-3 * f0 + 4 * fp - fp2) / (2.0 * step));
        }
        if (sm == s0) {
            const double fm2 = at(-2 * step, &s2);
            if (s2 == s0) est.push_back((3 * f0 - 4 * fm + fm2) / (2.0 * step));
        }
    }
    x[i] = orig;
    return est;
}

// Coordinate-wise: loss() evaluates the scalar loss with the current contents of x; analytic is
// dloss/dx (n). samples == 0 checks every coordinate, otherwise that many random ones.
inline GradCheck gradcheck(const std::function<double()>& loss, float* x, const float* analytic, size_t n,
                           size_t samples = 0, float h = 1e-2f, unsigned seed = 1,
                           const std::function<uint64_t()>& piece = {}, double abs_floor = 1e-6) {
    GradCheck r;
    double gmax = 0;
    for (size_t i = 0; i < n; i++) gmax = std::max(gmax, (double)std::fabs(analytic[i]));
    const double floor = std::max(1e-2 * gmax, abs_floor);
    std::vector<size_t> idx;
    if (samples == 0 || samples >= n) {
        for (size_t i = 0; i < n; i++) idx.push_back(i);
    } else {
        std::mt19937 g(seed);
        for (size_t k = 0; k < samples; k++) idx.push_back(g() % n);
    }
    double sd = 0, sa = 0, sn = 0;
    for (size_t i : idx) {
        const double a = analytic[i];
        double err = 1e300, num = 0;
        for (double e : fd_estimates(loss, x, i, h, piece)) {
            const double ee = std::fabs(a - e) / std::max({std::fabs(a), std::fabs(e), floor});
            if (ee < err) err = ee, num = e;
        }
        if (err > r.max_err) r.max_err = err, r.worst = i, r.analytic = a, r.numeric = num;
        r.checked++;
        sd += (a - num) * (a - num), sa += a * a, sn += num * num;
    }
    r.norm_err = std::sqrt(sd) / std::max({std::sqrt(sa), std::sqrt(sn), floor});
    return r;
}

// Hash helpers for piece signatures.
inline uint64_t hash_mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ULL; }
inline uint64_t relu_piece(const float* pre, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
    for (size_t i = 0; i < n; i++) h = hash_mix(h, pre[i] > 0.f);
    return h;
}
// CoPE pieces: floor(p_ij) and the clamp flag for every visible (i, j), from the saved gates
// (B*H, T, T): p_ij = sum_{t=j..i} g_it, as the forward sums them.
inline uint64_t cope_piece(const float* gates, int BH, int T, int npos, uint64_t h = 0xcbf29ce484222325ULL) {
    for (int bh = 0; bh < BH; bh++)
        for (int i = 0; i < T; i++) {
            const float* g = gates + ((size_t)bh * T + i) * T;
            float p = 0.f;
            for (int j = i; j >= 0; j--) {
                if (g[j] == 0.f) break;  // outside the window
                p += g[j];
                h = hash_mix(h, p > (float)(npos - 1) ? 1000003u : (uint64_t)std::floor(p));
            }
        }
    return h;
}

// Routing pieces: a head mask (0/1 floats) and the MoE assignment buffers (ints).
inline uint64_t mask_piece(const float* mask, size_t n, uint64_t h = 0xcbf29ce484222325ULL) {
    for (size_t i = 0; i < n; i++) h = hash_mix(h, mask[i] > 0.5f);
    return h;
}
template <class Saved>
inline uint64_t moe_piece(const Saved& ms, size_t n_ints, uint64_t h = 0xcbf29ce484222325ULL) {
    for (size_t i = 0; i < n_ints; i++) h = hash_mix(h, (uint64_t)(uint32_t)ms.a_token[i]);
    return h;
}

inline std::vector<float> randn(size_t n, unsigned seed, float std = 1.f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.f, std);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
    return s;
}

}  // namespace rl::test
