#include "layers/head_router.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "layers/linear.h"

namespace rl {

namespace {

constexpr float k_eps = 1e-9f;

void softmax_rows(float* x, int N, int n) {
    for (int t = 0; t < N; t++) {
        float* r = x + (size_t)t * n;
        const float mx = *std::max_element(r, r + n);
        float sum = 0.f;
        for (int i = 0; i < n; i++) sum += r[i] = std::exp(r[i] - mx);
        for (int i = 0; i < n; i++) r[i] /= sum;
    }
}

// dz = p * (dp - sum(p * dp)) over one row of n
void softmax_row_backward(float* dz, const float* p, const float* dp, int n) {
    float dot = 0.f;
    for (int i = 0; i < n; i++) dot += p[i] * dp[i];
    for (int i = 0; i < n; i++) dz[i] = p[i] * (dp[i] - dot);
}

}  // namespace

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

void head_router_forward(float* gates, const HeadRouterSaved& sv, const float* x, const float* w_shared,
                         const float* w_routed, const float* w_type, const HeadRouterDims& d) {
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R(), K = d.K;
    linear_forward(sv.r, x, w_routed, nullptr, N, C, R);
    softmax_rows(sv.r, N, R);
    if (S > 0) {
        linear_forward(sv.ss, x, w_shared, nullptr, N, C, S);
        softmax_rows(sv.ss, N, S);
        linear_forward(sv.alpha, x, w_type, nullptr, N, C, 2);
        softmax_rows(sv.alpha, N, 2);
    }
    int idx[256];
    for (int t = 0; t < N; t++) {
        const float* r = sv.r + (size_t)t * R;
        float* m = sv.mask + (size_t)t * R;
        float* g = gates + (size_t)t * H;
        std::fill(m, m + R, 0.f);
        topk_indices(idx, r, R, K);
        float sel = 0.f;
        for (int k = 0; k < K; k++) m[idx[k]] = 1.f, sel += r[idx[k]];
        sel = std::max(sel, k_eps);
        const float a1 = S > 0 ? sv.alpha[2 * t] : 0.f, a2 = S > 0 ? sv.alpha[2 * t + 1] : 1.f;
        for (int i = 0; i < S; i++) g[i] = (d.paper ? a1 : 2.f * a1 * S) * sv.ss[(size_t)t * S + i];
        for (int i = 0; i < R; i++) {
            if (d.paper) g[S + i] = a2 * r[i] * m[i];
            else g[S + i] = (S > 0 ? 2.f * a2 * K : (float)K) * r[i] * m[i] / sel;
        }
    }
}

float head_router_balance(float* f, float* P, const HeadRouterSaved& sv, const HeadRouterDims& d) {
    const int N = d.N, R = d.R();
    std::fill(f, f + R, 0.f);
    std::fill(P, P + R, 0.f);
    for (int t = 0; t < N; t++)
        for (int i = 0; i < R; i++) f[i] += sv.mask[(size_t)t * R + i], P[i] += sv.r[(size_t)t * R + i];
    float loss = 0.f;
    for (int i = 0; i < R; i++) {
        f[i] /= N;
        P[i] /= N;
        loss += f[i] * P[i];
    }
    return d.paper ? loss : R * loss;
}

// dz rows (N, R+S+2), then one row of dr (R) and one of tmp, which holds R routed or S shared values.
int head_router_scratch_floats(const HeadRouterDims& d) { return d.N * (d.R() + d.S + 2) + d.R() + std::max(d.R(), d.S); }

void head_router_backward(float* dx, float* dw_shared, float* dw_routed, float* dw_type, float* scratch,
                          const float* dgates, float dbalance, const float* f, const HeadRouterSaved& sv,
                          const float* x, const float* w_shared, const float* w_routed, const float* w_type,
                          const HeadRouterDims& d) {
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R(), K = d.K;
    float* dzr = scratch;                      // (N,R)
    float* dzs = dzr + (size_t)N * R;          // (N,S)
    float* dzh = dzs + (size_t)N * S;          // (N,2)
    float* dr = dzh + (size_t)N * 2;           // (R) one row
    float* tmp = dr + R;                       // (max(R,S)) one row
    const float bal = dbalance * (d.paper ? 1.f : (float)R) / N;  // d L_b / d r_ti = scale f_i / N
    for (int t = 0; t < N; t++) {
        const float* r = sv.r + (size_t)t * R;
        const float* m = sv.mask + (size_t)t * R;
        const float* dg = dgates + (size_t)t * H;
        const float a1 = S > 0 ? sv.alpha[2 * t] : 0.f, a2 = S > 0 ? sv.alpha[2 * t + 1] : 1.f;
        float* dz = dzr + (size_t)t * R;
        float da1 = 0.f, da2 = 0.f;
        for (int i = 0; i < R; i++) dr[i] = bal * f[i];
        if (d.paper) {
            for (int i = 0; i < R; i++) {
                dr[i] += dg[S + i] * a2 * m[i];
                da2 += dg[S + i] * r[i] * m[i];
            }
            softmax_row_backward(dz, r, dr, R);
        } else {
            softmax_row_backward(dz, r, dr, R);
            // Renormalised top-K = softmax over the selected logits: dz_j += g^_j (dg^_j - sum g^ dg^).
            float sel = 0.f;
            for (int i = 0; i < R; i++) sel += r[i] * m[i];
            sel = std::max(sel, k_eps);
            const float c = S > 0 ? 2.f * a2 * K : (float)K;
            float dot = 0.f;
            for (int i = 0; i < R; i++) {
                const float gh = r[i] * m[i] / sel;
                tmp[i] = dg[S + i] * c;  // dg^_i
                dot += gh * tmp[i];
                da2 += dg[S + i] * gh;
            }
            da2 *= 2.f * K;
            for (int i = 0; i < R; i++) {
                const float gh = r[i] * m[i] / sel;
                dz[i] += gh * (tmp[i] - dot);
            }
        }
        if (S > 0) {
            const float* ss = sv.ss + (size_t)t * S;
            const float cs = d.paper ? a1 : 2.f * a1 * S;
            for (int i = 0; i < S; i++) {
                tmp[i] = dg[i] * cs;
                da1 += dg[i] * ss[i];
            }
            if (!d.paper) da1 *= 2.f * S;
            softmax_row_backward(dzs + (size_t)t * S, ss, tmp, S);
            const float da[2] = {da1, da2};
            softmax_row_backward(dzh + (size_t)t * 2, sv.alpha + 2 * t, da, 2);
        }
    }
    linear_backward(dx, dw_routed, nullptr, dzr, x, w_routed, N, C, R);
    if (S > 0) {
        linear_backward(dx, dw_shared, nullptr, dzs, x, w_shared, N, C, S);
        linear_backward(dx, dw_type, nullptr, dzh, x, w_type, N, C, 2);
    }
}

void head_router_forward_ref(float* gates, float* mask, const float* x, const float* w_shared, const float* w_routed,
                             const float* w_type, const HeadRouterDims& d) {
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R(), K = d.K;
    auto softmax = [&](const float* w, int rows, const float* xt) {
        std::vector<double> z(rows);
        double mx = -1e300, sum = 0;
        for (int i = 0; i < rows; i++) {
            for (int c = 0; c < C; c++) z[i] += (double)w[(size_t)i * C + c] * xt[c];
            mx = std::max(mx, z[i]);
        }
        for (auto& v : z) sum += v = std::exp(v - mx);
        for (auto& v : z) v /= sum;
        return z;
    };
    for (int t = 0; t < N; t++) {
        const float* xt = x + (size_t)t * C;
        auto r = softmax(w_routed, R, xt);
        std::vector<int> order(R);
        for (int i = 0; i < R; i++) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r[a] > r[b]; });
        std::vector<double> m(R, 0.0);
        double sel = 0;
        for (int k = 0; k < K; k++) m[order[k]] = 1, sel += r[order[k]];
        double a1 = 0, a2 = 1;
        std::vector<double> ss;
        if (S > 0) {
            ss = softmax(w_shared, S, xt);
            auto al = softmax(w_type, 2, xt);
            a1 = al[0], a2 = al[1];
        }
        for (int i = 0; i < S; i++) gates[(size_t)t * H + i] = (float)((d.paper ? a1 : 2 * a1 * S) * ss[i]);
        for (int i = 0; i < R; i++) {
            mask[(size_t)t * R + i] = (float)m[i];
            gates[(size_t)t * H + S + i] =
                (float)(d.paper ? a2 * r[i] * m[i] : (S > 0 ? 2 * a2 * K : K) * r[i] * m[i] / std::max(sel, 1e-9));
        }
    }
}

void head_gate_forward(float* out, const float* in, const float* gates, int N, int H, int D) {
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) {
            const float g = gates[(size_t)t * H + h];
            const float* a = in + ((size_t)t * H + h) * D;
            float* o = out + ((size_t)t * H + h) * D;
            for (int c = 0; c < D; c++) o[c] = a[c] * g;
        }
}

void head_gate_backward(float* din, float* dgates, const float* dout, const float* in, const float* gates, int N,
                        int H, int D) {
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++) {
            const float g = gates[(size_t)t * H + h];
            const float* a = in + ((size_t)t * H + h) * D;
            const float* dy = dout + ((size_t)t * H + h) * D;
            float* dx = din + ((size_t)t * H + h) * D;
            float acc = 0.f;
            for (int c = 0; c < D; c++) {
                dx[c] += dy[c] * g;
                acc += dy[c] * a[c];
            }
            dgates[(size_t)t * H + h] = acc;
        }
}

}  // namespace rl
