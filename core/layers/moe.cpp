#include "layers/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "layers/ffn.h"
#include "layers/head_router.h"
#include "layers/linear.h"

namespace rl {

namespace {

double uniform01(std::mt19937_64& g) { return ((g() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
float std_normal(std::mt19937_64& g) {
    return (float)(std::sqrt(-2.0 * std::log(uniform01(g))) * std::cos(6.283185307179586 * uniform01(g)));
}
float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// Weight rule per routing (spec §2 table): renormalised over the selected logits (Mixtral top-k,
// noisy top-k) or the plain softmax probability (Switch top-1, DeepSeek shared, expert choice).
bool renormalised(const MoeDims& d) {
    return (d.routing == MoeRouting::topk && d.n_shared == 0) || d.routing == MoeRouting::noisy_topk;
}

void swiglu_ffn_forward(float* y, float* fa, float* fb, float* fh, const float* x, const ExpertWeights& w, int n,
                        int C, int F) {
    linear_forward(fa, x, w.w_gate, nullptr, n, C, F);
    linear_forward(fb, x, w.w_up, nullptr, n, C, F);
    swiglu_forward(fh, fa, fb, n * F);
    linear_forward(y, fh, w.w_down, nullptr, n, F, C);
}

// Accumulates dx (n,C) and g. dfa/dfb/dfh (n,F) are scratch.
void swiglu_ffn_backward(float* dx, const ExpertWeights& g, float* dfa, float* dfb, float* dfh, const float* dy,
                         const float* x, const float* fa, const float* fb, const float* fh, const ExpertWeights& w,
                         int n, int C, int F) {
    std::memset(dfh, 0, sizeof(float) * n * F);
    linear_backward(dfh, g.w_down, nullptr, dy, fh, w.w_down, n, F, C);
    std::memset(dfa, 0, sizeof(float) * n * F);
    std::memset(dfb, 0, sizeof(float) * n * F);
    swiglu_backward(dfa, dfb, dfh, fa, fb, n * F);
    linear_backward(dx, g.w_gate, nullptr, dfa, x, w.w_gate, n, C, F);
    linear_backward(dx, g.w_up, nullptr, dfb, x, w.w_up, n, C, F);
}

}  // namespace

int MoeDims::capacity() const {
    // Switch's capacity drops tokens only in training; inference routes every token, so decoding one
    // token at a time gives what the full forward gives.
    if (routing == MoeRouting::top1_capacity && training) return std::max(1, (int)std::ceil((double)N / E * capacity_factor));
    if (routing == MoeRouting::expert_choice) return std::min(N, std::max(1, (int)std::ceil((double)N * capacity_factor / E)));
    return N;
}

int MoeDims::max_assign() const {
    if (routing == MoeRouting::expert_choice) return E * capacity();
    return N * K;
}

size_t moe_scratch_floats(const MoeDims& d) {
    const size_t A = d.max_assign();
    return (size_t)d.N * d.E * 2 + A * d.C * 2 + A * d.F * 3 + (size_t)d.N * d.F * 3 + A + (size_t)d.N * d.C +
           (size_t)2 * d.N * d.K;
}

// Layout of MoeSaved::work: top-k indices, per-expert counts / accepted / fill cursors, per-choice
// keep flags, per-token reached flags and an order buffer (expert choice). Backward reuses the
// keep and reached regions for its per-token tables.
namespace {
struct Work {
    int *idx, *count, *accepted, *keep, *fill, *reached, *order;
    Work(int* w, const MoeDims& d) {
        idx = w;
        count = idx + std::max(d.E, d.K);
        accepted = count + d.E;
        keep = accepted + d.E;
        fill = keep + (size_t)d.N * d.K;
        reached = fill + d.E;
        order = reached + d.N;
    }
};
}  // namespace

size_t moe_work_ints(const MoeDims& d) { return (size_t)std::max(d.E, d.K) + 3 * d.E + (size_t)d.N * d.K + 2 * d.N; }

void moe_forward(float* out, MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w,
                 const MoeDims& d) {
    const int N = d.N, C = d.C, E = d.E, K = d.K, F = d.F;
    const bool noisy = d.routing == MoeRouting::noisy_topk && d.training && d.jitter > 0.f;
    const bool jitter = d.routing != MoeRouting::noisy_topk && d.training && d.jitter > 0.f;
    std::mt19937_64 rng(d.noise_seed * 0x9E3779B97F4A7C15ULL + 17);

    // 1. Router, fp32: z = W_g x, p = softmax(z).
    const float* xr = x;
    if (jitter) {  // Switch: multiplicative jitter on the router input
        for (size_t i = 0; i < (size_t)N * C; i++) {
            sv.jit[i] = (float)(1.0 - d.jitter + 2.0 * d.jitter * uniform01(rng));
            sv.xr[i] = x[i] * sv.jit[i];
        }
        xr = sv.xr;
    }
    linear_forward(sv.logits, xr, w.router, nullptr, N, C, E);
    double ent = 0;
    for (int t = 0; t < N; t++) {
        const float* z = sv.logits + (size_t)t * E;
        float* p = sv.probs + (size_t)t * E;
        const float mx = *std::max_element(z, z + E);
        float sum = 0.f;
        for (int e = 0; e < E; e++) sum += p[e] = std::exp(z[e] - mx);
        for (int e = 0; e < E; e++) {
            p[e] /= sum;
            if (p[e] > 0.f) ent -= p[e] * std::log(p[e]);
        }
    }
    st.entropy = (float)(ent / N);
    const float* sel_logits = sv.logits;
    if (noisy) {  // Shazeer 2017: z + N(0,1) * softplus(W_noise x), training only
        linear_forward(sv.noise_pre, xr, w.noise, nullptr, N, C, E);
        for (size_t i = 0; i < (size_t)N * E; i++) {
            sv.eps[i] = std_normal(rng) * d.jitter;
            sv.noisy[i] = sv.logits[i] + sv.eps[i] * softplus(sv.noise_pre[i]);
        }
        sel_logits = sv.noisy;
    }

    // 2. Selection -> choice (N,K) and the per-expert assignment lists (token order within an expert).
    Work wk(sv.work, d);
    int* idx = wk.idx;
    int* count = wk.count;
    std::fill(count, count + E, 0);
    int A = 0;
    auto* choice = sv.choice;
    if (d.routing == MoeRouting::expert_choice) {
        // Each expert takes its top-cap tokens by p (ties to the earliest token). Not causal.
        const int cap = d.capacity();
        int* order = wk.order;
        std::fill(choice, choice + (size_t)N * K, -1);
        for (int e = 0; e < E; e++) {
            std::iota(order, order + N, 0);
            std::stable_sort(order, order + N,
                             [&](int a, int b) { return sv.probs[(size_t)a * E + e] > sv.probs[(size_t)b * E + e]; });
            std::sort(order, order + cap);  // token order inside the expert
            sv.offset[e] = A;
            for (int k = 0; k < cap; k++) {
                const int t = order[k];
                sv.a_token[A] = t;
                sv.a_expert[A] = e;
                sv.a_w[A] = sv.probs[(size_t)t * E + e];
                A++;
            }
            count[e] = cap;
        }
        sv.offset[E] = A;
    } else {
        for (int t = 0; t < N; t++) {
            topk_indices(idx, sel_logits + (size_t)t * E, E, K);
            for (int k = 0; k < K; k++) choice[(size_t)t * K + k] = idx[k];
        }
        // Capacity (Switch): experts accept tokens in order until full; the rest are dropped.
        const int cap = d.capacity();
        int* accepted = wk.accepted;
        int* keep = wk.keep;
        std::fill(accepted, accepted + E, 0);
        std::fill(keep, keep + (size_t)N * K, 1);
        for (int t = 0; t < N; t++)
            for (int k = 0; k < K; k++) {
                const int e = choice[(size_t)t * K + k];
                if (accepted[e] >= cap) keep[(size_t)t * K + k] = 0;
                else accepted[e]++, count[e]++;
            }
        sv.offset[0] = 0;
        for (int e = 0; e < E; e++) sv.offset[e + 1] = sv.offset[e] + count[e];
        A = sv.offset[E];
        int* fill = wk.fill;
        std::copy(sv.offset, sv.offset + E, fill);
        for (int t = 0; t < N; t++) {
            const float* z = sel_logits + (size_t)t * E;
            const int* ch = choice + (size_t)t * K;
            float zmax = -INFINITY, zsum = 0.f;
            if (renormalised(d)) {  // softmax over the K selected logits
                for (int k = 0; k < K; k++) zmax = std::max(zmax, z[ch[k]]);
                for (int k = 0; k < K; k++) zsum += std::exp(z[ch[k]] - zmax);
            }
            for (int k = 0; k < K; k++) {
                if (!keep[(size_t)t * K + k]) continue;
                const int e = ch[k], r = fill[e]++;
                sv.a_token[r] = t;
                sv.a_expert[r] = e;
                sv.a_w[r] = renormalised(d) ? std::exp(z[e] - zmax) / zsum : sv.probs[(size_t)t * E + e];
            }
        }
    }
    *sv.n_assign = A;

    // 3. Experts over their gathered rows, then the weighted scatter-add.
    std::memset(out, 0, sizeof(float) * N * C);
    if (d.all_experts) {
        // Cost probe only: the "compute every expert and mask" baseline (same output, E/K the work).
        std::vector<float> wt((size_t)N * E, 0.f);
        for (int r = 0; r < A; r++) wt[(size_t)sv.a_token[r] * E + sv.a_expert[r]] = sv.a_w[r];
        const int chunk = std::min(N, d.max_assign());
        for (int e = 0; e < E; e++)
            for (int t0 = 0; t0 < N; t0 += chunk) {
                const int n = std::min(chunk, N - t0);
                swiglu_ffn_forward(sv.ye, sv.fa, sv.fb, sv.fh, x + (size_t)t0 * C, w.experts[e], n, C, F);
                for (int t = 0; t < n; t++) {
                    const float wr = wt[(size_t)(t0 + t) * E + e];
                    float* o = out + (size_t)(t0 + t) * C;
                    for (int c = 0; c < C; c++) o[c] += wr * sv.ye[(size_t)t * C + c];
                }
            }
    }
    if (!d.all_experts)
        for (int r = 0; r < A; r++) std::memcpy(sv.xg + (size_t)r * C, x + (size_t)sv.a_token[r] * C, sizeof(float) * C);
    for (int e = 0; e < E && !d.all_experts; e++) {
        const int r0 = sv.offset[e], n = sv.offset[e + 1] - r0;
        if (n == 0) continue;
        swiglu_ffn_forward(sv.ye + (size_t)r0 * C, sv.fa + (size_t)r0 * F, sv.fb + (size_t)r0 * F,
                           sv.fh + (size_t)r0 * F, sv.xg + (size_t)r0 * C, w.experts[e], n, C, F);
    }
    for (int r = 0; r < A && !d.all_experts; r++) {
        float* o = out + (size_t)sv.a_token[r] * C;
        const float* y = sv.ye + (size_t)r * C;
        const float wr = sv.a_w[r];
        for (int c = 0; c < C; c++) o[c] += wr * y[c];
    }
    for (int s = 0; s < d.n_shared; s++) {
        float* ys = sv.sye + (size_t)s * N * C;
        swiglu_ffn_forward(ys, sv.sfa + (size_t)s * N * F, sv.sfb + (size_t)s * N * F, sv.sfh + (size_t)s * N * F, x,
                           w.shared[s], N, C, F);
        for (size_t i = 0; i < (size_t)N * C; i++) out[i] += ys[i];
    }

    // 4. Stats and losses (per layer; the model averages over layers).
    int* reached = wk.reached;
    std::fill(reached, reached + N, 0);
    for (int r = 0; r < A; r++) reached[sv.a_token[r]] = 1;
    st.dropped_frac = 1.f - (float)std::accumulate(reached, reached + N, 0) / N;
    st.load.assign(E, 0.f);
    for (int e = 0; e < E; e++) st.load[e] = A ? (float)count[e] / A : 0.f;
    st.f.assign(E, 0.f);
    st.P.assign(E, 0.f);
    if (d.routing == MoeRouting::expert_choice) {
        st.f = st.load;
    } else {
        for (size_t i = 0; i < (size_t)N * K; i++) st.f[choice[i]] += 1.f / ((float)N * K);
    }
    for (int t = 0; t < N; t++)
        for (int e = 0; e < E; e++) st.P[e] += sv.probs[(size_t)t * E + e] / N;
    // switch: E * sum f P with sum f = 1 (balanced: 1); hf: sum f = K (balanced: K)
    const float scale = d.aux == AuxConvention::hf ? (float)E * K : (float)E;
    st.aux = 0.f;
    for (int e = 0; e < E; e++) st.aux += scale * st.f[e] * st.P[e];
    double zl = 0;
    for (int t = 0; t < N; t++) {
        const float* z = sv.logits + (size_t)t * E;
        const float mx = *std::max_element(z, z + E);
        double s = 0;
        for (int e = 0; e < E; e++) s += std::exp(z[e] - mx);
        const double lse = mx + std::log(s);
        zl += lse * lse;
    }
    st.zloss = (float)(zl / N);
}

void moe_backward(float* dx, const MoeWeights& g, float* scratch, const float* dout, const float* x,
                  const MoeStats& st, const MoeSaved& sv, const MoeWeights& w, const MoeDims& d, float daux,
                  float dzl) {
    const int N = d.N, C = d.C, E = d.E, K = d.K, F = d.F, A = *sv.n_assign;
    const size_t Amax = d.max_assign();
    const bool noisy = d.routing == MoeRouting::noisy_topk && d.training && d.jitter > 0.f;
    const bool jitter = d.routing != MoeRouting::noisy_topk && d.training && d.jitter > 0.f;
    float* dz = scratch;                       // (N,E) d clean logits
    float* dzn = dz + (size_t)N * E;           // (N,E) d noisy logits
    float* dye = dzn + (size_t)N * E;          // (A,C)
    float* dxg = dye + Amax * C;               // (A,C)
    float* dfa = dxg + Amax * C;               // (A,F)
    float* dfb = dfa + Amax * F;
    float* dfh = dfb + Amax * F;
    float* sfa = dfh + Amax * F;               // (N,F) x3, shared experts
    float* sfb = sfa + (size_t)N * F;
    float* sfh = sfb + (size_t)N * F;
    float* dw = sfh + (size_t)N * F;           // (A) d combine weight
    float* dxr = dw + Amax;                    // (N,C) d router input
    float* tw = dxr + (size_t)N * C;           // (N,K) per-token weights / their gradients
    float* tdw = tw + (size_t)N * K;

    for (int s = 0; s < d.n_shared; s++)
        swiglu_ffn_backward(dx, g.shared[s], sfa, sfb, sfh, dout, x, sv.sfa + (size_t)s * N * F,
                            sv.sfb + (size_t)s * N * F, sv.sfh + (size_t)s * N * F, w.shared[s], N, C, F);

    // Routed experts: dye = w * dout[t], dw = dout[t] . ye
    for (int r = 0; r < A; r++) {
        const float* go = dout + (size_t)sv.a_token[r] * C;
        const float* y = sv.ye + (size_t)r * C;
        float* dy = dye + (size_t)r * C;
        float acc = 0.f;
        for (int c = 0; c < C; c++) {
            dy[c] = sv.a_w[r] * go[c];
            acc += go[c] * y[c];
        }
        dw[r] = acc;
    }
    std::memset(dxg, 0, sizeof(float) * A * C);
    for (int e = 0; e < E; e++) {
        const int r0 = sv.offset[e], n = sv.offset[e + 1] - r0;
        if (n == 0) continue;
        swiglu_ffn_backward(dxg + (size_t)r0 * C, g.experts[e], dfa + (size_t)r0 * F, dfb + (size_t)r0 * F,
                            dfh + (size_t)r0 * F, dye + (size_t)r0 * C, sv.xg + (size_t)r0 * C, sv.fa + (size_t)r0 * F,
                            sv.fb + (size_t)r0 * F, sv.fh + (size_t)r0 * F, w.experts[e], n, C, F);
    }
    for (int r = 0; r < A; r++) {
        float* o = dx + (size_t)sv.a_token[r] * C;
        const float* gi = dxg + (size_t)r * C;
        for (int c = 0; c < C; c++) o[c] += gi[c];
    }

    // Router: combine weights, then aux (f fixed) and z-loss, all on the logits.
    std::memset(dz, 0, sizeof(float) * N * E);
    if (noisy) std::memset(dzn, 0, sizeof(float) * N * E);
    if (renormalised(d)) {
        // w = softmax over the token's selected (noisy) logits: dz_j = w_j (dw_j - sum_i w_i dw_i).
        Work wk(sv.work, d);
        int* te = wk.keep;   // (N,K) expert of each of the token's kept weights
        int* tn = wk.reached;  // (N) how many
        std::fill(tn, tn + N, 0);
        for (int r = 0; r < A; r++) {
            const int t = sv.a_token[r], k = tn[t]++;
            tw[(size_t)t * K + k] = sv.a_w[r];
            tdw[(size_t)t * K + k] = dw[r];
            te[(size_t)t * K + k] = sv.a_expert[r];
        }
        float* target = noisy ? dzn : dz;
        for (int t = 0; t < N; t++) {  // renormalised routings have no capacity: all K are kept
            float dot = 0.f;
            for (int k = 0; k < tn[t]; k++) dot += tw[(size_t)t * K + k] * tdw[(size_t)t * K + k];
            for (int k = 0; k < tn[t]; k++) {
                const size_t i = (size_t)t * K + k;
                target[(size_t)t * E + te[i]] += tw[i] * (tdw[i] - dot);
            }
        }
    } else {
        // w = p_e (full softmax): dz_j += dw p_e (delta_ej - p_j)
        for (int r = 0; r < A; r++) {
            const int t = sv.a_token[r], e = sv.a_expert[r];
            const float* p = sv.probs + (size_t)t * E;
            float* dzt = dz + (size_t)t * E;
            const float pe = p[e];
            for (int j = 0; j < E; j++) dzt[j] -= dw[r] * pe * p[j];
            dzt[e] += dw[r] * pe;
        }
    }
    // L_aux = scale sum_e f_e P_e, P_e = mean_t p_te:  dL/dp_te = scale f_e / N, then softmax backward.
    // z-loss: (1/N) sum_t lse_t^2: dz_tj = 2 lse_t p_tj / N.
    const float scale = d.aux == AuxConvention::hf ? (float)E * K : (float)E;
    for (int t = 0; t < N; t++) {
        const float* p = sv.probs + (size_t)t * E;
        const float* z = sv.logits + (size_t)t * E;
        float* dzt = dz + (size_t)t * E;
        float dot = 0.f;
        for (int e = 0; e < E; e++) dot += p[e] * st.f[e];
        const float mx = *std::max_element(z, z + E);
        double s = 0;
        for (int e = 0; e < E; e++) s += std::exp(z[e] - mx);
        const float lse = (float)(mx + std::log(s));
        for (int e = 0; e < E; e++)
            dzt[e] += daux * scale / N * p[e] * (st.f[e] - dot) + dzl * 2.f * lse * p[e] / N;
    }
    const float* xr = jitter ? sv.xr : x;
    std::memset(dxr, 0, sizeof(float) * N * C);
    if (noisy) {
        // noisy = z + eps * softplus(u), u = W_noise x
        for (size_t i = 0; i < (size_t)N * E; i++) {
            dz[i] += dzn[i];
            dzn[i] *= sv.eps[i] * sigmoid(sv.noise_pre[i]);
        }
        linear_backward(dxr, g.noise, nullptr, dzn, xr, w.noise, N, C, E);
    }
    linear_backward(dxr, g.router, nullptr, dz, xr, w.router, N, C, E);
    if (jitter)
        for (size_t i = 0; i < (size_t)N * C; i++) dx[i] += dxr[i] * sv.jit[i];
    else
        for (size_t i = 0; i < (size_t)N * C; i++) dx[i] += dxr[i];
}

void moe_forward_ref(float* out, const float* x, const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, E = d.E, K = d.K, F = d.F;
    std::vector<double> p((size_t)N * E), z((size_t)N * E);
    for (int t = 0; t < N; t++) {
        double mx = -1e300, s = 0;
        for (int e = 0; e < E; e++) {
            double v = 0;
            for (int c = 0; c < C; c++) v += (double)w.router[(size_t)e * C + c] * x[(size_t)t * C + c];
            z[(size_t)t * E + e] = v;
            mx = std::max(mx, v);
        }
        for (int e = 0; e < E; e++) s += p[(size_t)t * E + e] = std::exp(z[(size_t)t * E + e] - mx);
        for (int e = 0; e < E; e++) p[(size_t)t * E + e] /= s;
    }
    auto expert = [&](const ExpertWeights& ew, int t, std::vector<double>& y) {
        std::vector<double> h(F);
        for (int f = 0; f < F; f++) {
            double a = 0, b = 0;
            for (int c = 0; c < C; c++) {
                a += (double)ew.w_gate[(size_t)f * C + c] * x[(size_t)t * C + c];
                b += (double)ew.w_up[(size_t)f * C + c] * x[(size_t)t * C + c];
            }
            h[f] = a / (1 + std::exp(-a)) * b;
        }
        for (int c = 0; c < C; c++) {
            y[c] = 0;
            for (int f = 0; f < F; f++) y[c] += (double)ew.w_down[(size_t)c * F + f] * h[f];
        }
    };
    std::vector<double> acc((size_t)N * C, 0.0), y(C);
    auto add = [&](int t, int e, double wt) {
        expert(w.experts[e], t, y);
        for (int c = 0; c < C; c++) acc[(size_t)t * C + c] += wt * y[c];
    };
    if (d.routing == MoeRouting::expert_choice) {
        const int cap = d.capacity();
        for (int e = 0; e < E; e++) {
            std::vector<int> order(N);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[(size_t)a * E + e] > p[(size_t)b * E + e]; });
            for (int k = 0; k < cap; k++) add(order[k], e, p[(size_t)order[k] * E + e]);
        }
    } else {
        std::vector<int> taken(E, 0);
        const int cap = d.capacity();
        for (int t = 0; t < N; t++) {
            std::vector<int> order(E);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[(size_t)t * E + a] > p[(size_t)t * E + b]; });
            double sel = 0;
            for (int k = 0; k < K; k++) sel += p[(size_t)t * E + order[k]];
            for (int k = 0; k < K; k++) {
                const int e = order[k];
                if (taken[e] >= cap) continue;
                taken[e]++;
                const double pe = p[(size_t)t * E + e];
                add(t, e, renormalised(d) ? pe / sel : pe);
            }
        }
    }
    for (int s = 0; s < d.n_shared; s++)
        for (int t = 0; t < N; t++) {
            expert(w.shared[s], t, y);
            for (int c = 0; c < C; c++) acc[(size_t)t * C + c] += y[c];
        }
    for (size_t i = 0; i < acc.size(); i++) out[i] = (float)acc[i];
}

}  // namespace rl
