// Every tensor of the model declared once: parameters (name, shape, init, weight decay) and
// activations (name, shape), each through a Binder that lays it out and then points its view into
// the arena. Names follow the checkpoint naming of docs/architecture.md ("layers.{l}.attn.wq", ...);
// shapes are PyTorch's (out, in).
#include <cassert>
#include <cmath>
#include <random>

#include "backend/ops.h"
#include "layers/attention.h"
#include "model/model.h"
#include "util/threads.h"

namespace rl {

namespace {

std::string lname(int l, const std::string& leaf) { return "layers." + std::to_string(l) + "." + leaf; }

// What a parameter is fixes its init and the AdamW weight-decay rule, here and nowhere else:
// matrices (weights, embeddings, routers) decay; gains, biases and CoPE position tables do not.
enum class ParamKind {
    weight,       // N(0, init_std * scale), decays
    zero_weight,  // a matrix that starts at 0 (the noisy top-k noise projection), decays
    gain,         // norm weights: 1, no decay
    bias,         // 0, no decay
    table,        // CoPE position embeddings: 0 like the official CoPE code, no decay
};

struct ParamDecl {
    Binder& b;
    void operator()(float*& view, const std::string& name, std::vector<int> shape, ParamKind k,
                    float scale = 1.f) const {
        const Init init = k == ParamKind::weight ? Init::normal : k == ParamKind::gain ? Init::ones : Init::zeros;
        const bool decay = k == ParamKind::weight || k == ParamKind::zero_weight;
        b.add(view, name, std::move(shape), init, decay, scale);
    }
};

// GPT-2: projections that write into the residual stream start scaled by 1/sqrt(2L).
float resid_scale(const ModelConfig& c) { return 1.f / std::sqrt(2.f * c.n_layers); }

void attn_params_declare(const ModelConfig& c, int l, LayerWeights& w, const ParamDecl& p) {
    const int C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const bool ln = c.norm == NormKind::layernorm, wo = c.attention.use_wo;
    using K = ParamKind;
    p(w.attn_norm, lname(l, "attn_norm"), {C}, K::gain);
    if (ln) p(w.attn_norm_bias, lname(l, "attn_norm_bias"), {C}, K::bias);
    p(w.wq, lname(l, "attn.wq"), {HD, C}, K::weight);
    p(w.wk, lname(l, "attn.wk"), {GD, C}, K::weight);
    p(w.wv, lname(l, "attn.wv"), {GD, C}, K::weight, wo ? 1.f : resid_scale(c));  // without W_O, V writes the residual
    if (wo) p(w.wo, lname(l, "attn.wo"), {C, HD}, K::weight, resid_scale(c));
    if (c.attention.qkv_bias) {
        p(w.bq, lname(l, "attn.bq"), {HD}, K::bias);
        p(w.bk, lname(l, "attn.bk"), {GD}, K::bias);
        p(w.bv, lname(l, "attn.bv"), {GD}, K::bias);
    }
    if (c.attention.out_bias) p(w.bo, lname(l, "attn.bo"), {C}, K::bias);
    if (c.attention.qk_norm != QkNorm::none) {
        const bool full = c.attention.qk_norm == QkNorm::full;
        p(w.q_norm, lname(l, "attn.q_norm"), {full ? HD : c.head_dim}, K::gain);
        p(w.k_norm, lname(l, "attn.k_norm"), {full ? GD : c.head_dim}, K::gain);
    }
    if (c.attention.positional == PosKind::cope) {
        const int P = c.attention.cope_npos, D = c.head_dim;
        if (c.attention.cope_shared) p(w.cope_pos, lname(l, "attn.cope_pos"), {P, D}, K::table);
        else p(w.cope_pos, lname(l, "attn.cope_pos"), {c.n_heads, P, D}, K::table);
    }
    const HeadsConfig& hc = c.attention.heads;
    if (hc.kind == HeadSelection::moh && hc.router == HeadRouterKind::experts)  // JetMoE's MoA router
        p(w.router_routed, lname(l, "attn.router.w_routed"), {hc.n_experts, C}, K::weight);
    if (hc.kind == HeadSelection::moh && hc.router == HeadRouterKind::learned) {  // W_s (S,C), W_r (R,C), W_h (2,C): docs/routing-math.md §3
        if (hc.n_shared > 0) p(w.router_shared, lname(l, "attn.router.w_shared"), {hc.n_shared, C}, K::weight);
        p(w.router_routed, lname(l, "attn.router.w_routed"), {c.n_heads - hc.n_shared, C}, K::weight);
        if (hc.n_shared > 0) p(w.router_type, lname(l, "attn.router.w_type"), {2, C}, K::weight);
    }
}

void moe_params_declare(const ModelConfig& c, int l, LayerWeights& w, const ParamDecl& p) {
    const MoeConfig& mc = c.moe;
    const int C = c.d_model, Fe = mc.d_ff_expert, Fs = mc.d_ff_shared > 0 ? mc.d_ff_shared : Fe;
    const bool mh = mc.kind == FfnRouting::mh_moe;
    const int Cs = mh ? C / mc.n_heads : C;  // sub-token width
    using K = ParamKind;
    if (mh) {
        p(w.w_head, lname(l, "moe.w_head"), {C, C}, K::weight);
        p(w.b_head, lname(l, "moe.b_head"), {C}, K::bias);
    }
    p(w.moe.router, lname(l, "moe.router"), {mc.n_experts, Cs}, K::weight);
    if (mc.routing == MoeRouting::noisy_topk) p(w.moe.noise, lname(l, "moe.noise"), {mc.n_experts, Cs}, K::zero_weight);
    auto expert = [&](ExpertWeights& e, const std::string& prefix, int F) {
        p(e.w_gate, prefix + ".w_gate", {F, Cs}, K::weight);
        p(e.w_up, prefix + ".w_up", {F, Cs}, K::weight);
        p(e.w_down, prefix + ".w_down", {Cs, F}, K::weight, resid_scale(c));
    };
    w.moe.experts.assign(mc.n_experts, ExpertWeights{});
    w.moe.shared.assign(mc.n_shared_experts, ExpertWeights{});
    for (int e = 0; e < mc.n_experts; e++) expert(w.moe.experts[e], lname(l, "moe.experts." + std::to_string(e)), Fe);
    for (int e = 0; e < mc.n_shared_experts; e++) expert(w.moe.shared[e], lname(l, "moe.shared." + std::to_string(e)), Fs);
    if (mc.shared_expert_gate) p(w.moe.shared_gate, lname(l, "moe.shared_gate"), {1, Cs}, K::weight);
    if (mc.out_bias) p(w.moe_out_bias, lname(l, "moe.out_bias"), {C}, K::bias);
    if (mh) {
        p(w.w_merge, lname(l, "moe.w_merge"), {C, C}, K::weight);
        p(w.b_merge, lname(l, "moe.b_merge"), {C}, K::bias);
    }
}

void ffn_params_declare(const ModelConfig& c, int l, LayerWeights& w, const ParamDecl& p) {
    const int C = c.d_model, F = c.ffn.d_ff;
    using K = ParamKind;
    p(w.ffn_norm, lname(l, "ffn_norm"), {C}, K::gain);
    if (c.norm == NormKind::layernorm) p(w.ffn_norm_bias, lname(l, "ffn_norm_bias"), {C}, K::bias);
    if (config_layer_sparse(c, l)) return moe_params_declare(c, l, w, p);
    if (c.ffn.kind == FfnKind::swiglu) p(w.w_gate, lname(l, "ffn.w_gate"), {F, C}, K::weight);
    p(w.w_up, lname(l, "ffn.w_up"), {F, C}, K::weight);
    if (c.ffn.kind != FfnKind::swiglu) p(w.b_up, lname(l, "ffn.b_up"), {F}, K::bias);
    p(w.w_down, lname(l, "ffn.w_down"), {C, F}, K::weight, resid_scale(c));
    if (c.ffn.kind != FfnKind::swiglu) p(w.b_down, lname(l, "ffn.b_down"), {C}, K::bias);
}

// Every parameter, in checkpoint (and init) order.
void params_declare(const ModelConfig& c, Weights& w, Binder& b) {
    assert(c.vocab_size > 0);
    const ParamDecl p{b};
    const int C = c.d_model, V = c.vocab_size;
    using K = ParamKind;
    w = Weights{};
    w.layers.assign(c.n_layers, LayerWeights{});
    p(w.tok_emb, "tok_emb", {V, C}, K::weight);
    if (c.attention.positional == PosKind::learned) p(w.pos_emb, "pos_emb", {c.seq_len, C}, K::weight);
    for (int l = 0; l < c.n_layers; l++) {
        attn_params_declare(c, l, w.layers[l], p);
        ffn_params_declare(c, l, w.layers[l], p);
    }
    if (c.final_norm) {
        p(w.final_norm, "final_norm", {C}, K::gain);
        if (c.norm == NormKind::layernorm) p(w.final_norm_bias, "final_norm_bias", {C}, K::bias);
    }
    if (!c.tie_embeddings) p(w.lm_head, "lm_head", {V, C}, K::weight);
    if (c.lm_head_bias) p(w.lm_head_bias, "lm_head_bias", {V}, K::bias);
}

// ---- activations: saved for backward, one set per layer, and the backward scratch shared by all ----

void attn_acts_declare(const ModelConfig& c, int l, int B, int T, LayerActs& a, Binder& b) {
    const int N = B * T, H = c.n_heads, HD = H * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const HeadsConfig& hc = c.attention.heads;
    b.add(a.ln1, lname(l, "ln1"), {N, c.d_model});
    b.add(a.ln1_mean, lname(l, "ln1_mean"), {N});
    b.add(a.ln1_rstd, lname(l, "ln1_rstd"), {N});
    b.add(a.q, lname(l, "q"), {N, HD});
    b.add(a.k, lname(l, "k"), {N, GD});
    b.add(a.v, lname(l, "v"), {N, GD});
    b.add(a.att, lname(l, "att"), {B, H, T, T});
    if (c.attention.positional == PosKind::cope) b.add(a.gates, lname(l, "gates"), {B, H, T, T});
    b.add(a.atty, lname(l, "atty"), {N, HD});
    if (c.attention.use_wo) b.add(a.attn_out, lname(l, "attn_out"), {N, c.d_model});
    if (hc.kind != HeadSelection::all_heads) {
        b.add(a.head_gates, lname(l, "head_gates"), {N, H});
        b.add(a.atty_raw, lname(l, "atty_raw"), {N, HD});
        a.skip_rows.assign((size_t)B * H * (T + 1), 0);  // the skip path's row lists (n, positions) per (b, h)
    }
    if (hc.kind == HeadSelection::moh) {
        const int S = hc.n_shared, R = H - S;
        b.add(a.hr.r, lname(l, "hr.r"), {N, R});
        b.add(a.hr.mask, lname(l, "hr.mask"), {N, R});
        if (S > 0) b.add(a.hr.ss, lname(l, "hr.ss"), {N, S});
        b.add(a.hr.alpha, lname(l, "hr.alpha"), {N, 2});
        a.head_f.assign(R, 0.f);
        a.head_P.assign(R, 0.f);
    }
}

void moe_acts_declare(const ModelConfig& c, int l, int B, int N, const MoeDims& md, LayerActs& a, Binder& b) {
    const int A = md.max_assign(), Nm = md.N, Cm = md.C, E = md.E, Fe = md.F, ns = md.n_shared;
    MoeSaved& ms = a.ms;
    b.add(ms.xr, lname(l, "ms.xr"), {Nm, Cm});
    b.add(ms.jit, lname(l, "ms.jit"), {Nm, Cm});
    b.add(ms.logits, lname(l, "ms.logits"), {Nm, E});
    b.add(ms.probs, lname(l, "ms.probs"), {Nm, E});
    if (c.moe.routing == MoeRouting::noisy_topk) {
        b.add(ms.noisy, lname(l, "ms.noisy"), {Nm, E});
        b.add(ms.eps, lname(l, "ms.eps"), {Nm, E});
        b.add(ms.noise_pre, lname(l, "ms.noise_pre"), {Nm, E});
    }
    b.add(ms.xg, lname(l, "ms.xg"), {A, Cm});
    b.add(ms.fa, lname(l, "ms.fa"), {A, Fe});
    b.add(ms.fb, lname(l, "ms.fb"), {A, Fe});
    b.add(ms.fh, lname(l, "ms.fh"), {A, Fe});
    b.add(ms.ye, lname(l, "ms.ye"), {A, Cm});
    b.add(ms.a_w, lname(l, "ms.a_w"), {A});
    b.add(ms.cw, lname(l, "ms.cw"), {Nm, md.K});
    if (ns > 0) {
        const int Fs = md.shared_width();
        b.add(ms.sfa, lname(l, "ms.sfa"), {ns, Nm, Fs});
        b.add(ms.sfb, lname(l, "ms.sfb"), {ns, Nm, Fs});
        b.add(ms.sfh, lname(l, "ms.sfh"), {ns, Nm, Fs});
        b.add(ms.sye, lname(l, "ms.sye"), {ns, Nm, Cm});
    }
    if (c.moe.kind == FfnRouting::mh_moe) {
        b.add(a.xh, lname(l, "xh"), {N, c.d_model});
        b.add(a.ym, lname(l, "ym"), {N, c.d_model});
    }
    // The int side of MoeSaved: assignment lists, offsets, choices and selection scratch.
    a.moe_int.assign((size_t)2 * A + (E + 1) + (size_t)Nm * md.K + 1 + moe_work_ints(md), 0);
    ms.a_token = a.moe_int.data();                 // (A)
    ms.a_expert = ms.a_token + A;                  // (A)
    ms.offset = ms.a_expert + A;                   // (E+1)
    ms.choice = ms.offset + E + 1;                 // (Nm,K)
    ms.n_assign = ms.choice + (size_t)Nm * md.K;   // (1)
    ms.work = ms.n_assign + 1;                     // (moe_work_ints)
    a.mst.load.assign(E, 0.f);
    a.mst.f.assign(E, 0.f);
    a.mst.P.assign(E, 0.f);
    a.mst.counts.assign(E, 0.f);
    // The balance rows and their P sums at their largest (one per sequence), so no step allocates.
    a.mst.f_bal.reserve((size_t)B * E);
    a.mst.P_rows.reserve((size_t)B * E);
    if (c.moe.load_balancing == LoadBalancing::global_aux_loss) {
        const int W = c.moe.global_aux_window - 1;
        a.moe_ring.assign((size_t)std::max(W, 0) * E, 0.f);
        a.moe_ring_rows.assign(std::max(W, 0), 0.0);
        a.moe_ring_sum.assign(E, 0.f);
    }
}

void layer_acts_declare(const ModelConfig& c, int l, int B, int T, LayerActs& a, Binder& b) {
    const int N = B * T, C = c.d_model, F = c.ffn.d_ff;
    attn_acts_declare(c, l, B, T, a, b);
    b.add(a.res1, lname(l, "res1"), {N, C});
    b.add(a.ln2, lname(l, "ln2"), {N, C});
    b.add(a.ln2_mean, lname(l, "ln2_mean"), {N});
    b.add(a.ln2_rstd, lname(l, "ln2_rstd"), {N});
    b.add(a.ffn_out, lname(l, "ffn_out"), {N, C});
    b.add(a.res2, lname(l, "res2"), {N, C});
    if (!config_layer_sparse(c, l)) {
        b.add(a.fa, lname(l, "fa"), {N, F});
        b.add(a.fb, lname(l, "fb"), {N, F});
        b.add(a.fh, lname(l, "fh"), {N, F});
    } else {
        moe_acts_declare(c, l, B, N, model_moe_dims(c, N, true, 0), a, b);
    }
}

// Backward scratch, shared by all layers (and the skip path's per-thread buffers).
void scratch_declare(const ModelConfig& c, int B, int T, Activations& a, Binder& b) {
    const int N = B * T, C = c.d_model, F = c.ffn.d_ff, H = c.n_heads;
    const int HD = H * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const HeadsConfig& hc = c.attention.heads;
    const bool gated = hc.kind != HeadSelection::all_heads, sparse = c.moe.kind != FfnRouting::dense;
    const bool some_dense = !sparse || !c.moe.dense_layers.empty();
    b.add(a.dres, "dres", {N, C});
    b.add(a.dtmp, "dtmp", {N, C});
    b.add(a.datty, "datty", {N, HD});
    b.add(a.dq, "dq", {N, HD});
    b.add(a.dk, "dk", {N, GD});
    b.add(a.dv, "dv", {N, GD});
    if (some_dense) {  // SwiGLU's d gate overwrites dfh in place; ReLU/GELU need dfa
        if (c.ffn.kind != FfnKind::swiglu) b.add(a.dfa, "dfa", {N, F});
        b.add(a.dfb, "dfb", {N, F});
        b.add(a.dfh, "dfh", {N, F});
    }
    b.add(a.attn_scratch, "attn_scratch", {(int)attention_scratch_floats(model_attn_dims(c, B, T, T))});
    if (gated) {
        b.add(a.dgates, "dgates", {N, H});
        b.add(a.datty_raw, "datty_raw", {N, HD});
        b.add(a.skip_scratch, "skip_scratch", {(int)(model_skip_scratch_floats(c, T) * thread_count())});
        b.add(a.skip_wt, "skip_wt", {(c.attention.use_wo ? 2 : 1) * C, HD});
        b.add(a.skip_seq_grads, "skip_seq_grads", {B, (int)model_skip_grad_floats(c)});
        a.kv_need.assign(c.n_kv_heads, 0);
    }
    if (hc.kind == HeadSelection::moh)
        b.add(a.router_scratch, "router_scratch",
              {head_router_scratch_floats(HeadRouterDims{N, C, H, hc.n_shared, hc.n_active_routed})});
    if (sparse) b.add(a.moe_scratch, "moe_scratch", {(int)moe_scratch_floats(model_moe_dims(c, N, true, 0))});
    if (c.moe.kind == FfnRouting::mh_moe) {
        b.add(a.dxh, "dxh", {N, C});
        b.add(a.dym, "dym", {N, C});
    }
    if (c.attention.qk_norm != QkNorm::none) b.add(a.qk_rstd, "qk_rstd", {N * H});
}

// Buffers (no gradient): the selection biases of aux-loss-free balancing, 0 at the start.
void buffers_declare(const ModelConfig& c, Weights& w, Binder& b) {
    const HeadsConfig& hc = c.attention.heads;
    for (int l = 0; l < c.n_layers; l++) {
        LayerWeights& lw = w.layers[l];
        if (hc.kind == HeadSelection::moh && hc.head_bias)
            b.add(lw.head_bias, lname(l, "attn.router.head_bias"), {c.n_heads - hc.n_shared}, Init::zeros, false, 1.f);
        if (config_layer_sparse(c, l) && c.moe.expert_bias)
            b.add(lw.moe.bias, lname(l, "moe.expert_bias"), {c.moe.n_experts}, Init::zeros, false, 1.f);
    }
}

}  // namespace

Layout model_param_layout(const ModelConfig& c) {
    Weights w;
    Binder b;
    params_declare(c, w, b);
    return b.layout;
}

Layout model_buffer_layout(const ModelConfig& c) {
    Weights w;
    w.layers.resize(c.n_layers);
    Binder b;
    buffers_declare(c, w, b);
    return b.layout;
}

void model_create(Model& m, const ModelConfig& c, unsigned seed, float init_std) {
    m.cfg = c;
    Binder bw, bg;
    params_declare(c, m.w, bw);
    params_declare(c, m.g, bg);
    bw.bind(m.params);
    bg.bind(m.grads);
    m.layout = bw.layout;
    Binder bb;
    buffers_declare(c, m.w, bb);
    bb.bind(m.buffers);
    m.buffer_layout = bb.layout;
    std::fill(m.buffers.data.begin(), m.buffers.data.end(), 0.f);
    std::mt19937_64 rng(seed);
    // Box-Muller on our own uniform draws: the same numbers on every standard library.
    auto normal = [&rng]() {
        double u1 = ((rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        double u2 = ((rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    };
    for (const TensorSpec& s : m.layout.specs()) {
        float* p = m.params.data.data() + s.offset;
        for (size_t i = 0; i < s.numel; i++)
            p[i] = s.init == Init::ones ? 1.f : s.init == Init::zeros ? 0.f : (float)(normal() * init_std * s.init_scale);
    }
}

void model_create_frozen(Model& m, const ModelConfig& c, const std::set<std::string>& elsewhere) {
    m.cfg = c;
    Binder bw;
    params_declare(c, m.w, bw);
    m.layout = bw.bind_except(m.params, elsewhere);
    m.g = Weights{};
    m.g.layers.assign(c.n_layers, LayerWeights{});
    Binder bb;
    buffers_declare(c, m.w, bb);
    bb.bind(m.buffers);
    m.buffer_layout = bb.layout;
}

Layout model_grads_for(Model& m, const std::function<bool(const std::string&)>& trainable) {
    Binder bg;
    params_declare(m.cfg, m.g, bg);
    std::set<std::string> frozen;
    for (const TensorSpec& s : bg.layout.specs())
        if (!trainable(s.name)) frozen.insert(s.name);
    return bg.bind_except(m.grads, frozen);
}

size_t model_param_count(const Model& m) {
    size_t n = 0;
    for (const TensorSpec& s : m.layout.specs()) n += s.numel;
    return n;
}

void model_copy_state(Model& dst, const Model& src) {
    assert(dst.params.data.size() == src.params.data.size() && dst.buffers.data.size() == src.buffers.data.size());
    std::copy(src.params.data.begin(), src.params.data.end(), dst.params.data.begin());
    std::copy(src.buffers.data.begin(), src.buffers.data.end(), dst.buffers.data.begin());
}

void model_zero_grad(Model& m) { m.ops->tensor_zero(m.grads.data.data(), m.grads.data.size()); }

namespace {

// Declares every view of a (B, T) activation set: b the saved-for-backward arena, s the backward
// scratch. Nothing is allocated in the arenas until they are bound (activations_bytes only counts).
void activations_declare(Activations& a, const ModelConfig& c, int B, int T, Binder& b, Binder& s) {
    a.B = B;
    a.T = T;
    const int N = B * T;
    a.moe_max_assign = c.moe.kind != FfnRouting::dense ? model_moe_dims(c, N, true, 0).max_assign() : 0;
    a.layers.assign(c.n_layers, LayerActs{});
    b.add(a.x0, "x0", {N, c.d_model});
    for (int l = 0; l < c.n_layers; l++) a.layers[l].layer = l, layer_acts_declare(c, l, B, T, a.layers[l], b);
    b.add(a.lnf, "lnf", {N, c.d_model});
    b.add(a.lnf_mean, "lnf_mean", {N});
    b.add(a.lnf_rstd, "lnf_rstd", {N});
    b.add(a.logits, "logits", {N, c.vocab_size});
    b.add(a.losses, "losses", {N});
    scratch_declare(c, B, T, a, s);
}

}  // namespace

void activations_create(Activations& a, const ModelConfig& c, int B, int T) {
    Binder b, s;
    activations_declare(a, c, B, T, b, s);
    b.bind(a.arena);
    a.layout = b.layout;
    for (int l = 0; l < c.n_layers; l++) {  // views that are other views
        LayerActs& la = a.layers[l];
        la.x_in = l == 0 ? a.x0 : a.layers[l - 1].out;
        if (!c.attention.use_wo) la.attn_out = la.atty;  // H*D == C without W_O
        // The skip path saves its rows where the dense path keeps q, att, gates and atty_raw: one forward
        // uses one set.
        la.skip_q = la.q, la.skip_att = la.att, la.skip_gates = la.gates, la.skip_y = la.atty_raw;
        la.out = c.norm_position == NormPosition::pre ? la.res2 : la.ln2;
    }
    s.bind(a.scratch_arena);
}

ActivationsBytes activations_bytes(const ModelConfig& c, int B, int T) {
    Activations a;
    Binder b, s;
    activations_declare(a, c, B, T, b, s);
    ActivationsBytes r;
    r.saved = b.layout.total() * sizeof(float);
    r.scratch = s.layout.total() * sizeof(float);
    // The int and small float vectors beside the arenas (MoE assignment lists, skip-path row lists, ...).
    for (const LayerActs& l : a.layers)
        r.other += l.skip_rows.capacity() * sizeof(int) + l.moe_int.capacity() * sizeof(int) +
                   (l.moe_ring.capacity() + l.moe_ring_sum.capacity()) * sizeof(float) + l.moe_ring_rows.capacity() * sizeof(double);
    return r;
}

void kvcache_create(KVCache& kv, const ModelConfig& c, int capacity) {
    kv.capacity = capacity;
    kv.len = 0;
    kv.k.assign(c.n_layers, FloatBuffer((size_t)capacity * c.n_kv_heads * c.head_dim));
    kv.v.assign(c.n_layers, FloatBuffer((size_t)capacity * c.n_kv_heads * c.head_dim));
    const AttnDims d = model_attn_dims(c, 1, 1, capacity);
    kv.scratch.assign(std::max(attention_decode_scratch_floats(d, capacity), attention_rows_scratch_floats(1, capacity, d.npos)),
                      0.f);
}

}  // namespace rl
