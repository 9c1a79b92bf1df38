#include "infer/cost.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdio>
#include <functional>
#include <random>

#include "util/cpu_load.h"
#include "util/threads.h"
#include "util/strfmt.h"

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

enum class Side { forward, decode, train };

// FLOPs per token of attention, FFN and LM head from the routing the forward in `a` took.
// decode: every token's K/V is computed (later queries may need it). train: forward + backward, the
// backward costing twice the forward for every matmul (dX and dW of each projection; dA, dV, dQ, dK of
// the attention core; dZ e and dZ^T Q of CoPE), so 3x the forward; training never runs every expert,
// so its dense side is dense-masked heads with the experts routed. flops_all_heads: the same shape
// with every head and no router (its FFN counted as the routed model's).
void fill_flops(const Model& m, const Activations& a, int B, int T, Side mode, CostSide& side) {
    const bool decode = mode == Side::decode;
    const ModelConfig& c = m.cfg;
    const int N = B * T, H = c.n_heads, G = c.n_kv_heads, group = H / G;
    const double C = c.d_model, D = c.head_dim, HD = H * D, GD = G * D, V = c.vocab_size;
    const double P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    const HeadsConfig& hc = c.attention.heads;
    const bool gated = hc.kind != HeadSelection::all_heads;
    // The query-norm rule (MoH-LLaMA3) has no router product: it reads the query norms (2 D per head).
    // JetMoE's attention-expert router: one logit per expert.
    const double router = hc.kind != HeadSelection::moh                  ? 0
                          : hc.router == HeadRouterKind::query_norm ? 2 * D * (H - hc.n_shared)
                          : hc.router == HeadRouterKind::experts    ? 2 * C * hc.n_experts
                                                                 : 2 * C * (H - hc.n_shared + (hc.n_shared ? hc.n_shared + 2 : 0));
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
            const double all_heads = 2 * C * (HD + 2 * GD) + H * pair + (c.attention.use_wo ? 2 * HD * C : 0);
            attn.flops_all_heads += all_heads;
            attn.flops_dense += all_heads + router;
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
            ffn.flops_routed += N * fixed + (double)*L.ms.n_assign * expert;
            ffn.flops_dense += mode == Side::train ? N * fixed + (double)*L.ms.n_assign * expert
                                                   : N * (fixed + h * e.n_experts * expert);
            ffn.flops_baseline += N * 2 * C * c.ffn.d_ff * 3;  // the notes' reference: one dense SwiGLU FFN
        }
    }
    ffn.flops_all_heads = ffn.flops_routed;
    attn.flops_baseline = attn.flops_dense;
    head.flops_dense = head.flops_routed = head.flops_baseline = head.flops_all_heads = 2 * C * V * N;
    attn.naive_fraction = head_fraction(c);
    ffn.naive_fraction = expert_fraction(c);
    const double per_token = (mode == Side::train ? 3.0 : 1.0) / N;
    CostComponent total{"total"};
    double naive_routed = 0;
    for (CostComponent* x : {&attn, &ffn, &head}) {
        x->flops_dense *= per_token, x->flops_routed *= per_token, x->flops_baseline *= per_token;
        x->flops_all_heads *= per_token;
        total.flops_dense += x->flops_dense;
        total.flops_routed += x->flops_routed;
        total.flops_baseline += x->flops_baseline;
        total.flops_all_heads += x->flops_all_heads;
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

// The q-quantile (0..1) by linear interpolation between order statistics.
double quantile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const double at = q * (double)(v.size() - 1);
    const size_t i = (size_t)at;
    return i + 1 < v.size() ? v[i] + (at - (double)i) * (v[i + 1] - v[i]) : v[i];
}

// One variant to time: the activations its calls fill (per-component seconds) and the call.
struct Timed {
    Activations* a;
    std::function<void()> fn;
};

// Runs the variants (dense, routed, optionally all-heads) in rounds, the order rotating each round,
// for at least seconds * repeats and five rounds; per call, seconds per token of attention, FFN,
// head and the whole call. Fills each component's median times and the medians of the per-round
// ratios dense / routed and all-heads / routed.
void time_rounds(CostSide& side, const std::vector<Timed>& v, double seconds, int repeats, int tokens_per_call) {
    std::vector<std::vector<std::array<double, 4>>> t(v.size());
    auto one = [&](const Timed& x) {
        Activations& a = *x.a;
        a.time_attn = a.time_ffn = a.time_head = 0;
        const double t0 = now_seconds();
        x.fn();
        const double el = now_seconds() - t0;
        return std::array<double, 4>{a.time_attn / tokens_per_call, a.time_ffn / tokens_per_call,
                                     a.time_head / tokens_per_call, el / tokens_per_call};
    };
    const double t_start = now_seconds();
    for (size_t round = 0; now_seconds() - t_start < seconds * repeats || round < 5; round++)
        for (size_t k = 0; k < v.size(); k++) {
            const size_t which = (k + round) % v.size();
            t[which].push_back(one(v[which]));
        }
    for (int i = 0; i < 4; i++) {
        std::vector<double> d, r, al, ratio, ratio_all;
        for (size_t k = 0; k < t[0].size(); k++) {
            d.push_back(t[0][k][i]);
            r.push_back(t[1][k][i]);
            if (t[1][k][i] > 0) ratio.push_back(t[0][k][i] / t[1][k][i]);
            if (v.size() > 2) {
                al.push_back(t[2][k][i]);
                if (t[1][k][i] > 0) ratio_all.push_back(t[2][k][i] / t[1][k][i]);
            }
        }
        CostComponent& cc = side.components[i];
        cc.sec_dense = median(d);
        cc.sec_routed = median(r);
        cc.measured_ratio = median(ratio);
        cc.ratio_q1 = quantile(ratio, 0.25);
        cc.ratio_q3 = quantile(ratio, 0.75);
        cc.rounds = (int)ratio.size();
        cc.sec_all_heads = median(al);
        cc.ratio_vs_all_heads = median(ratio_all);
    }
}


void explain(CostReport& r, const ModelConfig& c) {
    const CostSide& f = r.forward;
    const double share_attn = f.components[0].flops_baseline / f.total().flops_baseline;
    const double share_ffn = f.components[1].flops_baseline / f.total().flops_baseline;
    const double share_head = f.components[2].flops_baseline / f.total().flops_baseline;
    std::string e = str_printf(
        "The naive estimate takes the active fraction of each routed component (heads %.0f%%, experts %.0f%%) "
        "times its share of the dense model's compute. Here attention is %.0f%%, the FFN %.0f%% and the LM head "
        "%.0f%% of forward FLOPs at T=%d, so the naive total is %.3fx. The FLOP model counts what routing cannot "
        "skip: K/V projections (later queries need every key), the routers, the LM head%s; it gives %.3fx over the "
        "same weights computed densely",
        100 * head_fraction(c), 100 * expert_fraction(c), 100 * share_attn, 100 * share_ffn, 100 * share_head,
        c.seq_len, f.total().speedup_naive(),
        c.moe.kind != FfnRouting::dense ? ", and expert FLOPs that grow with top-k and expert width" : "",
        f.total().speedup_flops());
    if (c.moe.kind != FfnRouting::dense)
        e += str_printf("; against one dense FFN (the notes' baseline) the routed model costs %.3fx, not a saving",
                 f.total().speedup_vs_baseline_flops());
    e += str_printf(". Measured time follows the FLOPs only as far as the skipped work was spending time: GEMMs on fewer "
             "rows stay efficient, per-head gathers and softmax rows add or save overhead, so measured is %.3fx "
             "forward and %.3fx decode.",
             f.total().speedup_measured(), r.decode.total().speedup_measured());
    if (!r.heads_gated) {
        e += " Training runs the experts routed on both sides (only the forward has a dense-experts path), so the "
             "training columns compare a path with itself.";
        r.explanation = e;
        return;
    }
    const CostComponent& tr = r.train.total();
    e += str_printf(" Training (forward and backward) skips too: dense-masked training computes every head and multiplies "
             "the inactive ones by 0, as the official MoH code does, while the skip path computes and "
             "differentiates only the (token, head) pairs with a non-zero gate; the FLOP model gives %.3fx "
             "(the backward costs twice the forward per matmul on both sides) and training measures %.3fx.",
             tr.speedup_flops(), tr.speedup_measured());
    const double fa = f.total().speedup_vs_all_heads(), da = r.decode.total().speedup_vs_all_heads(),
                 ta = tr.speedup_vs_all_heads();
    e += str_printf(" Against the plain model of the same shape with every head and no router (what one would run "
             "instead), routing runs %.3fx forward, %.3fx decode and %.3fx in training (FLOP model %.3fx, %.3fx "
             "training). The dense-masked path takes %.3fx the plain model's time forward and %.3fx in training "
             "(it adds the router and the gates to every head's work), which is why these figures are %s the "
             "same-weights ones.",
             fa, da, ta, f.total().speedup_vs_all_heads_flops(), tr.speedup_vs_all_heads_flops(),
             f.total().speedup_measured() / fa, tr.speedup_measured() / ta,
             f.total().speedup_measured() > fa ? "below" : "not below");
    if (fa < 1 || da < 1 || ta < 1)
        e += str_printf(" Where this is below 1x the routed model is slower than the plain one: the router, the gates "
                 "and the skip path's per-head gathers, small GEMMs and scatters cost more than the %.0f%% of "
                 "(token, head) pairs it skips save.",
                 100 * (1 - r.active_head_fraction));
    r.explanation = e;
}

}  // namespace

CostReport cost_flops(const Model& m, const int* tokens, int B, int T) {
    CostReport r;
    r.seq_len = T;
    const ModelConfig& c = m.cfg;
    r.heads_gated = c.attention.heads.kind != HeadSelection::all_heads;
    Activations a;
    activations_create(a, c, B, T);
    // The training side's routing: a training forward (MoE capacity and jitter on), targets = next tokens.
    std::vector<int> targets(tokens + 1, tokens + (size_t)B * T);
    targets.push_back(tokens[0]);
    const int W = model_window(c, T, 4.f);  // as cost_measure times it (docs/routing-math.md §1.2)
    model_forward(m, a, tokens, targets.data(), B, T, {.window = W, .training = true, .seed = 1, .skip = true});
    fill_flops(m, a, B, T, Side::train, r.train);
    model_forward(m, a, tokens, nullptr, B, T, {.window = W, .skip = true});
    fill_flops(m, a, B, T, Side::forward, r.forward);
    fill_flops(m, a, B, T, Side::decode, r.decode);
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

namespace {

// A trainable copy of src's weights under cfg (the same shape, or all_heads: without the router).
void copy_weights(Model& dst, const ModelConfig& cfg, const Model& src) {
    model_create(dst, cfg, 0, 0.02f);
    for (const TensorSpec& t : dst.layout.specs()) {
        const TensorSpec* from = src.layout.find(t.name);
        assert(from && from->numel == t.numel);
        std::copy_n(src.params.data.data() + from->offset, t.numel, dst.params.data.data() + t.offset);
    }
    for (const TensorSpec& t : dst.buffer_layout.specs())  // selection biases, where both have them
        if (const TensorSpec* from = src.buffer_layout.find(t.name))
            std::copy_n(src.buffers.data.data() + from->offset, t.numel, dst.buffers.data.data() + t.offset);
}

}  // namespace

CostReport cost_measure(const Model& m, double seconds, int repeats) {
    const ModelConfig& c = m.cfg;
    const int B = 16, T = c.seq_len;
    auto tok = random_tokens(B * T, c.vocab_size, 11);
    auto tgt = random_tokens(B * T, c.vocab_size, 12);
    CostReport r = cost_flops(m, tok.data(), B, T);
    const int W = model_window(c, T, 4.f);
    const ForwardOptions dense{.window = W, .moe_all_experts = true, .timing = true};
    const ForwardOptions routed{.window = W, .skip = true, .timing = true};
    const ForwardOptions train_dense{.window = W, .training = true, .seed = 1, .timing = true};
    const ForwardOptions train_skip{.window = W, .training = true, .seed = 1, .skip = true, .timing = true};
    const ForwardOptions plain{.window = W, .timing = true};
    const ForwardOptions train_plain{.window = W, .training = true, .seed = 1, .timing = true};
    // The plain model: the same shape and weights with every head and no router.
    ModelConfig ca = c;
    ca.attention.heads.kind = HeadSelection::all_heads;
    Model mt, ma;  // trainable copies (backward writes gradients): the routed model, the plain one
    copy_weights(mt, c, m);
    if (r.heads_gated) copy_weights(ma, ca, m);

    Activations ad, ar, aa;
    activations_create(ad, c, B, T);
    activations_create(ar, c, B, T);
    if (r.heads_gated) activations_create(aa, ca, B, T);
    Activations d1, r1, a1;
    activations_create(d1, c, 1, 1);
    activations_create(r1, c, 1, 1);
    if (r.heads_gated) activations_create(a1, ca, 1, 1);
    KVCache kd, kr, ka;
    kvcache_create(kd, c, T);
    kvcache_create(kr, c, T);
    if (r.heads_gated) kvcache_create(ka, ca, T);
    const int* tk = tok.data();
    const int* tg = tgt.data();
    auto forward = [=](const Model* mm, Activations* a, ForwardOptions o) {
        return Timed{a, [=] { model_forward(*mm, *a, tk, nullptr, B, T, o); }};
    };
    auto decode = [=](const Model* mm, Activations* a, KVCache* kv, ForwardOptions o) {
        return Timed{a, [=] {
                         kv->len = 0;
                         for (int t = 0; t < T; t++) model_decode_step(*mm, *a, *kv, tk[t], o);
                     }};
    };
    auto train = [=](Model* mm, Activations* a, ForwardOptions o) {
        return Timed{a, [=] {
                         model_zero_grad(*mm);
                         model_forward(*mm, *a, tk, tg, B, T, o);
                         model_backward(*mm, *a, tk, tg);
                     }};
    };
    std::vector<Timed> fw = {forward(&m, &ad, dense), forward(&m, &ar, routed)};
    std::vector<Timed> dc = {decode(&m, &d1, &kd, dense), decode(&m, &r1, &kr, routed)};
    std::vector<Timed> tr = {train(&mt, &ad, train_dense), train(&mt, &ar, train_skip)};
    if (r.heads_gated) {
        fw.push_back(forward(&ma, &aa, plain));
        dc.push_back(decode(&ma, &a1, &ka, plain));
        tr.push_back(train(&ma, &aa, train_plain));
    }
    // Warm up every variant, then time them in interleaved rounds so drift on a shared machine hits
    // all, on one thread count throughout (a count that changed between rounds would be measured
    // as a speedup).
    r.threads = thread_count();
    set_thread_count(r.threads);
    CpuLoad load;
    cpu_load_update(load, 0);
    for (auto* v : {&fw, &dc, &tr})
        for (const Timed& x : *v) x.fn();
    time_rounds(r.forward, fw, seconds, repeats, B * T);
    time_rounds(r.decode, dc, seconds, repeats, T);
    time_rounds(r.train, tr, seconds, repeats, B * T);
    if (cpu_load_update(load, 0)) r.others_busy = load.others;
    explain(r, c);
    return r;
}

std::string cost_doubt(const CostComponent& c) {
    if (c.rounds == 0) return {};  // FLOPs only: nothing was timed
    const double flops = c.speedup_flops();
    if (c.ratio_q1 > k_cost_beyond_flops * flops)
        return str_printf("measured %.2fx beats its FLOP model %.2fx by %.1fx (lower quartile %.2fx): the dense path was "
                          "slowed by something else, the machine was busy",
                          c.speedup_measured(), flops, c.speedup_measured() / flops, c.ratio_q1);
    if (c.spread() > k_cost_max_spread)
        return str_printf("its %d rounds disagree: the middle half spans %.2fx to %.2fx (%.0f%% of the median)", c.rounds,
                          c.ratio_q1, c.ratio_q3, 100 * c.spread());
    return {};
}

std::string cost_doubts(const CostReport& r) {
    std::string out;
    const std::pair<const char*, const CostSide*> sides[] = {{"forward", &r.forward}, {"decode", &r.decode}, {"training", &r.train}};
    for (const auto& [name, side] : sides)
        for (const CostComponent& c : side->components)
            if (std::string d = cost_doubt(c); !d.empty()) out += std::string(out.empty() ? "" : "\n") + name + " " + c.name + ": " + d;
    return out;
}

}  // namespace rl
