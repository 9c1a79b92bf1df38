#include "infer/cost.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>

#include "util/threads.h"

namespace rl {

double CostComponent::speedup_naive() const {
    return naive_fraction > 0 ? 1.0 / naive_fraction : 1.0;
}

namespace {

double head_fraction(const ModelConfig& c) {
    const HeadsConfig& h = c.attention.heads;
    if (h.kind == HeadSelection::moh) return (double)(h.n_shared + h.n_active_routed) / c.n_heads;
    if (h.kind == HeadSelection::static_pruning) return (double)h.n_active / c.n_heads;
    return 1.0;
}

double expert_fraction(const ModelConfig& c) {
    const MoeConfig& e = c.moe;
    if (e.kind == FfnRouting::dense) return 1.0;
    const double k = e.routing == MoeRouting::expert_choice ? e.capacity_factor
                     : e.routing == MoeRouting::top1_capacity ? 1 : e.top_k;
    return k / e.n_experts;  // the notes' "MoE activates 25% of experts (top-2 of 8)"
}

// FLOPs per token of attention, FFN and LM head from the routing the forward in `a` took.
// decode: every token's K/V is computed (later queries may need it).
void fill_flops(const Model& m, const Activations& a, int B, int T, bool decode, CostSide& side) {
    const ModelConfig& c = m.cfg;
    const int N = B * T, H = c.n_heads, G = c.n_kv_heads, group = H / G;
    const double C = c.d_model, D = c.head_dim, HD = H * D, GD = G * D, V = c.vocab_size;
    const double P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    const HeadsConfig& hc = c.attention.heads;
    const bool gated = hc.kind != HeadSelection::all_heads;
    const double router = hc.kind == HeadSelection::moh ? 2 * C * (H - hc.n_shared + (hc.n_shared ? hc.n_shared + 2 : 0)) : 0;
    const int W = a.window;
    CostComponent attn{"attention"}, ffn{"ffn"}, head{"lm_head"};
    for (int l = 0; l < c.n_layers; l++) {
        const LayerActs& L = a.layers[l];
        std::vector<char> need(G, decode ? 1 : 0);
        for (int t = 0; t < N && gated && !decode; t++)
            for (int h = 0; h < H; h++)
                if (L.head_gates[(size_t)t * H + h] != 0.f) need[h / group] = 1;
        const double groups = gated ? std::count(need.begin(), need.end(), 1) : G;
        for (int t = 0; t < N; t++) {
            const double keys = std::min(t % T + 1, W);
            const double pair = 2 * D * keys * 2 + 2 * D * P;  // scores + A.V + CoPE z = q.e
            int active = H;
            if (gated) {
                active = 0;
                for (int h = 0; h < H; h++) active += L.head_gates[(size_t)t * H + h] != 0.f;
            }
            attn.flops_dense += 2 * C * (HD + 2 * GD) + H * pair + (c.attention.use_wo ? 2 * HD * C : 0) + router;
            attn.flops_routed += active * (2 * C * D + pair + (c.attention.use_wo ? 2 * D * C : 0)) +
                                 2 * C * 2 * D * groups + router;
        }
        const MoeConfig& e = c.moe;
        if (e.kind == FfnRouting::dense) {
            const double f = 2 * C * c.ffn.d_ff * (c.ffn.kind == FfnKind::swiglu ? 3 : 2);
            ffn.flops_dense += f * N, ffn.flops_routed += f * N, ffn.flops_baseline += f * N;
        } else {
            const double h = e.kind == FfnRouting::mh_moe ? e.n_heads : 1, Cs = C / h;
            const double expert = 2 * Cs * e.d_ff_expert * 3;
            const double fixed = h * 2 * Cs * e.n_experts + h * e.n_shared_experts * expert +
                                 (e.kind == FfnRouting::mh_moe ? 2 * 2 * C * C : 0);
            ffn.flops_dense += N * (fixed + h * e.n_experts * expert);
            ffn.flops_routed += N * fixed + (double)*L.ms.n_assign * expert;
            ffn.flops_baseline += N * 2 * C * c.ffn.d_ff * 3;  // the notes' reference: one dense SwiGLU FFN
        }
    }
    attn.flops_baseline = attn.flops_dense;
    head.flops_dense = head.flops_routed = head.flops_baseline = 2 * C * V * N;
    attn.naive_fraction = head_fraction(c);
    ffn.naive_fraction = expert_fraction(c);
    CostComponent total{"total"};
    double naive_routed = 0;
    for (CostComponent* x : {&attn, &ffn, &head}) {
        x->flops_dense /= N, x->flops_routed /= N, x->flops_baseline /= N;
        total.flops_dense += x->flops_dense;
        total.flops_routed += x->flops_routed;
        total.flops_baseline += x->flops_baseline;
        naive_routed += x->flops_baseline * x->naive_fraction;
    }
    total.naive_fraction = naive_routed / total.flops_baseline;
    side.components = {attn, ffn, head, total};
}

std::vector<int> random_tokens(int n, int V, unsigned seed) {
    std::mt19937 g(seed);
    std::vector<int> t(n);
    for (auto& x : t) x = (int)(g() % V);
    return t;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

// Alternates dense and routed calls; per call, seconds per token of attention, FFN, head and the
// whole call. Fills each component's median times and median paired ratio.
template <class Dense, class Routed>
void time_pairs(CostSide& side, Activations& ad, Activations& ar, Dense&& dense, Routed&& routed, double seconds,
                int repeats, int tokens_per_call) {
    std::vector<std::array<double, 4>> td, tr;
    auto one = [&](Activations& a, auto&& fn) {
        a.time_attn = a.time_ffn = a.time_head = 0;
        const double t0 = now_seconds();
        fn();
        const double el = now_seconds() - t0;
        return std::array<double, 4>{a.time_attn / tokens_per_call, a.time_ffn / tokens_per_call,
                                     a.time_head / tokens_per_call, el / tokens_per_call};
    };
    const double t_start = now_seconds();
    while (now_seconds() - t_start < seconds * repeats || td.size() < 5) {
        td.push_back(one(ad, dense));
        tr.push_back(one(ar, routed));
    }
    for (int i = 0; i < 4; i++) {
        std::vector<double> a, b, ratio;
        for (size_t k = 0; k < td.size(); k++) {
            a.push_back(td[k][i]);
            b.push_back(tr[k][i]);
            if (tr[k][i] > 0) ratio.push_back(td[k][i] / tr[k][i]);
        }
        side.components[i].sec_dense = median(a);
        side.components[i].sec_routed = median(b);
        side.components[i].measured_ratio = median(ratio);
    }
}

void explain(CostReport& r, const ModelConfig& c) {
    const CostSide& f = r.forward;
    const double share_attn = f.components[0].flops_baseline / f.total().flops_baseline;
    const double share_ffn = f.components[1].flops_baseline / f.total().flops_baseline;
    const double share_head = f.components[2].flops_baseline / f.total().flops_baseline;
    char b[1400];
    std::snprintf(
        b, sizeof b,
        "The naive estimate takes the active fraction of each routed component (heads %.0f%%, experts %.0f%%) "
        "times its share of the dense model's compute. Here attention is %.0f%%, the FFN %.0f%% and the LM head "
        "%.0f%% of forward FLOPs at T=%d, so the naive total is %.3fx. The FLOP model counts what routing cannot "
        "skip: K/V projections (later queries need every key), the routers, the LM head%s; it gives %.3fx over the "
        "same weights computed densely%s. Measured time follows the FLOPs only as far as the skipped work was "
        "spending time: GEMMs on fewer rows stay efficient, per-head gathers and softmax rows add or save "
        "overhead, so measured is %.3fx forward and %.3fx decode.",
        100 * head_fraction(c), 100 * expert_fraction(c), 100 * share_attn, 100 * share_ffn, 100 * share_head,
        c.seq_len, f.total().speedup_naive(),
        c.moe.kind != FfnRouting::dense ? ", and expert FLOPs that grow with top-k and expert width" : "",
        f.total().speedup_flops(),
        c.moe.kind != FfnRouting::dense
            ? (std::string("; against one dense FFN (the notes' baseline) the routed model costs ") +
               std::to_string(f.total().speedup_vs_baseline_flops()).substr(0, 5) + "x, not a saving")
                  .c_str()
            : "",
        f.total().speedup_measured(), r.decode.total().speedup_measured());
    r.explanation = b;
}

}  // namespace

CostReport cost_flops(const Model& m, const int* tokens, int B, int T) {
    CostReport r;
    r.seq_len = T;
    Activations a;
    activations_create(a, m.cfg, B, T);
    model_forward(m, a, tokens, nullptr, B, T, {.skip = true});
    fill_flops(m, a, B, T, false, r.forward);
    fill_flops(m, a, B, T, true, r.decode);
    const ModelConfig& c = m.cfg;
    if (c.attention.heads.kind != HeadSelection::all_heads) {
        double on = 0;
        for (const LayerActs& L : a.layers)
            for (int i = 0; i < B * T * c.n_heads; i++) on += L.head_gates[i] != 0.f;
        r.active_head_fraction = on / ((double)c.n_layers * B * T * c.n_heads);
    }
    if (c.moe.kind != FfnRouting::dense) {
        double rows = 0;
        for (const LayerActs& L : a.layers) rows += *L.ms.n_assign;
        const MoeDims md = model_moe_dims(c, B * T, false, 0);
        r.active_expert_fraction = rows / ((double)c.n_layers * md.N * md.E);
    }
    return r;
}

CostReport cost_measure(const Model& m, double seconds, int repeats) {
    const ModelConfig& c = m.cfg;
    const int B = 16, T = c.seq_len;
    auto tok = random_tokens(B * T, c.vocab_size, 11);
    CostReport r = cost_flops(m, tok.data(), B, T);
    const int W = model_window(c, T, 4.f);
    const ForwardOptions dense{.window = W, .moe_all_experts = true, .timing = true};
    const ForwardOptions routed{.window = W, .skip = true, .timing = true};

    Activations ad, ar;
    activations_create(ad, c, B, T);
    activations_create(ar, c, B, T);
    Activations d1, r1;
    activations_create(d1, c, 1, 1);
    activations_create(r1, c, 1, 1);
    KVCache kd, kr;
    kvcache_create(kd, c, T);
    kvcache_create(kr, c, T);
    auto decode_seq = [&](Activations& a, KVCache& kv, const ForwardOptions& o) {
        kv.len = 0;
        for (int t = 0; t < T; t++) model_decode_step(m, a, kv, tok[t], o);
    };
    // Warm up both paths, then interleave dense and routed so drift on a shared machine hits both.
    model_forward(m, ad, tok.data(), nullptr, B, T, dense);
    model_forward(m, ar, tok.data(), nullptr, B, T, routed);
    decode_seq(d1, kd, dense);
    decode_seq(r1, kr, routed);
    time_pairs(r.forward, ad, ar, [&] { model_forward(m, ad, tok.data(), nullptr, B, T, dense); },
               [&] { model_forward(m, ar, tok.data(), nullptr, B, T, routed); }, seconds, repeats, B * T);
    time_pairs(r.decode, d1, r1, [&] { decode_seq(d1, kd, dense); }, [&] { decode_seq(r1, kr, routed); }, seconds,
               repeats, T);
    explain(r, c);
    return r;
}

}  // namespace rl
