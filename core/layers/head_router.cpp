#include "layers/head_router.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/gemm.h"
#include "util/threads.h"

namespace rl {

namespace {

constexpr float k_eps = 1e-9f;
constexpr int k_max_heads = 128;  // config_validate: n_heads <= 128

// The router's logits per token, routed then shared then type (S > 0): Z = R + S + 2, or R.
int logit_count(const HeadRouterDims& d) { return d.R() + (d.S > 0 ? d.S + 2 : 0); }

// [W_r; W_s; W_h] (Z, C) in one buffer: one product computes every logit.
void stack_weights(float* wcat, const float* w_shared, const float* w_routed, const float* w_type,
                   const HeadRouterDims& d) {
    const size_t C = d.C, R = d.R(), S = d.S;
    std::copy_n(w_routed, R * C, wcat);
    if (S == 0) return;
    std::copy_n(w_shared, S * C, wcat + R * C);
    std::copy_n(w_type, 2 * C, wcat + (R + S) * C);
}

// Tokens are independent; from 256 rows up they run on the threads (not for decode's one row).
constexpr int k_parallel_rows = 256;

void softmax_into(float* out, const float* z, int n) {
    const float mx = *std::max_element(z, z + n);
    float sum = 0.f;
    for (int i = 0; i < n; i++) sum += out[i] = std::exp(z[i] - mx);
    for (int i = 0; i < n; i++) out[i] /= sum;
}

}  // namespace

int head_router_forward_scratch_floats(const HeadRouterDims& d) { return logit_count(d) * (d.N + d.C); }

void head_router_forward(float* gates, const HeadRouterSaved& sv, const float* x, const float* w_shared,
                         const float* w_routed, const float* w_type, const HeadRouterDims& d, float* scratch) {
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R(), K = d.K, Z = logit_count(d);
    float* wcat = scratch;                   // (Z,C)
    float* z = wcat + (size_t)Z * C;         // (N,Z) logits
    stack_weights(wcat, w_shared, w_routed, w_type, d);
    gemm(false, true, N, Z, C, 1.f, x, C, wcat, C, 0.f, z, Z);
    parallel_for(N, N >= k_parallel_rows, [&](int t) {
        const float* zt = z + (size_t)t * Z;
        float* r = sv.r + (size_t)t * R;
        softmax_into(r, zt, R);
        if (S > 0) {
            softmax_into(sv.ss + (size_t)t * S, zt + R, S);
            softmax_into(sv.alpha + 2 * (size_t)t, zt + R + S, 2);
        }
        int idx[k_max_heads];
        float* m = sv.mask + (size_t)t * R;
        float* g = gates + (size_t)t * H;
        std::fill(m, m + R, 0.f);
        if (d.bias) {  // head_bias: the choice reads r + b, the gates below read r
            float key[k_max_heads];
            for (int i = 0; i < R; i++) key[i] = r[i] + d.bias[i];
            topk_indices(idx, key, R, K);
        } else {
            topk_indices(idx, r, R, K);
        }
        float sel = 0.f;
        for (int k = 0; k < K; k++) m[idx[k]] = 1.f, sel += r[idx[k]];
        sel = std::max(sel, k_eps);
        const float a1 = S > 0 ? sv.alpha[2 * t] : 0.f, a2 = S > 0 ? sv.alpha[2 * t + 1] : 1.f;
        for (int i = 0; i < S; i++) g[i] = (d.paper ? a1 : 2.f * a1 * S) * sv.ss[(size_t)t * S + i];
        for (int i = 0; i < R; i++) {
            if (d.paper) g[S + i] = a2 * r[i] * m[i];
            else g[S + i] = (S > 0 ? 2.f * a2 * K : (float)K) * r[i] * m[i] / sel;
        }
    });
}

void head_gates_query_norm(float* gates, const HeadRouterSaved& sv, const float* q, const HeadRouterDims& d, int D) {
    const int N = d.N, H = d.H, S = d.S, R = d.R(), K = d.K;
    parallel_for(N, N >= k_parallel_rows, [&](int t) {
        float norm[k_max_heads];
        double mean = 0, var = 0;
        for (int i = 0; i < R; i++) {
            const float* qh = q + (size_t)t * H * D + (size_t)(S + i) * D;
            double ss = 0;
            for (int j = 0; j < D; j++) ss += (double)qh[j] * qh[j];
            norm[i] = (float)std::sqrt(ss);
            mean += norm[i] / R;
        }
        for (int i = 0; i < R; i++) var += (norm[i] - mean) * (norm[i] - mean);
        const float sd = R > 1 ? (float)std::sqrt(var / (R - 1)) : 1.f;  // torch.std: unbiased
        float* r = sv.r + (size_t)t * R;
        float scaled[k_max_heads];
        for (int i = 0; i < R; i++) scaled[i] = norm[i] / std::max(sd, k_eps);
        softmax_into(r, scaled, R);
        int idx[k_max_heads];
        topk_indices(idx, norm, R, K);  // the std and the softmax keep the order: the norms choose
        float* m = sv.mask + (size_t)t * R;
        float* g = gates + (size_t)t * H;
        std::fill(m, m + R, 0.f);
        for (int k = 0; k < K; k++) m[idx[k]] = 1.f;
        for (int i = 0; i < S; i++) g[i] = 1.f;
        for (int i = 0; i < R; i++) g[S + i] = m[i];
    });
}

void head_gates_query_norm_ref(float* gates, const float* q, const HeadRouterDims& d, int D) {
    const int N = d.N, H = d.H, S = d.S, R = d.R(), K = d.K;
    for (int t = 0; t < N; t++) {
        std::vector<std::pair<double, int>> by_norm;  // (-norm, head): ascending = largest first, lower head on ties
        for (int h = S; h < H; h++) {
            double ss = 0;
            for (int j = 0; j < D; j++) ss += (double)q[(size_t)t * H * D + (size_t)h * D + j] * q[(size_t)t * H * D + (size_t)h * D + j];
            by_norm.push_back({-std::sqrt(ss), h});
        }
        std::sort(by_norm.begin(), by_norm.end());
        for (int h = 0; h < H; h++) gates[(size_t)t * H + h] = h < S ? 1.f : 0.f;
        for (int k = 0; k < K && k < R; k++) gates[(size_t)t * H + by_norm[k].second] = 1.f;
    }
}

void head_gates_experts(float* gates, const HeadRouterSaved& sv, const float* x, const float* w, const HeadRouterDims& d,
                        int E, float* scratch) {
    const int N = d.N, C = d.C, H = d.H, per = H / E, k = d.K / per;
    float* z = scratch;  // (N,E) logits
    gemm(false, true, N, E, C, 1.f, x, C, w, C, 0.f, z, E);
    parallel_for(N, N >= k_parallel_rows, [&](int t) {
        const float* zt = z + (size_t)t * E;
        float p[k_max_heads], zk[k_max_heads], g[k_max_heads], ge[k_max_heads] = {}, on[k_max_heads] = {};
        int idx[k_max_heads];
        softmax_into(p, zt, E);
        topk_indices(idx, zt, E, k);
        for (int j = 0; j < k; j++) zk[j] = zt[idx[j]];
        softmax_into(g, zk, k);  // JetMoeTopKGating: softmax over the k chosen logits
        for (int j = 0; j < k; j++) ge[idx[j]] = g[j], on[idx[j]] = 1.f;
        float* r = sv.r + (size_t)t * H;
        float* m = sv.mask + (size_t)t * H;
        float* gt = gates + (size_t)t * H;
        for (int h = 0; h < H; h++) {
            r[h] = p[h % E] / per;
            m[h] = on[h % E];
            gt[h] = ge[h % E];
        }
    });
}

void head_gates_experts_backward(float* dx, float* dw, float* scratch, const float* dgates, float dbalance, const float* f,
                                 const HeadRouterSaved& sv, const float* gates, const float* x, const float* w,
                                 const HeadRouterDims& d, int E) {
    const int N = d.N, C = d.C, H = d.H, per = H / E;
    float* dz = scratch;  // (N,E)
    const float bal = dbalance * (d.paper ? 1.f : (float)H) / N;  // d L_b / d r_th, as head_router_backward
    parallel_for(N, N >= k_parallel_rows, [&](int t) {
        const float* dg = dgates + (size_t)t * H;
        const float* gt = gates + (size_t)t * H;
        const float* r = sv.r + (size_t)t * H;
        float dge[k_max_heads] = {}, dp[k_max_heads] = {}, p[k_max_heads];
        for (int h = 0; h < H; h++) dge[h % E] += dg[h], dp[h % E] += bal * f[h] / per;
        float* dzt = dz + (size_t)t * E;
        // The full softmax (through r, the balance only): dz = p (dp - sum p dp).
        float dot = 0.f;
        for (int e = 0; e < E; e++) p[e] = r[e] * per, dot += p[e] * dp[e];
        for (int e = 0; e < E; e++) dzt[e] = p[e] * (dp[e] - dot);
        // The gates, a softmax over the chosen logits: dz_j += g_j (dg_j - sum g dg) for chosen j
        // (an expert's gate is the value on each of its heads; head e < E is one of expert e's).
        float gdot = 0.f;
        for (int e = 0; e < E; e++) gdot += gt[e] * dge[e];
        for (int e = 0; e < E; e++)
            if (sv.mask[(size_t)t * H + e] > 0.f) dzt[e] += gt[e] * (dge[e] - gdot);
    });
    gemm(false, false, N, C, E, 1.f, dz, E, w, C, 1.f, dx, C);
    if (dw) gemm(true, false, E, C, N, 1.f, dz, E, x, C, 1.f, dw, C);
}

void head_gates_experts_ref(float* gates, const float* x, const float* w, const HeadRouterDims& d, int E) {
    const int N = d.N, C = d.C, H = d.H, k = d.K / (H / E);
    for (int t = 0; t < N; t++) {
        std::vector<std::pair<double, int>> by_logit;  // (-z, e): ascending = largest first, lower index on ties
        for (int e = 0; e < E; e++) {
            double z = 0;
            for (int c = 0; c < C; c++) z += (double)w[(size_t)e * C + c] * x[(size_t)t * C + c];
            by_logit.push_back({-z, e});
        }
        std::sort(by_logit.begin(), by_logit.end());
        double sum = 0;
        for (int j = 0; j < k; j++) sum += std::exp(-by_logit[j].first + by_logit[0].first);
        for (int h = 0; h < H; h++) gates[(size_t)t * H + h] = 0.f;
        for (int j = 0; j < k; j++)
            for (int h = by_logit[j].second; h < H; h += E)
                gates[(size_t)t * H + h] = (float)(std::exp(-by_logit[j].first + by_logit[0].first) / sum);
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

// dz (N, Z) in the order of the logits, then [W_r; W_s; W_h] (Z, C) and its gradient (Z, C).
int head_router_scratch_floats(const HeadRouterDims& d) { return logit_count(d) * (d.N + 2 * d.C); }

void head_router_backward(float* dx, float* dw_shared, float* dw_routed, float* dw_type, float* scratch,
                          const float* dgates, float dbalance, const float* f, const HeadRouterSaved& sv,
                          const float* x, const float* w_shared, const float* w_routed, const float* w_type,
                          const HeadRouterDims& d) {
    const int N = d.N, C = d.C, H = d.H, S = d.S, R = d.R(), K = d.K, Z = logit_count(d);
    float* dzall = scratch;                       // (N,Z): routed, shared, type logits' gradients per token
    float* wcat = dzall + (size_t)N * Z;          // (Z,C)
    float* dwcat = wcat + (size_t)Z * C;          // (Z,C)
    const float bal = dbalance * (d.paper ? 1.f : (float)R) / N;  // d L_b / d r_ti = scale f_i / N
    parallel_for(N, N >= k_parallel_rows, [&](int t) {
        float dr[k_max_heads], tmp[k_max_heads];  // one row of dr (R), and R routed or S shared values
        const float* r = sv.r + (size_t)t * R;
        const float* m = sv.mask + (size_t)t * R;
        const float* dg = dgates + (size_t)t * H;
        const float a1 = S > 0 ? sv.alpha[2 * t] : 0.f, a2 = S > 0 ? sv.alpha[2 * t + 1] : 1.f;
        float* dz = dzall + (size_t)t * Z;
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
            softmax_row_backward(dz + R, ss, tmp, S);
            const float da[2] = {da1, da2};
            softmax_row_backward(dz + R + S, sv.alpha + 2 * t, da, 2);
        }
    });
    // Every logit at once: dx += dz [W_r; W_s; W_h], d[W_r; W_s; W_h] = dz^T x, split into the three.
    stack_weights(wcat, w_shared, w_routed, w_type, d);
    gemm(false, false, N, C, Z, 1.f, dzall, Z, wcat, C, 1.f, dx, C);
    gemm(true, false, Z, C, N, 1.f, dzall, Z, x, C, 0.f, dwcat, C);
    const size_t RC = (size_t)R * C, SC = (size_t)S * C;
    for (size_t i = 0; i < RC; i++) dw_routed[i] += dwcat[i];
    if (S == 0) return;
    for (size_t i = 0; i < SC; i++) dw_shared[i] += dwcat[RC + i];
    for (size_t i = 0; i < 2 * (size_t)C; i++) dw_type[i] += dwcat[RC + SC + i];
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
        auto key = [&](int i) { return r[i] + (d.bias ? d.bias[i] : 0.0); };  // head_bias: choice only
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key(a) > key(b); });
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

void head_gates_static(float* gates, int N, int H, int n_active) {
    for (int t = 0; t < N; t++)
        for (int i = 0; i < H; i++) gates[(size_t)t * H + i] = i < n_active ? 1.f : 0.f;
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
