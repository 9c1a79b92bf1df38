// The sparse MoE FFN: router (moe_router.cpp), then the experts over their gathered rows.
#include "layers/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "layers/ffn.h"
#include "layers/moe_router.h"
#include "layers/routing.h"
#include "util/threads.h"

namespace rl {

int MoeDims::capacity() const {
    // Switch's capacity drops tokens only in training; inference routes every token, so decoding one
    // token at a time gives what the full forward gives.
    if (routing == MoeRouting::top1_capacity && training) return std::max(1, (int)std::ceil((double)N / E * capacity_factor));
    if (routing == MoeRouting::expert_choice) return std::min(N, std::max(1, (int)std::ceil((double)N * capacity_factor / E)));
    if (routing == MoeRouting::topk && !training && inference_capacity_factor > 0)
        return std::min(N, std::max(1, (int)std::ceil((double)N * K * inference_capacity_factor / E)));
    return N;
}

int MoeDims::max_assign() const {
    if (routing == MoeRouting::expert_choice) return E * capacity();
    return N * K;
}

namespace {

// Worth a parallel region: more than one expert and at least ~1 MFLOP of expert work in all.
bool experts_in_parallel(const MoeDims& d, int A) { return d.E > 1 && 6.0 * A * d.C * d.F > 1e6; }

// The experts, busiest first: the threads take them in turn (dynamic schedule), so the largest ones
// start first and the last to finish are small (longest-processing-time order; in expert order a busy
// expert near the end can leave the other thread waiting at the region's end). Ties in expert order,
// so the order, and each expert's rows, do not depend on the thread count. Reused per thread.
const std::vector<int>& experts_by_load(const int* offset, int E) {
    thread_local std::vector<int> order;
    order.resize(E);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {  // not stable_sort: that allocates a buffer
        const int na = offset[a + 1] - offset[a], nb = offset[b + 1] - offset[b];
        return na != nb ? na > nb : a < b;
    });
    return order;
}

// 3. Experts: gather each expert's rows, one SwiGLU GEMM chain per expert, weighted scatter-add.
void moe_experts_forward(float* out, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d) {
    const int C = d.C, F = d.F, A = *sv.n_assign;
    for (int r = 0; r < A; r++) std::memcpy(sv.xg + (size_t)r * C, x + (size_t)sv.a_token[r] * C, sizeof(float) * C);
    // Threads over experts: each writes only its own gathered rows. An expert's GEMMs then run on
    // one thread (they are a few rows each), which beats splitting each small GEMM over threads.
    const std::vector<int>& order = experts_by_load(sv.offset, d.E);
    parallel_for(d.E, experts_in_parallel(d, A), [&](int i) {
        const int e = order[i], r0 = sv.offset[e], n = sv.offset[e + 1] - r0;
        if (n == 0) return;
        swiglu_ffn_forward(sv.ye + (size_t)r0 * C, sv.fa + (size_t)r0 * F, sv.fb + (size_t)r0 * F,
                           sv.fh + (size_t)r0 * F, sv.xg + (size_t)r0 * C, w.experts[e], n, C, F);
    }, /*dynamic=*/true);
    for (int r = 0; r < A; r++) {
        float* o = out + (size_t)sv.a_token[r] * C;
        const float* y = sv.ye + (size_t)r * C;
        for (int c = 0; c < C; c++) o[c] += sv.a_w[r] * y[c];
    }
}

// 3'. Cost probe only (inference): the "compute every expert on every row and mask" baseline that
// routing is measured against (same output, E/K the work). An expert's assignments are in token order.
void moe_experts_forward_all(float* out, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, F = d.F;
    const int chunk = std::min(N, d.max_assign());  // rows the expert buffers hold
    for (int e = 0; e < d.E; e++)
        for (int t0 = 0, r = sv.offset[e]; t0 < N; t0 += chunk) {
            const int n = std::min(chunk, N - t0);
            swiglu_ffn_forward(sv.ye, sv.fa, sv.fb, sv.fh, x + (size_t)t0 * C, w.experts[e], n, C, F);
            for (int t = t0; t < t0 + n; t++) {  // the mask: rows not routed to e get weight 0
                const bool routed = r < sv.offset[e + 1] && sv.a_token[r] == t;
                const float wr = routed ? sv.a_w[r++] : 0.f;
                for (int c = 0; c < C; c++) out[(size_t)t * C + c] += wr * sv.ye[(size_t)(t - t0) * C + c];
            }
        }
}

// sigmoid(w . x) of one row (the shared experts' gate).
double shared_gate_of(const float* w, const float* x, int C) {
    double z = 0;
    for (int c = 0; c < C; c++) z += (double)w[c] * x[c];
    return sigmoid((float)z);
}

// Shared experts (DeepSeekMoE): every row, weight 1; with a shared gate (Qwen2-MoE, modeling_qwen2_moe.py
// Qwen2MoeSparseMoeBlock.forward) the sum of row t times sigmoid(w_g . x_t).
void moe_shared_forward(float* out, const MoeSaved& sv, const float* x, const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, F = d.shared_width();
    for (int s = 0; s < d.n_shared; s++) {
        float* ys = sv.sye + (size_t)s * N * C;
        swiglu_ffn_forward(ys, sv.sfa + (size_t)s * N * F, sv.sfb + (size_t)s * N * F, sv.sfh + (size_t)s * N * F, x,
                           w.shared[s], N, C, F);
        for (int t = 0; t < N; t++) {
            const float g = w.shared_gate ? (float)shared_gate_of(w.shared_gate, x + (size_t)t * C, C) : 1.f;
            for (int c = 0; c < C; c++) out[(size_t)t * C + c] += g * ys[(size_t)t * C + c];
        }
    }
}

// Expert backward scratch, one named view each; the router's scratch follows it.
struct ExpertScratch {
    float *dye, *dxg;        // (A,C) d expert outputs, d gathered rows
    float *dfb, *dfh;        // (A,F) routed experts' SwiGLU scratch (d gate overwrites dfh)
    float *sfb, *sfh;        // (N,F) shared experts' SwiGLU scratch
    float *dw, *router;      // (A) d combine weight; moe_router_scratch_floats
    ExpertScratch(float* s, const MoeDims& d) {
        const size_t N = d.N, C = d.C, F = d.F, Fs = d.shared_width(), A = d.max_assign();
        dye = s, dxg = dye + A * C, dfb = dxg + A * C, dfh = dfb + A * F;
        sfb = dfh + A * F, sfh = sfb + N * Fs, dw = sfh + N * Fs, router = dw + A;
    }
    static size_t floats(const MoeDims& d) {
        const size_t N = d.N, C = d.C, F = d.F, Fs = d.shared_width(), A = d.max_assign();
        return A * C * 2 + A * F * 2 + N * Fs * 2 + A + moe_router_scratch_floats(d);
    }
};

// 3 backward. Shared and routed experts: dx through the experts, and dw = dout[t] . ye per assignment.
void moe_experts_backward(float* dx, const MoeWeights& g, const ExpertScratch& b, const float* dout, const float* x,
                          const MoeSaved& sv, const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, F = d.F, Fs = d.shared_width(), A = *sv.n_assign;
    // Qwen2-MoE's shared gate: out_t += g_t sum_s ys_st with g_t = sigmoid(w_g . x_t), so each shared
    // expert gets g_t dout_t (gdout), and dz_t = g_t (1 - g_t) sum_s dout_t . ys_st flows to x_t (times
    // w_g) and to w_g (times x_t).
    std::vector<float> gate, dz, gdout;
    if (w.shared_gate) {
        gate.resize(N), dz.assign(N, 0.f), gdout.resize((size_t)N * C);
        for (int t = 0; t < N; t++) gate[t] = (float)shared_gate_of(w.shared_gate, x + (size_t)t * C, C);
        for (int t = 0; t < N; t++)
            for (int c = 0; c < C; c++) gdout[(size_t)t * C + c] = gate[t] * dout[(size_t)t * C + c];
    }
    for (int s = 0; s < d.n_shared; s++) {
        if (w.shared_gate)
            for (int t = 0; t < N; t++) {
                const float* ys = sv.sye + ((size_t)s * N + t) * C;
                double dot = 0;
                for (int c = 0; c < C; c++) dot += (double)dout[(size_t)t * C + c] * ys[c];
                dz[t] += (float)(dot * gate[t] * (1 - gate[t]));
            }
        swiglu_ffn_backward(dx, g.shared[s], b.sfb, b.sfh, w.shared_gate ? gdout.data() : dout, x, sv.sfa + (size_t)s * N * Fs,
                            sv.sfb + (size_t)s * N * Fs, sv.sfh + (size_t)s * N * Fs, w.shared[s], N, C, Fs);
    }
    for (int t = 0; t < (int)dz.size(); t++)
        for (int c = 0; c < C; c++) {
            dx[(size_t)t * C + c] += dz[t] * w.shared_gate[c];
            if (g.shared_gate) g.shared_gate[c] += dz[t] * x[(size_t)t * C + c];
        }
    for (int r = 0; r < A; r++) {  // dye = w * dout[t], dw = dout[t] . ye
        const float* go = dout + (size_t)sv.a_token[r] * C;
        const float* y = sv.ye + (size_t)r * C;
        float* dy = b.dye + (size_t)r * C;
        float acc = 0.f;
        for (int c = 0; c < C; c++) {
            dy[c] = sv.a_w[r] * go[c];
            acc += go[c] * y[c];
        }
        b.dw[r] = acc;
    }
    std::memset(b.dxg, 0, sizeof(float) * A * C);
    // Threads over experts: each writes its own weight gradients and gathered rows' dx.
    const std::vector<int>& order = experts_by_load(sv.offset, d.E);
    parallel_for(d.E, experts_in_parallel(d, A), [&](int i) {
        const int e = order[i], r0 = sv.offset[e], n = sv.offset[e + 1] - r0;
        if (n == 0) return;
        swiglu_ffn_backward(b.dxg + (size_t)r0 * C, g.experts[e], b.dfb + (size_t)r0 * F, b.dfh + (size_t)r0 * F, b.dye + (size_t)r0 * C, sv.xg + (size_t)r0 * C,
                            sv.fa + (size_t)r0 * F, sv.fb + (size_t)r0 * F, sv.fh + (size_t)r0 * F, w.experts[e], n, C,
                            F);
    }, /*dynamic=*/true);
    for (int r = 0; r < A; r++) {  // scatter the gathered rows' gradients back
        float* o = dx + (size_t)sv.a_token[r] * C;
        const float* gi = b.dxg + (size_t)r * C;
        for (int c = 0; c < C; c++) o[c] += gi[c];
    }
}

}  // namespace

size_t moe_scratch_floats(const MoeDims& d) { return ExpertScratch::floats(d); }

// The four stages of llama.cpp's build_moe_ffn: route, select, experts, stats.
void moe_forward(float* out, MoeStats& st, const MoeSaved& sv, const float* x, const MoeWeights& w,
                 const MoeDims& d) {
    moe_route(st, sv, x, w, d);
    std::memset(out, 0, sizeof(float) * d.N * d.C);
    if (d.all_experts) moe_experts_forward_all(out, sv, x, w, d);
    else moe_experts_forward(out, sv, x, w, d);
    moe_shared_forward(out, sv, x, w, d);
    moe_stats(st, sv, d);
}

void moe_backward(float* dx, const MoeWeights& g, float* scratch, const float* dout, const float* x,
                  const MoeStats& st, const MoeSaved& sv, const MoeWeights& w, const MoeDims& d, float daux,
                  float dzl) {
    const ExpertScratch b(scratch, d);
    moe_experts_backward(dx, g, b, dout, x, sv, w, d);
    moe_router_backward(dx, g, b.router, b.dw, x, st, sv, w, d, daux, dzl);
}

namespace {

// The shared experts' gate of one row: sigmoid(w . x), or 1 without a gate.
double shared_gate_ref(const float* w, const float* x, int C) {
    if (!w) return 1;
    double z = 0;
    for (int c = 0; c < C; c++) z += (double)w[c] * x[c];
    return 1 / (1 + std::exp(-z));
}

}  // namespace

void moe_forward_ref(float* out, const float* x, const MoeWeights& w, const MoeDims& d) {
    const int N = d.N, C = d.C, E = d.E, K = d.K, F = d.F;
    const bool sig = d.score == ScoreFunction::sigmoid;
    std::vector<double> z((size_t)N * E, 0.0), p((size_t)N * E, 0.0);  // (N,E) router logits, scores
    for (int t = 0; t < N; t++) {
        double* zt = &z[(size_t)t * E];
        double* pt = &p[(size_t)t * E];
        for (int e = 0; e < E; e++)
            for (int c = 0; c < C; c++) zt[e] += (double)w.router[(size_t)e * C + c] * x[(size_t)t * C + c];
        const double mx = *std::max_element(zt, zt + E);
        double s = 0;
        for (int e = 0; e < E; e++) s += pt[e] = sig ? 1 / (1 + std::exp(-zt[e])) : std::exp(zt[e] - mx);
        if (!sig)
            for (int e = 0; e < E; e++) pt[e] /= s;
    }
    auto expert = [&](const ExpertWeights& ew, int t, std::vector<double>& y, int width) {
        std::vector<double> h(width);
        for (int f = 0; f < width; f++) {
            double a = 0, b = 0;
            for (int c = 0; c < C; c++) {
                a += (double)ew.w_gate[(size_t)f * C + c] * x[(size_t)t * C + c];
                b += (double)ew.w_up[(size_t)f * C + c] * x[(size_t)t * C + c];
            }
            h[f] = a / (1 + std::exp(-a)) * b;
        }
        for (int c = 0; c < C; c++) {
            y[c] = 0;
            for (int f = 0; f < width; f++) y[c] += (double)ew.w_down[(size_t)c * width + f] * h[f];
        }
    };
    std::vector<double> acc((size_t)N * C, 0.0), y(C);
    auto add = [&](int t, int e, double wt) {
        expert(w.experts[e], t, y, F);
        for (int c = 0; c < C; c++) acc[(size_t)t * C + c] += wt * y[c];
    };
    if (d.routing == MoeRouting::expert_choice) {
        const int cap = d.capacity();
        for (int e = 0; e < E; e++) {
            std::vector<int> order(N);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return p[(size_t)a * E + e] > p[(size_t)b * E + e]; });
            for (int k = 0; k < cap; k++) add(order[k], e, d.topk_scale * p[(size_t)order[k] * E + e]);
        }
    } else {
        // Token choice: key = logits (renormalised softmax) or scores, + bias; group limit; top-K.
        const bool renorm = moe_renormalised(d);
        const int cap = d.capacity();
        struct Pick { int t, e; double w; };
        std::vector<Pick> picks;  // every choice, token order, with its weight before capacity
        for (int t = 0; t < N; t++) {
            std::vector<double> key(E);
            for (int e = 0; e < E; e++) key[e] = d.is_masked(e) ? -INFINITY : (renorm ? z : p)[(size_t)t * E + e] + (d.bias ? d.bias[e] : 0.0);
            if (d.group_topk > 0) {
                const int per = E / d.n_groups, take = K / d.group_topk;
                std::vector<std::pair<double, int>> gs;
                for (int g = 0; g < d.n_groups; g++) {
                    std::vector<double> in(key.begin() + g * per, key.begin() + (g + 1) * per);
                    std::sort(in.rbegin(), in.rend());
                    gs.push_back({-std::accumulate(in.begin(), in.begin() + take, 0.0), g});
                }
                std::stable_sort(gs.begin(), gs.end(), [](auto& a, auto& b) { return a.first < b.first; });
                for (int j = d.group_topk; j < d.n_groups; j++)
                    for (int e = gs[j].second * per; e < (gs[j].second + 1) * per; e++) key[e] = -INFINITY;
            }
            std::vector<int> order(E);
            std::iota(order.begin(), order.end(), 0);
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return key[a] > key[b]; });
            double sel = 0, zsel = 0;
            for (int k = 0; k < K; k++) sel += p[(size_t)t * E + order[k]], zsel += std::exp(z[(size_t)t * E + order[k]]);
            for (int k = 0; k < K; k++) {
                const int e = order[k];
                const double pe = p[(size_t)t * E + e];
                double wt = renorm ? std::exp(z[(size_t)t * E + e]) / zsel : sig && K > 1 ? pe / sel : pe;
                picks.push_back({t, e, d.topk_scale * wt});
            }
        }
        std::vector<int> taken(E, 0);
        std::vector<char> keep(picks.size(), 1);
        if (d.drop == TokenDropPolicy::probs) {  // per expert, the cap highest weights (earlier token on ties)
            for (int e = 0; e < E; e++) {
                std::vector<int> mine;
                for (size_t i = 0; i < picks.size(); i++)
                    if (picks[i].e == e) mine.push_back((int)i);
                std::stable_sort(mine.begin(), mine.end(), [&](int a, int b) { return picks[a].w > picks[b].w; });
                for (size_t j = cap; j < mine.size(); j++) keep[mine[j]] = 0;
            }
        } else {
            for (size_t i = 0; i < picks.size(); i++) keep[i] = taken[picks[i].e]++ < cap;
        }
        for (size_t i = 0; i < picks.size(); i++)
            if (keep[i]) add(picks[i].t, picks[i].e, picks[i].w);
    }
    for (int s = 0; s < d.n_shared; s++)
        for (int t = 0; t < N; t++) {
            expert(w.shared[s], t, y, d.shared_width());
            const double g = shared_gate_ref(w.shared_gate, x + (size_t)t * C, C);
            for (int c = 0; c < C; c++) acc[(size_t)t * C + c] += g * y[c];
        }
    for (size_t i = 0; i < acc.size(); i++) out[i] = (float)acc[i];
}

}  // namespace rl
