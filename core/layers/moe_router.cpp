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
    if (d.norm_topk >= 0 && d.score == ScoreFunction::softmax && d.routing == MoeRouting::topk) return d.norm_topk == 1;
    return d.score == ScoreFunction::softmax &&
           ((d.routing == MoeRouting::topk && d.n_shared == 0) || d.routing == MoeRouting::noisy_topk);
}

size_t moe_work_ints(const MoeDims& d) { return (size_t)2 * d.E + (size_t)2 * d.N * d.K + 2 * d.N; }

size_t moe_router_scratch_floats(const MoeDims& d) { return (size_t)d.N * (2 * d.E + d.C + 2 * d.K); }

namespace {

constexpr int k_max_experts = 1024;  // config_validate: n_experts <= 1024

double uniform01(std::mt19937_64& g) { return ((g() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
float std_normal(std::mt19937_64& g) {
    return (float)(std::sqrt(-2.0 * std::log(uniform01(g))) * std::cos(6.283185307179586 * uniform01(g)));
}
float softplus(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

// How a selected expert's combine weight comes from its scores (before gamma):
// softmax_selected: softmax over the K selected logits (Mixtral, noisy top-k); prob: p_e (Switch,
// DeepSeekMoE with shared experts, expert choice); sigmoid_norm: s_e / sum of the selected s (K > 1,
// DeepSeek-V3); sigmoid: s_e (K = 1).
enum class WeightRule { softmax_selected, prob, sigmoid_norm, sigmoid };
WeightRule weight_rule(const MoeDims& d) {
    if (d.score == ScoreFunction::sigmoid) return d.K > 1 ? WeightRule::sigmoid_norm : WeightRule::sigmoid;
    return moe_renormalised(d) ? WeightRule::softmax_selected : WeightRule::prob;
}

// Layout of MoeSaved::work: per-expert counts and fill cursors, per-choice keep flags, per-token
// reached flags and an order buffer (expert choice, and the probs drop policy's per-expert lists).
// Backward reuses the keep and reached regions for its per-token tables.
struct Work {
    int *count, *keep, *fill, *reached, *order;
    Work(int* w, const MoeDims& d) {
        count = w;                          // (E)
        keep = count + d.E;                 // (N,K)
        fill = keep + (size_t)d.N * d.K;    // (E)
        reached = fill + d.E;               // (N)
        order = reached + d.N;              // (N*K)
    }
};

// Noise and jitter are drawn only while training: noisy top-k's noise, the others' input jitter.
bool noisy_gate(const MoeDims& d) { return d.routing == MoeRouting::noisy_topk && d.training && d.jitter > 0.f; }
bool input_jitter(const MoeDims& d) { return d.routing != MoeRouting::noisy_topk && d.training && d.jitter > 0.f; }

// The balance quantities read p^ = the scores normalised over all experts: p itself for softmax,
// s / sum s for sigmoid (Megatron-Core's compute_routing_scores_for_aux_loss). Returns sum s.
float normalised_scores(float* ph, const float* s, int E, ScoreFunction fn) {
    if (fn == ScoreFunction::softmax) {
        std::copy(s, s + E, ph);
        return 1.f;
    }
    float sum = 0.f;
    for (int e = 0; e < E; e++) sum += s[e];
    for (int e = 0; e < E; e++) ph[e] = s[e] / sum;
    return sum;
}

// 1. Route: z = W_g x (fp32; x jittered first when asked), scores (softmax p or sigmoid s), the
// mean router entropy of p^, and for noisy top-k the noisy logits. Returns the logits selection reads.
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
    float ph[k_max_experts];
    for (int t = 0; t < N; t++) {
        const float* z = sv.logits + (size_t)t * E;
        float* p = sv.probs + (size_t)t * E;
        if (d.score == ScoreFunction::sigmoid) {
            for (int e = 0; e < E; e++) p[e] = sigmoid(z[e]);
        } else {
            const float mx = *std::max_element(z, z + E);
            float sum = 0.f;
            for (int e = 0; e < E; e++) sum += p[e] = std::exp(z[e] - mx);
            for (int e = 0; e < E; e++) p[e] /= sum;
        }
        normalised_scores(ph, p, E, d.score);
        for (int e = 0; e < E; e++)
            if (ph[e] > 0.f) ent -= ph[e] * std::log(ph[e]);
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
// token), kept in token order; weight = gamma p. Not causal.
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
            sv.a_w[A] = d.topk_scale * sv.probs[(size_t)order[k] * E + e];
        }
    }
    sv.offset[E] = A;
    *sv.n_assign = A;
}

}  // namespace

void moe_selection_key(float* key, const float* z, const float* s, const MoeDims& d) {
    const int E = d.E;
    // The key top-k reads: the logits where the weights are a softmax over the selected logits
    // (Megatron's default, no pre-softmax), else the scores; plus the bias (selection only).
    const float* base = moe_renormalised(d) ? z : s;
    for (int e = 0; e < E; e++) key[e] = base[e] + (d.bias ? d.bias[e] : 0.f);
    if (d.any_masked)  // an intervention: masked experts lose every comparison (validation leaves K others)
        for (int e = 0; e < E; e++)
            if (d.is_masked(e)) key[e] = -INFINITY;
    if (d.group_topk <= 0) return;
    // Group-limited routing (DeepSeek-V3, Megatron's group_limited_topk): a group scores the sum of its
    // top K/group_topk keys; the token keeps its best group_topk groups and every other expert is out.
    const int G = d.n_groups, per = E / G, take = d.K / d.group_topk;
    float gscore[k_max_experts] = {}, tmp[k_max_experts];
    int idx[k_max_experts];
    for (int g = 0; g < G; g++) {
        std::copy(key + g * per, key + (g + 1) * per, tmp);
        topk_indices(idx, tmp, per, take);
        float sum = 0.f;
        for (int k = 0; k < take; k++) sum += tmp[idx[k]];
        gscore[g] = sum;
    }
    topk_indices(idx, gscore, G, d.group_topk);
    char keep[k_max_experts] = {};
    for (int k = 0; k < d.group_topk; k++) keep[idx[k]] = 1;
    for (int g = 0; g < G; g++)
        if (!keep[g]) std::fill(key + g * per, key + (g + 1) * per, -INFINITY);
}

namespace {

// Combine weights (N,K) of each token's choices, before capacity: the weight rule times gamma.
void choice_weights(const MoeSaved& sv, const MoeDims& d, const float* sel_logits) {
    const int N = d.N, E = d.E, K = d.K;
    const WeightRule rule = weight_rule(d);
    for (int t = 0; t < N; t++) {
        const float* z = sel_logits + (size_t)t * E;
        const float* s = sv.probs + (size_t)t * E;
        const int* ch = sv.choice + (size_t)t * K;
        float* cw = sv.cw + (size_t)t * K;
        float zmax = -INFINITY, sum = 0.f;
        if (rule == WeightRule::softmax_selected) {
            for (int k = 0; k < K; k++) zmax = std::max(zmax, z[ch[k]]);
            for (int k = 0; k < K; k++) sum += std::exp(z[ch[k]] - zmax);
        }
        if (rule == WeightRule::sigmoid_norm) {
            for (int k = 0; k < K; k++) sum += s[ch[k]];
            sum += 1e-20f;  // as Megatron: a token whose selected scores all underflow gets weight 0, not NaN
        }
        for (int k = 0; k < K; k++) {
            const int e = ch[k];
            float wk = s[e];
            if (rule == WeightRule::softmax_selected) wk = std::exp(z[e] - zmax) / sum;
            if (rule == WeightRule::sigmoid_norm) wk = s[e] / sum;
            cw[k] = d.topk_scale * wk;
        }
    }
}

// 2b. Token choice: each token's top-K of the selection key; under a capacity (Switch, training) an
// expert keeps its first `cap` tokens in token order (policy position: later positions lose) or its
// `cap` highest-weight ones (policy probs: ties to the earlier token). Then the per-expert assignment
// lists in token order with each kept choice's combine weight.
void select_token_choice(const MoeSaved& sv, const MoeDims& d, const float* sel_logits) {
    const int N = d.N, E = d.E, K = d.K, cap = d.capacity();
    Work wk(sv.work, d);
    float key[k_max_experts];
    for (int t = 0; t < N; t++) {
        moe_selection_key(key, sel_logits + (size_t)t * E, sv.probs + (size_t)t * E, d);
        topk_indices(sv.choice + (size_t)t * K, key, E, K);
    }
    choice_weights(sv, d, sel_logits);
    const size_t NK = (size_t)N * K;
    std::fill(wk.count, wk.count + E, 0);
    if (d.drop == TokenDropPolicy::probs && cap < N) {
        // Bucket the choices by expert (token order kept), then each over-full expert keeps its best.
        for (size_t i = 0; i < NK; i++) wk.count[sv.choice[i]]++;
        wk.fill[0] = 0;
        for (int e = 1; e < E; e++) wk.fill[e] = wk.fill[e - 1] + wk.count[e - 1];
        for (size_t i = 0; i < NK; i++) wk.order[wk.fill[sv.choice[i]]++] = (int)i;
        std::fill(wk.keep, wk.keep + NK, 1);
        for (int e = 0, b = 0; e < E; e++) {
            int* seg = wk.order + b;
            b += wk.count[e];
            if (wk.count[e] <= cap) continue;
            std::stable_sort(seg, seg + wk.count[e], [&](int a, int c) { return sv.cw[a] > sv.cw[c]; });
            for (int j = cap; j < wk.count[e]; j++) wk.keep[seg[j]] = 0;
            wk.count[e] = cap;
        }
    } else {
        for (size_t i = 0; i < NK; i++) {
            int& n = wk.count[sv.choice[i]];
            wk.keep[i] = n < cap;
            n += wk.keep[i];
        }
    }
    sv.offset[0] = 0;
    for (int e = 0; e < E; e++) sv.offset[e + 1] = sv.offset[e] + wk.count[e];
    std::copy(sv.offset, sv.offset + E, wk.fill);
    for (int t = 0; t < N; t++)
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)t * K + k;
            if (!wk.keep[i]) continue;
            const int e = sv.choice[i], r = wk.fill[e]++;
            sv.a_token[r] = t;
            sv.a_expert[r] = e;
            sv.a_w[r] = sv.cw[i];
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

// 2 backward. Combine weights -> logits, through gamma (w = gamma w^, dL/dw^ = gamma dw):
// prob:             w^ = p_e,                dz_j += dw^ p_e (delta_ej - p_j)
// sigmoid (K = 1):  w^ = s_e,                dz_e += dw^ s_e (1 - s_e)
// softmax_selected: w^ = softmax of the selected logits, dz_j = w^_j (dw^_j - sum_i w^_i dw^_i)
// sigmoid_norm:     w^ = s_j / S, S = sum of the selected s: ds_j = (dw^_j - sum_i w^_i dw^_i) / S,
//                   dz_j = ds_j s_j (1 - s_j)
void weights_backward(const RouterScratch& b, const float* dw, const MoeSaved& sv, const MoeDims& d) {
    const int N = d.N, E = d.E, K = d.K, A = *sv.n_assign;
    const float g = d.topk_scale;
    const WeightRule rule = weight_rule(d);
    if (rule == WeightRule::prob || rule == WeightRule::sigmoid) {
        for (int r = 0; r < A; r++) {
            const int t = sv.a_token[r], e = sv.a_expert[r];
            const float* p = sv.probs + (size_t)t * E;
            float* dzt = b.dz + (size_t)t * E;
            const float pe = p[e], dwh = g * dw[r];
            if (rule == WeightRule::sigmoid) {
                dzt[e] += dwh * pe * (1.f - pe);
                continue;
            }
            for (int j = 0; j < E; j++) dzt[j] -= dwh * pe * p[j];
            dzt[e] += dwh * pe;
        }
        return;
    }
    Work wk(sv.work, d);
    int* te = wk.keep;     // (N,K) expert of each of the token's kept weights
    int* tn = wk.reached;  // (N) how many
    std::fill(tn, tn + N, 0);
    for (int r = 0; r < A; r++) {
        const int t = sv.a_token[r], k = tn[t]++;
        b.tw[(size_t)t * K + k] = sv.a_w[r] / g;
        b.tdw[(size_t)t * K + k] = g * dw[r];
        te[(size_t)t * K + k] = sv.a_expert[r];
    }
    float* target = noisy_gate(d) ? b.dzn : b.dz;
    // Renormalised weights come only without a capacity (K > 1), so every token kept all K.
    for (int t = 0; t < N; t++) {
        float dot = 0.f;
        for (int k = 0; k < tn[t]; k++) dot += b.tw[(size_t)t * K + k] * b.tdw[(size_t)t * K + k];
        float S = 0.f;
        const float* s = sv.probs + (size_t)t * E;
        if (rule == WeightRule::sigmoid_norm)
            for (int k = 0; k < tn[t]; k++) S += s[te[(size_t)t * K + k]];
        for (int k = 0; k < tn[t]; k++) {
            const size_t i = (size_t)t * K + k;
            const int e = te[i];
            if (rule == WeightRule::softmax_selected) target[(size_t)t * E + e] += b.tw[i] * (b.tdw[i] - dot);
            else target[(size_t)t * E + e] += (b.tdw[i] - dot) / (S + 1e-20f) * s[e] * (1.f - s[e]);
        }
    }
}

// Row of f_bal that token t's balance term reads: its sequence for seq_aux_loss, else the one row.
int balance_row(const MoeDims& d, int t) { return d.balance == LoadBalancing::seq_aux_loss ? t / d.seq_rows : 0; }

// 4 backward. L_aux = scale sum_e f_e P_e (per sequence and averaged for seq_aux_loss) with f fixed and
// P_e = mean_t p^_te: dL/dp^_te = scale f_e / N in every variant (seq: 1/B of 1/T). Then p^ -> z:
// softmax dz = p (c - sum p c); sigmoid p^ = s / S: ds_j = (c_j - sum_e c_e p^_e) / S, dz = ds s (1 - s).
// z-loss (1/N) sum_t lse_t^2 on the logits: dz_tj = 2 lse_t softmax(z_t)_j / N.
void losses_backward(const RouterScratch& b, const MoeStats& st, const MoeSaved& sv, const MoeDims& d, float daux,
                     float dzl) {
    const int N = d.N, E = d.E;
    const bool bal = d.balance != LoadBalancing::none && daux != 0.f && !st.f_bal.empty();
    const float scale = aux_scale(d);
    float c[k_max_experts], q[k_max_experts];
    for (int t = 0; t < N; t++) {
        const float* z = sv.logits + (size_t)t * E;
        const float* p = sv.probs + (size_t)t * E;
        float* dzt = b.dz + (size_t)t * E;
        if (bal) {
            const float* f = st.f_bal.data() + (size_t)balance_row(d, t) * E;
            for (int e = 0; e < E; e++) c[e] = daux * scale / N * f[e];
            const float S = normalised_scores(q, p, E, d.score);
            float dot = 0.f;
            for (int e = 0; e < E; e++) dot += q[e] * c[e];
            for (int e = 0; e < E; e++) {
                if (d.score == ScoreFunction::softmax) dzt[e] += p[e] * (c[e] - dot);
                else dzt[e] += (c[e] - dot) / S * p[e] * (1.f - p[e]);
            }
        }
        if (dzl == 0.f) continue;
        const float lse = logsumexp(z, E);
        for (int e = 0; e < E; e++) dzt[e] += dzl * 2.f * lse * std::exp(z[e] - lse) / N;
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
// f (choice fraction before capacity), P (mean p^), the balance loss's f rows and L_aux, L_z = mean lse^2.
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
    st.counts.assign(E, 0.f);
    if (d.routing == MoeRouting::expert_choice)
        for (int e = 0; e < E; e++) st.counts[e] = (float)(sv.offset[e + 1] - sv.offset[e]);
    else
        for (size_t i = 0; i < (size_t)N * K; i++) st.counts[sv.choice[i]] += 1.f;
    const float choices = d.routing == MoeRouting::expert_choice ? (float)std::max(A, 1) : (float)N * K;
    for (int e = 0; e < E; e++) st.f[e] = st.counts[e] / choices;
    float ph[k_max_experts];
    const bool seq = d.balance == LoadBalancing::seq_aux_loss;
    const int rows = d.balance == LoadBalancing::none ? 0 : seq ? N / d.seq_rows : 1;
    // Per-row P: the batch's, or each sequence's for seq_aux_loss (its own tokens' mean).
    std::vector<float>& Prow = st.P_rows;
    Prow.assign((size_t)std::max(rows, 1) * E, 0.f);
    for (int t = 0; t < N; t++) {
        normalised_scores(ph, sv.probs + (size_t)t * E, E, d.score);
        float* pr = Prow.data() + (size_t)(seq ? t / d.seq_rows : 0) * E;
        for (int e = 0; e < E; e++) st.P[e] += ph[e] / N, pr[e] += ph[e];
    }
    st.f_bal.assign((size_t)rows * E, 0.f);
    st.aux = 0.f;
    if (seq) {
        const int T = d.seq_rows;
        for (int t = 0; t < N; t++)
            for (int k = 0; k < K; k++) st.f_bal[(size_t)(t / T) * E + sv.choice[(size_t)t * K + k]] += 1.f / ((float)T * K);
        double aux = 0;
        for (int b = 0; b < rows; b++)
            for (int e = 0; e < E; e++) aux += (double)st.f_bal[(size_t)b * E + e] * Prow[(size_t)b * E + e] / T;
        st.aux = (float)(aux_scale(d) * aux / rows);
    } else if (rows == 1) {
        if (d.balance == LoadBalancing::global_aux_loss && d.global_counts) {
            // Qwen's global-batch balance (arXiv 2501.11873): f over the window of steps, P this batch's.
            const double tot = (d.global_rows + N) * K;
            for (int e = 0; e < E; e++) st.f_bal[e] = (float)((d.global_counts[e] + (double)st.counts[e]) / tot);
        } else {
            st.f_bal = st.f;
        }
        for (int e = 0; e < E; e++) st.aux += aux_scale(d) * st.f_bal[e] * st.P[e];
    }
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
