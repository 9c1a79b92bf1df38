// The MoE router in stages: route, select, stats, and their backward (moe_router.h).
#include "layers/moe_router.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "layers/head_router.h"
#include "layers/linear.h"

namespace rl {

bool moe_renormalised(const MoeDims& d) {
    return (d.routing == MoeRouting::topk && d.n_shared == 0) || d.routing == MoeRouting::noisy_topk;
}

size_t moe_work_ints(const MoeDims& d) { return (size_t)2 * d.E + (size_t)d.N * d.K + 2 * d.N; }

size_t moe_router_scratch_floats(const MoeDims& d) { return (size_t)d.N * (2 * d.E + d.C + 2 * d.K); }

namespace {

double uniform01(std::mt19937_64& g) { return ((g() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
float std_normal(std::mt19937_64& g) {
    return (float)(std::sqrt(-2.0 * std::log(uniform01(g))) * std::cos(6.283185307179586 * uniform01(g)));
}
float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }
float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// Layout of MoeSaved::work: per-expert counts and fill cursors, per-choice keep flags, per-token
// reached flags and an order buffer (expert choice). Backward reuses the keep and reached regions
// for its per-token tables.
struct Work {
    int *count, *keep, *fill, *reached, *order;
    Work(int* w, const MoeDims& d) {
        count = w;                          // (E)
        keep = count + d.E;                 // (N,K)
        fill = keep + (size_t)d.N * d.K;    // (E)
        reached = fill + d.E;               // (N)
        order = reached + d.N;              // (N)
    }
};

// Noise and jitter are drawn only while training: noisy top-k's noise, the others' input jitter.
bool noisy_gate(const MoeDims& d) { return d.routing == MoeRouting::noisy_topk && d.training && d.jitter > 0.f; }
bool input_jitter(const MoeDims& d) { return d.routing != MoeRouting::noisy_topk && d.training && d.jitter > 0.f; }

// 1. Route: z = W_g x (fp32; x jittered first when asked), p = softmax(z), the mean router entropy,
// and for noisy top-k the noisy logits. Returns the logits selection reads.
const float* route_logits(MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d) {
    std::mt19937_64 rng(d.noise_seed * 0x9E3779B97F4A7C15ULL + 17);
    const int N = d.N, C = d.C, E = d.E;
    const float* xr = x;
    if (input_jitter(d)) {  // Switch: multiplicative jitter on the router input
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
    if (!noisy_gate(d)) return sv.logits;
    // Shazeer 2017: z + N(0,1) * softplus(W_noise x), training only
    linear_forward(sv.noise_pre, xr, w.noise, nullptr, N, C, E);
    for (size_t i = 0; i < (size_t)N * E; i++) {
        sv.eps[i] = std_normal(rng) * d.jitter;
        sv.noisy[i] = sv.logits[i] + sv.eps[i] * softplus(sv.noise_pre[i]);
    }
    return sv.noisy;
}

// 2a. Expert choice (Zhou 2022): each expert takes its top-cap tokens by p (ties to the earliest
// token), kept in token order; weight = p. Not causal.
void select_expert_choice(const MoeSaved& sv, const MoeDims& d) {
    const int N = d.N, E = d.E, cap = d.capacity();
    int* order = Work(sv.work, d).order;
    std::fill(sv.choice, sv.choice + (size_t)N * d.K, -1);
    int A = 0;
    for (int e = 0; e < E; e++) {
        std::iota(order, order + N, 0);
        std::stable_sort(order, order + N,
                         [&](int a, int b) { return sv.probs[(size_t)a * E + e] > sv.probs[(size_t)b * E + e]; });
        std::sort(order, order + cap);  // token order inside the expert
        sv.offset[e] = A;
        for (int k = 0; k < cap; k++, A++) {
            sv.a_token[A] = order[k];
            sv.a_expert[A] = e;
            sv.a_w[A] = sv.probs[(size_t)order[k] * E + e];
        }
    }
    sv.offset[E] = A;
    *sv.n_assign = A;
}

// 2b. Token choice: each token's top-K by the selection logits; under a capacity (Switch, training)
// experts accept tokens in token order until full and drop the rest (later positions lose). Then the
// per-expert assignment lists with each kept choice's combine weight.
void select_token_choice(const MoeSaved& sv, const MoeDims& d, const float* sel_logits) {
    const int N = d.N, E = d.E, K = d.K, cap = d.capacity();
    Work wk(sv.work, d);
    for (int t = 0; t < N; t++) topk_indices(sv.choice + (size_t)t * K, sel_logits + (size_t)t * E, E, K);
    std::fill(wk.count, wk.count + E, 0);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        int& n = wk.count[sv.choice[i]];
        wk.keep[i] = n < cap;
        n += wk.keep[i];
    }
    sv.offset[0] = 0;
    for (int e = 0; e < E; e++) sv.offset[e + 1] = sv.offset[e] + wk.count[e];
    std::copy(sv.offset, sv.offset + E, wk.fill);
    for (int t = 0; t < N; t++) {
        const float* z = sel_logits + (size_t)t * E;
        const int* ch = sv.choice + (size_t)t * K;
        float zmax = -INFINITY, zsum = 0.f;
        if (moe_renormalised(d)) {  // softmax over the K selected logits
            for (int k = 0; k < K; k++) zmax = std::max(zmax, z[ch[k]]);
            for (int k = 0; k < K; k++) zsum += std::exp(z[ch[k]] - zmax);
        }
        for (int k = 0; k < K; k++) {
            if (!wk.keep[(size_t)t * K + k]) continue;
            const int e = ch[k], r = wk.fill[e]++;
            sv.a_token[r] = t;
            sv.a_expert[r] = e;
            sv.a_w[r] = moe_renormalised(d) ? std::exp(z[e] - zmax) / zsum : sv.probs[(size_t)t * E + e];
        }
    }
    *sv.n_assign = sv.offset[E];
}

// log-sum-exp of one row of router logits (the z-loss's quantity).
float logsumexp(const float* z, int E) {
    const float mx = *std::max_element(z, z + E);
    double s = 0;
    for (int e = 0; e < E; e++) s += std::exp(z[e] - mx);
    return (float)(mx + std::log(s));
}

// Balance-loss scale: switch E * sum f P with sum f = 1 (balanced: 1); hf sum f = K (balanced: K).
float aux_scale(const MoeDims& d) { return d.aux == AuxConvention::hf ? (float)d.E * d.K : (float)d.E; }

// Router backward scratch (moe_router_scratch_floats), one named view each.
struct RouterScratch {
    float *dz, *dzn;  // (N,E) d clean logits, d noisy logits
    float* dxr;       // (N,C) d router input
    float *tw, *tdw;  // (N,K) per-token weights and their gradients
    RouterScratch(float* s, const MoeDims& d) {
        const size_t N = d.N, E = d.E, C = d.C, K = d.K;
        dz = s, dzn = dz + N * E, dxr = dzn + N * E, tw = dxr + N * C, tdw = tw + N * K;
    }
};

// 2 backward. Combine weights -> logits: renormalised weights are a softmax over the token's selected
// (noisy) logits, dz_j = w_j (dw_j - sum_i w_i dw_i); plain ones are p_e, dz_j += dw p_e (delta_ej - p_j).
void weights_backward(const RouterScratch& b, const float* dw, const MoeSaved& sv, const MoeDims& d) {
    const int N = d.N, E = d.E, K = d.K, A = *sv.n_assign;
    if (!moe_renormalised(d)) {
        for (int r = 0; r < A; r++) {
            const int t = sv.a_token[r], e = sv.a_expert[r];
            const float* p = sv.probs + (size_t)t * E;
            float* dzt = b.dz + (size_t)t * E;
            const float pe = p[e];
            for (int j = 0; j < E; j++) dzt[j] -= dw[r] * pe * p[j];
            dzt[e] += dw[r] * pe;
        }
        return;
    }
    Work wk(sv.work, d);
    int* te = wk.keep;     // (N,K) expert of each of the token's kept weights
    int* tn = wk.reached;  // (N) how many
    std::fill(tn, tn + N, 0);
    for (int r = 0; r < A; r++) {
        const int t = sv.a_token[r], k = tn[t]++;
        b.tw[(size_t)t * K + k] = sv.a_w[r];
        b.tdw[(size_t)t * K + k] = dw[r];
        te[(size_t)t * K + k] = sv.a_expert[r];
    }
    float* target = noisy_gate(d) ? b.dzn : b.dz;
    for (int t = 0; t < N; t++) {  // renormalised routings have no capacity: all K are kept
        float dot = 0.f;
        for (int k = 0; k < tn[t]; k++) dot += b.tw[(size_t)t * K + k] * b.tdw[(size_t)t * K + k];
        for (int k = 0; k < tn[t]; k++) {
            const size_t i = (size_t)t * K + k;
            target[(size_t)t * E + te[i]] += b.tw[i] * (b.tdw[i] - dot);
        }
    }
}

// 4 backward. L_aux = scale sum_e f_e P_e with f fixed, P_e = mean_t p_te: dL/dp_te = scale f_e / N,
// then the softmax backward; z-loss (1/N) sum_t lse_t^2: dz_tj = 2 lse_t p_tj / N.
void losses_backward(const RouterScratch& b, const MoeStats& st, const MoeSaved& sv, const MoeDims& d, float daux,
                     float dzl) {
    const int N = d.N, E = d.E;
    const float scale = aux_scale(d);
    for (int t = 0; t < N; t++) {
        const float* p = sv.probs + (size_t)t * E;
        float* dzt = b.dz + (size_t)t * E;
        float dot = 0.f;
        for (int e = 0; e < E; e++) dot += p[e] * st.f[e];
        const float lse = logsumexp(sv.logits + (size_t)t * E, E);
        for (int e = 0; e < E; e++)
            dzt[e] += daux * scale / N * p[e] * (st.f[e] - dot) + dzl * 2.f * lse * p[e] / N;
    }
}

// 1 backward. Logits -> router (and noise) weights and the router input, then through the jitter.
void route_backward(float* dx, const MoeWeights& g, const RouterScratch& b, const float* x, const MoeSaved& sv,
                    const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, E = d.E;
    const float* xr = input_jitter(d) ? sv.xr : x;
    std::memset(b.dxr, 0, sizeof(float) * N * C);
    if (noisy_gate(d)) {  // noisy = z + eps * softplus(u), u = W_noise x
        for (size_t i = 0; i < (size_t)N * E; i++) {
            b.dz[i] += b.dzn[i];
            b.dzn[i] *= sv.eps[i] * sigmoid(sv.noise_pre[i]);
        }
        linear_backward(b.dxr, g.noise, nullptr, b.dzn, xr, w.noise, N, C, E);
    }
    linear_backward(b.dxr, g.router, nullptr, b.dz, xr, w.router, N, C, E);
    if (input_jitter(d))
        for (size_t i = 0; i < (size_t)N * C; i++) dx[i] += b.dxr[i] * sv.jit[i];
    else
        for (size_t i = 0; i < (size_t)N * C; i++) dx[i] += b.dxr[i];
}

}  // namespace

const float* moe_route(MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d) {
    const float* sel_logits = route_logits(st, sv, x, w, d);
    if (d.routing == MoeRouting::expert_choice) select_expert_choice(sv, d);
    else select_token_choice(sv, d, sel_logits);
    return sel_logits;
}

// 4. Stats and losses of this layer (the model averages them over layers): dropped share, load,
// f (choice fraction before capacity) and P (mean probability), L_aux = scale sum f P, L_z = mean lse^2.
void moe_stats(MoeStats& st, const MoeSaved& sv, const MoeDims& d) {
    const int N = d.N, E = d.E, K = d.K, A = *sv.n_assign;
    int* reached = Work(sv.work, d).reached;
    std::fill(reached, reached + N, 0);
    for (int r = 0; r < A; r++) reached[sv.a_token[r]] = 1;
    st.dropped_frac = 1.f - (float)std::accumulate(reached, reached + N, 0) / N;
    st.load.assign(E, 0.f);
    for (int e = 0; e < E; e++) st.load[e] = A ? (float)(sv.offset[e + 1] - sv.offset[e]) / A : 0.f;
    st.f.assign(E, 0.f);
    st.P.assign(E, 0.f);
    if (d.routing == MoeRouting::expert_choice) st.f = st.load;
    else
        for (size_t i = 0; i < (size_t)N * K; i++) st.f[sv.choice[i]] += 1.f / ((float)N * K);
    for (int t = 0; t < N; t++)
        for (int e = 0; e < E; e++) st.P[e] += sv.probs[(size_t)t * E + e] / N;
    st.aux = 0.f;
    for (int e = 0; e < E; e++) st.aux += aux_scale(d) * st.f[e] * st.P[e];
    double zl = 0;
    for (int t = 0; t < N; t++) {
        const double lse = logsumexp(sv.logits + (size_t)t * E, E);
        zl += lse * lse;
    }
    st.zloss = (float)(zl / N);
}


void moe_router_backward(float* dx, const MoeWeights& g, float* scratch, const float* dw, const float* x,
                         const MoeStats& st, const MoeSaved& sv, const MoeWeights& w, const MoeDims& d, float daux,
                         float dzl) {
    const RouterScratch b(scratch, d);
    std::fill(b.dz, b.dz + (size_t)d.N * d.E, 0.f);
    if (noisy_gate(d)) std::fill(b.dzn, b.dzn + (size_t)d.N * d.E, 0.f);
    weights_backward(b, dw, sv, d);
    losses_backward(b, st, sv, d, daux, dzl);
    route_backward(dx, g, b, x, sv, w, d);
}

}  // namespace rl
