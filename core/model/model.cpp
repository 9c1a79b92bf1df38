// The transformer, top to bottom (nanoGPT's shape, llm.c's buffers): embeddings, L blocks of
// attention + FFN with pre- or post-norm residuals, optional final norm, LM head, cross-entropy.
// Backward walks the same path in reverse. Every buffer is a view into an arena made in
// activations_create; nothing here allocates.
#include "model/model.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <random>

#include "layers/attention.h"
#include "tensor/eigen.h"
#include "util/threads.h"
#include "layers/embedding.h"
#include "layers/ffn.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "train/loss.h"

namespace rl {

namespace {

std::string lname(int l, const char* leaf) { return "layers." + std::to_string(l) + "." + leaf; }

Weights weights_bind(const ModelConfig& c, const Layout& L, Arena& arena) {
    auto a = [&](const std::string& n) { return arena.ptr(L, n); };
    Weights w;
    w.tok_emb = a("tok_emb");
    w.pos_emb = a("pos_emb");
    for (int l = 0; l < c.n_layers; l++) {
        LayerWeights lw;
        lw.attn_norm = a(lname(l, "attn_norm"));
        lw.attn_norm_bias = a(lname(l, "attn_norm_bias"));
        lw.wq = a(lname(l, "attn.wq"));
        lw.wk = a(lname(l, "attn.wk"));
        lw.wv = a(lname(l, "attn.wv"));
        lw.wo = a(lname(l, "attn.wo"));
        lw.cope_pos = a(lname(l, "attn.cope_pos"));
        lw.ffn_norm = a(lname(l, "ffn_norm"));
        lw.ffn_norm_bias = a(lname(l, "ffn_norm_bias"));
        lw.w_gate = a(lname(l, "ffn.w_gate"));
        lw.w_up = a(lname(l, "ffn.w_up"));
        lw.b_up = a(lname(l, "ffn.b_up"));
        lw.w_down = a(lname(l, "ffn.w_down"));
        lw.b_down = a(lname(l, "ffn.b_down"));
        lw.router_shared = a(lname(l, "attn.router.w_shared"));
        lw.router_routed = a(lname(l, "attn.router.w_routed"));
        lw.router_type = a(lname(l, "attn.router.w_type"));
        if (c.moe.kind != FfnRouting::dense) {
            lw.moe.router = a(lname(l, "moe.router"));
            lw.moe.noise = a(lname(l, "moe.noise"));
            auto expert = [&](const std::string& prefix) {
                return ExpertWeights{a(prefix + ".w_gate"), a(prefix + ".w_up"), a(prefix + ".w_down")};
            };
            for (int e = 0; e < c.moe.n_experts; e++)
                lw.moe.experts.push_back(expert(lname(l, "moe.experts.") + std::to_string(e)));
            for (int e = 0; e < c.moe.n_shared_experts; e++)
                lw.moe.shared.push_back(expert(lname(l, "moe.shared.") + std::to_string(e)));
            lw.w_head = a(lname(l, "moe.w_head"));
            lw.b_head = a(lname(l, "moe.b_head"));
            lw.w_merge = a(lname(l, "moe.w_merge"));
            lw.b_merge = a(lname(l, "moe.b_merge"));
        }
        w.layers.push_back(lw);
    }
    w.final_norm = a("final_norm");
    w.final_norm_bias = a("final_norm_bias");
    w.lm_head = a("lm_head");
    w.lm_head_bias = a("lm_head_bias");
    return w;
}

AttnDims attn_dims(const ModelConfig& c, int B, int T, int window) {
    AttnDims d;
    d.B = B; d.T = T; d.H = c.n_heads; d.G = c.n_kv_heads; d.D = c.head_dim;
    d.window = window;
    d.npos = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    d.cope_shared = c.attention.cope_shared;
    return d;
}

void norm_forward(const ModelConfig& c, float* out, float* mean, float* rstd, const float* x, const float* w,
                  const float* b, int N) {
    if (c.norm == NormKind::rmsnorm) rmsnorm_forward(out, rstd, x, w, N, c.d_model, c.norm_eps);
    else layernorm_forward(out, mean, rstd, x, w, b, N, c.d_model, c.norm_eps);
}
void norm_backward(const ModelConfig& c, float* dx, float* dw, float* db, const float* dout, const float* x,
                   const float* w, const float* mean, const float* rstd, int N) {
    if (c.norm == NormKind::rmsnorm) rmsnorm_backward(dx, dw, dout, x, w, rstd, N, c.d_model);
    else layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, c.d_model);
}

void zero(float* p, size_t n) { std::memset(p, 0, n * sizeof(float)); }

HeadRouterDims router_dims(const ModelConfig& c, int N) {
    const HeadsConfig& h = c.attention.heads;
    HeadRouterDims d;
    d.N = N; d.C = c.d_model; d.H = c.n_heads; d.S = h.n_shared; d.K = h.n_active_routed;
    d.paper = h.gate_scaling == GateScaling::paper;
    return d;
}

// Gates (N,H) of every head for the block input `in`: the MoH router, or static pruning's 1/0.
void head_gates_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& a, const float* in, int N) {
    const HeadsConfig& h = c.attention.heads;
    if (h.kind == HeadSelection::moh) {
        HeadRouterDims rd = router_dims(c, N);
        head_router_forward(a.head_gates, a.hr, in, w.router_shared, w.router_routed, w.router_type, rd);
        a.head_balance = head_router_balance(a.head_f.data(), a.head_P.data(), a.hr, rd);
    } else {
        for (int t = 0; t < N; t++)
            for (int i = 0; i < c.n_heads; i++) a.head_gates[(size_t)t * c.n_heads + i] = i < h.n_active ? 1.f : 0.f;
    }
}

// ---- attention block: in (N,C) -> attn_out (N,C) ----
void attn_block_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& a, const float* in, float* scratch,
                        float* entropy, int B, int T, int window) {
    const int N = B * T, C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const bool gated = c.attention.heads.kind != HeadSelection::all_heads;
    linear_forward(a.q, in, w.wq, nullptr, N, C, HD);
    linear_forward(a.k, in, w.wk, nullptr, N, C, GD);
    linear_forward(a.v, in, w.wv, nullptr, N, C, GD);
    if (c.attention.positional == PosKind::rope) {
        rope_forward(a.q, B, T, c.n_heads, c.head_dim, c.attention.rope_theta);
        rope_forward(a.k, B, T, c.n_kv_heads, c.head_dim, c.attention.rope_theta);
    }
    // Training computes every head and scales by its gate (dense-masked, spec §1); the inference
    // path in infer/ skips the pairs whose gate is 0.
    attention_forward(gated ? a.atty_raw : a.atty, a.att, a.gates, entropy, scratch, a.q, a.k, a.v, w.cope_pos,
                      attn_dims(c, B, T, window));
    if (gated) {
        head_gates_forward(c, w, a, in, N);
        head_gate_forward(a.atty, a.atty_raw, a.head_gates, N, c.n_heads, c.head_dim);
    }
    if (w.wo) linear_forward(a.attn_out, a.atty, w.wo, nullptr, N, HD, C);
}

size_t skip_scratch_floats_per_thread(const ModelConfig& c, int T) {
    const int P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    return (size_t)T * c.d_model * 2 + (size_t)T * c.head_dim * 2 + T + attention_rows_scratch_floats(T, T, P);
}

// Skip path (inference, spec §1): gates first, then only the (token, head) pairs whose gate is
// non-zero: their query rows, score and softmax rows, A.V rows and W_O slice. K/V of a group are
// computed when any head of the group is active for some token of the batch (later queries need
// the keys of every token they can see).
void attn_block_forward_skip(const ModelConfig& c, const LayerWeights& w, LayerActs& a, Activations& s,
                             const float* in, int B, int T, int window) {
    const int N = B * T, C = c.d_model, H = c.n_heads, G = c.n_kv_heads, D = c.head_dim;
    const int HD = H * D, GD = G * D, group = H / G;
    const int P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    head_gates_forward(c, w, a, in, N);
    std::vector<char> need(G, 0);  // G is small; this is the only per-call allocation of the skip path
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++)
            if (a.head_gates[(size_t)t * H + h] != 0.f) need[h / group] = 1;
    CMapR X(in, N, C);
    if (std::count(need.begin(), need.end(), 1) == G) {  // every group needed: one GEMM each, as dense
        linear_forward(a.k, in, w.wk, nullptr, N, C, GD);
        linear_forward(a.v, in, w.wv, nullptr, N, C, GD);
    }
    for (int g = 0; g < G && std::count(need.begin(), need.end(), 1) < G; g++) {
        if (!need[g]) continue;
        MapRS(a.k + g * D, N, D, Strided(GD)).noalias() = X * CMapR(w.wk + (size_t)g * D * C, D, C).transpose();
        MapRS(a.v + g * D, N, D, Strided(GD)).noalias() = X * CMapR(w.wv + (size_t)g * D * C, D, C).transpose();
    }
    if (c.attention.positional == PosKind::rope) rope_forward(a.k, B, T, G, D, c.attention.rope_theta);
    float* out = w.wo ? a.attn_out : a.atty;
    std::memset(out, 0, sizeof(float) * N * (w.wo ? C : HD));
    // One sequence per OpenMP iteration (like attention_forward): rows of different sequences never
    // share an output row, and each thread has its own scratch.
    const size_t per_thread = skip_scratch_floats_per_thread(c, T);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float* xa = s.skip_scratch + per_thread * thread_index();  // (n,C) gathered rows
        float* qh = xa + (size_t)T * C;                           // (n,D)
        float* yh = qh + (size_t)T * D;                           // (n,D)
        float* proj = yh + (size_t)T * D;                         // (n,C) W_O slice output
        float* gsel = proj + (size_t)T * C;                       // (n) gates of the rows
        float* rows = gsel + T;                                   // attention_rows scratch
        int* idx = s.skip_idx.data() + (size_t)b * 2 * T;         // (n) token index
        int* pos = idx + T;                                       // (n) position within the sequence
        for (int h = 0; h < H; h++) {
            int n = 0;
            for (int i = 0; i < T; i++) {
                const int t = b * T + i;
                const float gt = a.head_gates[(size_t)t * H + h];
                if (gt == 0.f) continue;
                idx[n] = t, pos[n] = i, gsel[n] = gt;
                std::memcpy(xa + (size_t)n * C, in + (size_t)t * C, sizeof(float) * C);
                n++;
            }
            if (n == 0) continue;
            MapR(qh, n, D).noalias() = CMapR(xa, n, C) * CMapR(w.wq + (size_t)h * D * C, D, C).transpose();
            if (c.attention.positional == PosKind::rope) rope_forward_rows(qh, n, D, pos, D, c.attention.rope_theta);
            const int g = h / group;
            const float* e = P ? (c.attention.cope_shared ? w.cope_pos : w.cope_pos + (size_t)h * P * D) : nullptr;
            attention_rows(yh, D, rows, qh, D, pos, n, a.k + (size_t)b * T * GD + g * D,
                           a.v + (size_t)b * T * GD + g * D, GD, T, e, P, D, window, gsel);
            if (w.wo) {
                // (n,D) x W_O[:, hD:(h+1)D]^T -> (n,C), added to the rows
                MapR(proj, n, C).noalias() = CMapR(yh, n, D) * CMapRS(w.wo + h * D, C, D, Strided(HD)).transpose();
                for (int r = 0; r < n; r++) {
                    float* o = out + (size_t)idx[r] * C;
                    const float* pr = proj + (size_t)r * C;
                    for (int k = 0; k < C; k++) o[k] += pr[k];
                }
            } else {
                for (int r = 0; r < n; r++)
                    std::memcpy(out + (size_t)idx[r] * HD + h * D, yh + (size_t)r * D, sizeof(float) * D);
            }
        }
    }
}

// Accumulates dL/d in into din. dbalance: dLoss/dL_b of this layer (beta / L).
void attn_block_backward(const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& a,
                         Activations& s, float* din, const float* dout, const float* in, int B, int T, int window,
                         float dbalance) {
    const int N = B * T, C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const float* datty = dout;
    if (w.wo) {
        zero(s.datty, (size_t)N * HD);
        linear_backward(s.datty, g.wo, nullptr, dout, a.atty, w.wo, N, HD, C);
        datty = s.datty;
    }
    if (c.attention.heads.kind != HeadSelection::all_heads) {
        zero(s.datty_raw, (size_t)N * HD);
        head_gate_backward(s.datty_raw, s.dgates, datty, a.atty_raw, a.head_gates, N, c.n_heads, c.head_dim);
        if (c.attention.heads.kind == HeadSelection::moh)
            head_router_backward(din, g.router_shared, g.router_routed, g.router_type, s.router_scratch, s.dgates,
                                 dbalance, a.head_f.data(), a.hr, in, w.router_shared, w.router_routed, w.router_type,
                                 router_dims(c, N));
        datty = s.datty_raw;
    }
    zero(s.dq, (size_t)N * HD);
    zero(s.dk, (size_t)N * GD);
    zero(s.dv, (size_t)N * GD);
    attention_backward(s.dq, s.dk, s.dv, g.cope_pos, s.attn_scratch, datty, a.q, a.k, a.v, a.att, a.gates, w.cope_pos,
                       attn_dims(c, B, T, window));
    if (c.attention.positional == PosKind::rope) {
        rope_backward(s.dq, B, T, c.n_heads, c.head_dim, c.attention.rope_theta);
        rope_backward(s.dk, B, T, c.n_kv_heads, c.head_dim, c.attention.rope_theta);
    }
    linear_backward(din, g.wq, nullptr, s.dq, in, w.wq, N, C, HD);
    linear_backward(din, g.wk, nullptr, s.dk, in, w.wk, N, C, GD);
    linear_backward(din, g.wv, nullptr, s.dv, in, w.wv, N, C, GD);
}

// ---- FFN block: in (N,C) -> ffn_out (N,C): dense, MoE, or MH-MoE (head -> split -> MoE -> merge) ----
void ffn_block_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& a, const float* in, int N,
                       bool training, uint64_t seed, bool all_experts = false) {
    const int C = c.d_model, F = c.ffn.d_ff;
    MoeDims md = model_moe_dims(c, N, training, seed);
    md.all_experts = all_experts;
    if (c.moe.kind == FfnRouting::moe) {
        moe_forward(a.ffn_out, a.mst, a.ms, in, w.moe, md);
        return;
    }
    if (c.moe.kind == FfnRouting::mh_moe) {
        // (N,C) rows are N*h contiguous sub-tokens of width C/h: the split and merge are free views.
        linear_forward(a.xh, in, w.w_head, w.b_head, N, C, C);
        moe_forward(a.ym, a.mst, a.ms, a.xh, w.moe, md);
        linear_forward(a.ffn_out, a.ym, w.w_merge, w.b_merge, N, C, C);
        return;
    }
    if (c.ffn.kind == FfnKind::swiglu) {
        linear_forward(a.fa, in, w.w_gate, nullptr, N, C, F);
        linear_forward(a.fb, in, w.w_up, nullptr, N, C, F);
        swiglu_forward(a.fh, a.fa, a.fb, N * F);
    } else {
        linear_forward(a.fa, in, w.w_up, w.b_up, N, C, F);
        if (c.ffn.kind == FfnKind::relu) relu_forward(a.fh, a.fa, N * F);
        else gelu_forward(a.fh, a.fa, N * F);
    }
    linear_forward(a.ffn_out, a.fh, w.w_down, w.b_down, N, F, C);
}

void ffn_block_backward(const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& a,
                        Activations& s, float* din, const float* dout, const float* in, int N, bool training,
                        uint64_t seed, float daux, float dzl) {
    const int C = c.d_model, F = c.ffn.d_ff;
    if (c.moe.kind == FfnRouting::moe) {
        moe_backward(din, g.moe, s.moe_scratch, dout, in, a.mst, a.ms, w.moe, model_moe_dims(c, N, training, seed),
                     daux, dzl);
        return;
    }
    if (c.moe.kind == FfnRouting::mh_moe) {
        zero(s.dym, (size_t)N * C);
        linear_backward(s.dym, g.w_merge, g.b_merge, dout, a.ym, w.w_merge, N, C, C);
        zero(s.dxh, (size_t)N * C);
        moe_backward(s.dxh, g.moe, s.moe_scratch, s.dym, a.xh, a.mst, a.ms, w.moe,
                     model_moe_dims(c, N, training, seed), daux, dzl);
        linear_backward(din, g.w_head, g.b_head, s.dxh, in, w.w_head, N, C, C);
        return;
    }
    zero(s.dfh, (size_t)N * F);
    linear_backward(s.dfh, g.w_down, g.b_down, dout, a.fh, w.w_down, N, F, C);
    zero(s.dfa, (size_t)N * F);
    if (c.ffn.kind == FfnKind::swiglu) {
        zero(s.dfb, (size_t)N * F);
        swiglu_backward(s.dfa, s.dfb, s.dfh, a.fa, a.fb, N * F);
        linear_backward(din, g.w_gate, nullptr, s.dfa, in, w.w_gate, N, C, F);
        linear_backward(din, g.w_up, nullptr, s.dfb, in, w.w_up, N, C, F);
    } else {
        if (c.ffn.kind == FfnKind::relu) relu_backward(s.dfa, s.dfh, a.fa, N * F);
        else gelu_backward(s.dfa, s.dfh, a.fa, N * F);
        linear_backward(din, g.w_up, g.b_up, s.dfa, in, w.w_up, N, C, F);
    }
}

// One transformer block around an attention call that writes L.attn_out from its input.
// pre-norm:  res1 = x + attn(norm1(x));  res2 = res1 + ffn(norm2(res1))
// post-norm: res1 = x + attn(x); h = norm1(res1); res2 = h + ffn(h); out = norm2(res2)
template <class Attn>
void block_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& a, int N,
                   const ForwardOptions& o, uint64_t seed, Attn&& attn) {
    const size_t NC = (size_t)N * c.d_model;
    const bool pre = c.norm_position == NormPosition::pre;
    double t0 = o.timing ? now_seconds() : 0;
    if (pre) norm_forward(c, L.ln1, L.ln1_mean, L.ln1_rstd, L.x_in, w.attn_norm, w.attn_norm_bias, N);
    attn(pre ? L.ln1 : L.x_in);
    if (o.timing) a.time_attn += now_seconds() - t0;
    for (size_t i = 0; i < NC; i++) L.res1[i] = L.x_in[i] + L.attn_out[i];
    if (o.timing) t0 = now_seconds();
    if (pre) {
        norm_forward(c, L.ln2, L.ln2_mean, L.ln2_rstd, L.res1, w.ffn_norm, w.ffn_norm_bias, N);
        ffn_block_forward(c, w, L, L.ln2, N, o.training, seed, o.moe_all_experts);
        for (size_t i = 0; i < NC; i++) L.res2[i] = L.res1[i] + L.ffn_out[i];
    } else {
        norm_forward(c, L.ln1, L.ln1_mean, L.ln1_rstd, L.res1, w.attn_norm, w.attn_norm_bias, N);
        ffn_block_forward(c, w, L, L.ln1, N, o.training, seed, o.moe_all_experts);
        for (size_t i = 0; i < NC; i++) L.res2[i] = L.ln1[i] + L.ffn_out[i];
        norm_forward(c, L.ln2, L.ln2_mean, L.ln2_rstd, L.res2, w.ffn_norm, w.ffn_norm_bias, N);
    }
    if (o.timing) a.time_ffn += now_seconds() - t0;
}

// Optional final norm, then logits (N,V) with the LM head (or the tied token embedding).
void head_forward(const Model& m, Activations& a, int N) {
    const ModelConfig& c = m.cfg;
    const float* xf = a.layers.back().out;
    const float* head_in = xf;
    if (c.final_norm) {
        norm_forward(c, a.lnf, a.lnf_mean, a.lnf_rstd, xf, m.w.final_norm, m.w.final_norm_bias, N);
        head_in = a.lnf;
    }
    const float* w_head = c.tie_embeddings ? m.w.tok_emb : m.w.lm_head;
    linear_forward(a.logits, head_in, w_head, m.w.lm_head_bias, N, c.d_model, c.vocab_size);
}

}  // namespace

Layout model_param_layout(const ModelConfig& c) {
    assert(c.vocab_size > 0);
    Layout L;
    const int C = c.d_model, V = c.vocab_size, F = c.ffn.d_ff;
    const int HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const bool ln = c.norm == NormKind::layernorm;
    const float resid_scale = 1.f / std::sqrt(2.f * c.n_layers);  // GPT-2: residual projections
    L.add("tok_emb", {V, C}, Init::normal, true);
    if (c.attention.positional == PosKind::learned) L.add("pos_emb", {c.seq_len, C}, Init::normal, true);
    for (int l = 0; l < c.n_layers; l++) {
        L.add(lname(l, "attn_norm"), {C}, Init::ones);
        if (ln) L.add(lname(l, "attn_norm_bias"), {C});
        L.add(lname(l, "attn.wq"), {HD, C}, Init::normal, true);
        L.add(lname(l, "attn.wk"), {GD, C}, Init::normal, true);
        L.add(lname(l, "attn.wv"), {GD, C}, Init::normal, true, c.attention.use_wo ? 1.f : resid_scale);
        if (c.attention.use_wo) L.add(lname(l, "attn.wo"), {C, HD}, Init::normal, true, resid_scale);
        if (c.attention.positional == PosKind::cope) {
            // Zero-initialised like the official CoPE code: positions start with no effect.
            if (c.attention.cope_shared) L.add(lname(l, "attn.cope_pos"), {c.attention.cope_npos, c.head_dim});
            else L.add(lname(l, "attn.cope_pos"), {c.n_heads, c.attention.cope_npos, c.head_dim});
        }
        const HeadsConfig& hc = c.attention.heads;
        if (hc.kind == HeadSelection::moh) {  // seeds/001: W_s (S,C), W_r (R,C), W_h (2,C)
            if (hc.n_shared > 0) L.add(lname(l, "attn.router.w_shared"), {hc.n_shared, C}, Init::normal, true);
            L.add(lname(l, "attn.router.w_routed"), {c.n_heads - hc.n_shared, C}, Init::normal, true);
            if (hc.n_shared > 0) L.add(lname(l, "attn.router.w_type"), {2, C}, Init::normal, true);
        }
        L.add(lname(l, "ffn_norm"), {C}, Init::ones);
        if (ln) L.add(lname(l, "ffn_norm_bias"), {C});
        if (c.moe.kind != FfnRouting::dense) {
            const MoeConfig& mc = c.moe;
            const int Cs = mc.kind == FfnRouting::mh_moe ? C / mc.n_heads : C;  // sub-token width
            const int Fe = mc.d_ff_expert;
            if (mc.kind == FfnRouting::mh_moe) {
                L.add(lname(l, "moe.w_head"), {C, C}, Init::normal, true);
                L.add(lname(l, "moe.b_head"), {C});
            }
            L.add(lname(l, "moe.router"), {mc.n_experts, Cs}, Init::normal, true);
            if (mc.routing == MoeRouting::noisy_topk) L.add(lname(l, "moe.noise"), {mc.n_experts, Cs}, Init::zeros, true);
            auto expert = [&](const std::string& prefix) {
                L.add(prefix + ".w_gate", {Fe, Cs}, Init::normal, true);
                L.add(prefix + ".w_up", {Fe, Cs}, Init::normal, true);
                L.add(prefix + ".w_down", {Cs, Fe}, Init::normal, true, resid_scale);
            };
            for (int e = 0; e < mc.n_experts; e++) expert(lname(l, "moe.experts.") + std::to_string(e));
            for (int e = 0; e < mc.n_shared_experts; e++) expert(lname(l, "moe.shared.") + std::to_string(e));
            if (mc.kind == FfnRouting::mh_moe) {
                L.add(lname(l, "moe.w_merge"), {C, C}, Init::normal, true);
                L.add(lname(l, "moe.b_merge"), {C});
            }
        } else if (c.ffn.kind == FfnKind::swiglu) {
            L.add(lname(l, "ffn.w_gate"), {F, C}, Init::normal, true);
            L.add(lname(l, "ffn.w_up"), {F, C}, Init::normal, true);
            L.add(lname(l, "ffn.w_down"), {C, F}, Init::normal, true, resid_scale);
        } else {
            L.add(lname(l, "ffn.w_up"), {F, C}, Init::normal, true);
            L.add(lname(l, "ffn.b_up"), {F});
            L.add(lname(l, "ffn.w_down"), {C, F}, Init::normal, true, resid_scale);
            L.add(lname(l, "ffn.b_down"), {C});
        }
    }
    if (c.final_norm) {
        L.add("final_norm", {C}, Init::ones);
        if (ln) L.add("final_norm_bias", {C});
    }
    if (!c.tie_embeddings) L.add("lm_head", {V, C}, Init::normal, true);
    if (c.lm_head_bias) L.add("lm_head_bias", {V});
    return L;
}

void model_create(Model& m, const ModelConfig& c, unsigned seed, float init_std) {
    m.cfg = c;
    m.layout = model_param_layout(c);
    m.params.allocate(m.layout);
    m.grads.allocate(m.layout);
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
    m.w = weights_bind(c, m.layout, m.params);
    m.g = weights_bind(c, m.layout, m.grads);
}

size_t model_param_count(const Model& m) {
    size_t n = 0;
    for (const TensorSpec& s : m.layout.specs()) n += s.numel;
    return n;
}

void model_zero_grad(Model& m) { std::fill(m.grads.data.begin(), m.grads.data.end(), 0.f); }

MoeDims model_moe_dims(const ModelConfig& c, int N, bool training, uint64_t seed) {
    const MoeConfig& mc = c.moe;
    MoeDims d;
    const int h = mc.kind == FfnRouting::mh_moe ? mc.n_heads : 1;
    d.N = N * h;
    d.C = c.d_model / h;
    d.E = mc.n_experts;
    d.K = mc.routing == MoeRouting::top1_capacity ? 1 : mc.top_k;
    d.F = mc.d_ff_expert;
    d.n_shared = mc.n_shared_experts;
    d.routing = mc.routing;
    d.aux = mc.aux_convention;
    d.capacity_factor = mc.capacity_factor;
    d.jitter = mc.jitter;
    d.training = training;
    d.noise_seed = seed;
    return d;
}

void activations_create(Activations& a, const ModelConfig& c, int B, int T) {
    a.B = B;
    a.T = T;
    const int N = B * T, C = c.d_model, V = c.vocab_size, F = c.ffn.d_ff, H = c.n_heads;
    const int HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const bool cope = c.attention.positional == PosKind::cope;
    const HeadsConfig& hc = c.attention.heads;
    const bool gated = hc.kind != HeadSelection::all_heads, moh = hc.kind == HeadSelection::moh;
    const int S = moh ? hc.n_shared : 0, R = H - S;
    const bool sparse = c.moe.kind != FfnRouting::dense, mh = c.moe.kind == FfnRouting::mh_moe;
    const MoeDims md = model_moe_dims(c, N, true, 0);
    const int A = md.max_assign(), Nm = md.N, Cm = md.C, E = md.E, Fe = md.F, ns = md.n_shared;
    a.moe_max_assign = sparse ? A : 0;
    const bool noisy = c.moe.routing == MoeRouting::noisy_topk;
    Layout& L = a.layout;
    L = Layout();
    L.add("x0", {N, C});
    for (int l = 0; l < c.n_layers; l++) {
        for (const char* n : {"ln1", "res1", "ln2", "ffn_out", "res2"}) L.add(lname(l, n), {N, C});
        for (const char* n : {"ln1_mean", "ln1_rstd", "ln2_mean", "ln2_rstd"}) L.add(lname(l, n), {N});
        L.add(lname(l, "q"), {N, HD});
        L.add(lname(l, "k"), {N, GD});
        L.add(lname(l, "v"), {N, GD});
        L.add(lname(l, "att"), {B, c.n_heads, T, T});
        if (cope) L.add(lname(l, "gates"), {B, c.n_heads, T, T});
        L.add(lname(l, "atty"), {N, HD});
        if (c.attention.use_wo) L.add(lname(l, "attn_out"), {N, C});
        if (gated) {
            L.add(lname(l, "head_gates"), {N, H});
            L.add(lname(l, "atty_raw"), {N, HD});
        }
        if (moh) {
            L.add(lname(l, "hr.r"), {N, R});
            L.add(lname(l, "hr.mask"), {N, R});
            if (S > 0) L.add(lname(l, "hr.ss"), {N, S});
            L.add(lname(l, "hr.alpha"), {N, 2});
        }
        if (!sparse) {
            for (const char* n : {"fa", "fb", "fh"}) L.add(lname(l, n), {N, F});
        } else {
            L.add(lname(l, "ms.xr"), {Nm, Cm});
            L.add(lname(l, "ms.jit"), {Nm, Cm});
            for (const char* n : {"ms.logits", "ms.probs"}) L.add(lname(l, n), {Nm, E});
            if (noisy)
                for (const char* n : {"ms.noisy", "ms.eps", "ms.noise_pre"}) L.add(lname(l, n), {Nm, E});
            L.add(lname(l, "ms.xg"), {A, Cm});
            for (const char* n : {"ms.fa", "ms.fb", "ms.fh"}) L.add(lname(l, n), {A, Fe});
            L.add(lname(l, "ms.ye"), {A, Cm});
            L.add(lname(l, "ms.a_w"), {A});
            if (ns > 0) {
                for (const char* n : {"ms.sfa", "ms.sfb", "ms.sfh"}) L.add(lname(l, n), {ns, Nm, Fe});
                L.add(lname(l, "ms.sye"), {ns, Nm, Cm});
            }
            if (mh) {
                L.add(lname(l, "xh"), {N, C});
                L.add(lname(l, "ym"), {N, C});
            }
        }
    }
    L.add("lnf", {N, C});
    L.add("lnf_mean", {N});
    L.add("lnf_rstd", {N});
    L.add("logits", {N, V});
    L.add("losses", {N});
    a.arena.allocate(L);
    a.x0 = a.arena.ptr(L, "x0");
    a.layers.assign(c.n_layers, LayerActs{});
    for (int l = 0; l < c.n_layers; l++) {
        LayerActs& la = a.layers[l];
        auto p = [&](const char* n) { return a.arena.ptr(L, lname(l, n)); };
        la.x_in = l == 0 ? a.x0 : a.layers[l - 1].out;
        la.ln1 = p("ln1"); la.ln1_mean = p("ln1_mean"); la.ln1_rstd = p("ln1_rstd");
        la.q = p("q"); la.k = p("k"); la.v = p("v");
        la.att = p("att"); la.gates = p("gates");
        la.atty = p("atty");
        la.attn_out = c.attention.use_wo ? p("attn_out") : la.atty;  // H*D == C without W_O
        la.res1 = p("res1");
        la.ln2 = p("ln2"); la.ln2_mean = p("ln2_mean"); la.ln2_rstd = p("ln2_rstd");
        la.fa = p("fa"); la.fb = p("fb"); la.fh = p("fh");
        la.ffn_out = p("ffn_out");
        la.res2 = p("res2");
        la.out = c.norm_position == NormPosition::pre ? la.res2 : la.ln2;
        la.head_gates = p("head_gates");
        la.atty_raw = p("atty_raw");
        la.hr = {p("hr.r"), p("hr.mask"), p("hr.ss"), p("hr.alpha")};
        la.head_f.assign(R, 0.f);
        la.head_P.assign(R, 0.f);
        la.xh = p("xh");
        la.ym = p("ym");
        if (sparse) {
            MoeSaved& ms = la.ms;
            ms.xr = p("ms.xr"); ms.jit = p("ms.jit"); ms.logits = p("ms.logits"); ms.probs = p("ms.probs");
            ms.noisy = p("ms.noisy"); ms.eps = p("ms.eps"); ms.noise_pre = p("ms.noise_pre");
            ms.xg = p("ms.xg"); ms.fa = p("ms.fa"); ms.fb = p("ms.fb"); ms.fh = p("ms.fh"); ms.ye = p("ms.ye");
            ms.sfa = p("ms.sfa"); ms.sfb = p("ms.sfb"); ms.sfh = p("ms.sfh"); ms.sye = p("ms.sye");
            ms.a_w = p("ms.a_w");
            la.moe_int.assign((size_t)2 * A + (E + 1) + (size_t)Nm * md.K + 1 + moe_work_ints(md), 0);
            ms.a_token = la.moe_int.data();
            ms.a_expert = ms.a_token + A;
            ms.offset = ms.a_expert + A;
            ms.choice = ms.offset + E + 1;
            ms.n_assign = ms.choice + (size_t)Nm * md.K;
            ms.work = ms.n_assign + 1;
            la.mst.load.assign(E, 0.f);
            la.mst.f.assign(E, 0.f);
            la.mst.P.assign(E, 0.f);
        }
    }
    a.lnf = a.arena.ptr(L, "lnf"); a.lnf_mean = a.arena.ptr(L, "lnf_mean"); a.lnf_rstd = a.arena.ptr(L, "lnf_rstd");
    a.logits = a.arena.ptr(L, "logits");
    a.losses = a.arena.ptr(L, "losses");

    Layout S2;  // backward scratch, shared by all layers
    S2.add("dres", {N, C});
    S2.add("dtmp", {N, C});
    S2.add("datty", {N, HD});
    S2.add("dq", {N, HD});
    S2.add("dk", {N, GD});
    S2.add("dv", {N, GD});
    if (!sparse) {
        S2.add("dfa", {N, F});
        S2.add("dfb", {N, F});
        S2.add("dfh", {N, F});
    }
    S2.add("dlogits", {N, V});
    AttnDims d = attn_dims(c, B, T, T);
    S2.add("attn_scratch", {(int)attention_scratch_floats(d)});
    if (gated) {
        S2.add("dgates", {N, H});
        S2.add("datty_raw", {N, HD});
    }
    if (moh) S2.add("router_scratch", {head_router_scratch_floats(HeadRouterDims{N, C, H, S, hc.n_active_routed})});
    if (sparse) S2.add("moe_scratch", {(int)moe_scratch_floats(md)});
    if (mh) {
        S2.add("dxh", {N, C});
        S2.add("dym", {N, C});
    }
    if (gated) {
        S2.add("skip_scratch", {(int)(skip_scratch_floats_per_thread(c, T) * thread_count())});
        a.skip_idx.assign((size_t)2 * N, 0);
    }
    a.scratch_arena.allocate(S2);
    auto sp = [&](const char* n) { return a.scratch_arena.ptr(S2, n); };
    a.dres = sp("dres"); a.dtmp = sp("dtmp"); a.datty = sp("datty");
    a.dq = sp("dq"); a.dk = sp("dk"); a.dv = sp("dv");
    a.dfa = sp("dfa"); a.dfb = sp("dfb"); a.dfh = sp("dfh");
    a.dlogits = sp("dlogits");
    a.attn_scratch = sp("attn_scratch");
    a.dgates = sp("dgates");
    a.datty_raw = sp("datty_raw");
    a.router_scratch = sp("router_scratch");
    a.moe_scratch = sp("moe_scratch");
    a.dxh = sp("dxh");
    a.dym = sp("dym");
    a.skip_scratch = sp("skip_scratch");
}

int model_window(const ModelConfig& c, int T, float prev_entropy) {
    const WindowConfig& w = c.attention.window;
    switch (w.kind) {
        case WindowKind::full: return T;
        case WindowKind::sliding: return w.size;
        case WindowKind::adaptive:
            switch (w.strategy) {
                case WindowStrategy::fixed: return w.size;
                case WindowStrategy::seq_len: return std::clamp(T / 2, w.min, w.max);
                case WindowStrategy::entropy:
                    return w.min + (int)std::lround((w.max - w.min) * std::min(prev_entropy / 4.f, 1.f));
            }
    }
    return T;
}

double model_forward(const Model& m, Activations& a, const int* tokens, const int* targets, int B, int T,
                     const ForwardOptions& o) {
    const ModelConfig& c = m.cfg;
    assert(B <= a.B && T <= a.T);
    const int N = B * T, C = c.d_model;
    a.cur_B = B;
    a.cur_T = T;
    a.window = o.window > 0 ? o.window : model_window(c, T, o.prev_entropy);
    a.training = o.training;
    a.seed = o.seed;

    embedding_forward(a.x0, tokens, m.w.tok_emb, m.w.pos_emb, B, T, C);
    float entropy_sum = 0.f;
    for (int l = 0; l < c.n_layers; l++) {
        const LayerWeights& w = m.w.layers[l];
        LayerActs& L = a.layers[l];
        float ent = 0.f;
        // Each layer's MoE noise gets its own stream: (seed, layer).
        const bool skip = o.skip && c.attention.heads.kind != HeadSelection::all_heads;
        block_forward(c, w, L, a, N, o, o.seed * 1000003ULL + l, [&](const float* in) {
            if (skip) attn_block_forward_skip(c, w, L, a, in, B, T, a.window);
            else attn_block_forward(c, w, L, in, a.attn_scratch, &ent, B, T, a.window);
        });
        entropy_sum += ent;
    }
    a.entropy = entropy_sum / c.n_layers;
    a.moh_balance = a.moe_aux = a.zloss = 0;
    for (const LayerActs& L : a.layers) {
        a.moh_balance += L.head_balance / c.n_layers;
        a.moe_aux += L.mst.aux / c.n_layers;
        a.zloss += L.mst.zloss / c.n_layers;
    }

    const double th = o.timing ? now_seconds() : 0;
    head_forward(m, a, N);
    if (o.timing) a.time_head += now_seconds() - th;
    if (!targets) return 0.0;
    int n_valid = 0;
    a.ce = crossentropy_forward(a.losses, a.logits, a.logits, targets, N, c.vocab_size, &n_valid);
    // Routing losses are computed per layer and averaged over layers (never pooled, HF #28255).
    double loss = a.ce;
    if (c.attention.heads.kind == HeadSelection::moh) loss += c.attention.heads.beta * a.moh_balance;
    if (c.moe.kind != FfnRouting::dense) loss += c.moe.aux_weight * a.moe_aux + c.moe.z_loss_weight * a.zloss;
    return loss;
}

void kvcache_create(KVCache& kv, const ModelConfig& c, int capacity) {
    kv.capacity = capacity;
    kv.len = 0;
    kv.k.assign(c.n_layers, std::vector<float>((size_t)capacity * c.n_kv_heads * c.head_dim));
    kv.v.assign(c.n_layers, std::vector<float>((size_t)capacity * c.n_kv_heads * c.head_dim));
    AttnDims d = attn_dims(c, 1, 1, capacity);
    const int P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    kv.scratch.assign(std::max(attention_decode_scratch_floats(d, capacity), attention_rows_scratch_floats(1, capacity, P)),
                      0.f);
}

// Decode with head skipping: the router's gates first, then each active head's query slice,
// its row against the cache and its W_O slice. K/V of the token are always computed (future
// queries may attend to them).
static void decode_heads_skip(const ModelConfig& c, const LayerWeights& w, LayerActs& L, KVCache& kv,
                              const float* in, int pos, int window, const float* kc, const float* vc) {
    const int C = c.d_model, H = c.n_heads, D = c.head_dim, HD = H * D, GD = c.n_kv_heads * D, group = H / c.n_kv_heads;
    const int P = c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0;
    head_gates_forward(c, w, L, in, 1);
    float* out = w.wo ? L.attn_out : L.atty;
    std::memset(out, 0, sizeof(float) * (w.wo ? C : HD));
    Eigen::Map<const Eigen::RowVectorXf> x(in, C);
    for (int h = 0; h < H; h++) {
        const float gt = L.head_gates[h];
        if (gt == 0.f) continue;
        float* q = L.q + h * D;
        Eigen::Map<Eigen::RowVectorXf>(q, D).noalias() = x * CMapR(w.wq + (size_t)h * D * C, D, C).transpose();
        if (c.attention.positional == PosKind::rope) rope_forward_rows(q, 1, D, &pos, D, c.attention.rope_theta);
        const float* e = P ? (c.attention.cope_shared ? w.cope_pos : w.cope_pos + (size_t)h * P * D) : nullptr;
        float* y = L.atty_raw + h * D;
        const int g = h / group;
        attention_rows(y, D, kv.scratch.data(), q, D, &pos, 1, kc + g * D, vc + g * D, GD, pos + 1, e, P, D, window, &gt);
        if (w.wo)
            Eigen::Map<Eigen::RowVectorXf>(out, C).noalias() +=
                Eigen::Map<const Eigen::RowVectorXf>(y, D) * CMapRS(w.wo + h * D, C, D, Strided(HD)).transpose();
        else
            std::memcpy(out + h * D, y, sizeof(float) * D);
    }
}

// One token at position kv.len through the same blocks as model_forward, with attention reading
// the cache (spec: the KV-cache path must equal the full forward). a: activations for B = T = 1.
void model_decode_step(const Model& m, Activations& a, KVCache& kv, int token, const ForwardOptions& o) {
    const int window = o.window;
    const bool skip = o.skip;
    const ModelConfig& c = m.cfg;
    assert(kv.len < kv.capacity && a.B >= 1 && a.T >= 1);
    const int C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const int pos = kv.len;
    a.cur_B = a.cur_T = 1;
    a.window = window;
    embedding_forward(a.x0, &token, m.w.tok_emb, m.w.pos_emb, 1, 1, C, pos);
    for (int l = 0; l < c.n_layers; l++) {
        const LayerWeights& w = m.w.layers[l];
        LayerActs& L = a.layers[l];
        block_forward(c, w, L, a, 1, o, 0, [&](const float* in) {
            const bool gated = c.attention.heads.kind != HeadSelection::all_heads;
            float* kc = kv.k[l].data();  // (capacity, G*D)
            float* vc = kv.v[l].data();
            if (!(gated && skip)) linear_forward(L.q, in, w.wq, nullptr, 1, C, HD);
            linear_forward(kc + (size_t)pos * GD, in, w.wk, nullptr, 1, C, GD);
            linear_forward(vc + (size_t)pos * GD, in, w.wv, nullptr, 1, C, GD);
            if (gated && skip) {  // only the active heads: q slice, score row, A.V and W_O slice
                if (c.attention.positional == PosKind::rope)
                    rope_forward(kc + (size_t)pos * GD, 1, 1, c.n_kv_heads, c.head_dim, c.attention.rope_theta, pos);
                decode_heads_skip(c, w, L, kv, in, pos, window, kc, vc);
                return;
            }
            if (c.attention.positional == PosKind::rope) {
                rope_forward(L.q, 1, 1, c.n_heads, c.head_dim, c.attention.rope_theta, pos);
                rope_forward(kc + (size_t)pos * GD, 1, 1, c.n_kv_heads, c.head_dim, c.attention.rope_theta, pos);
            }
            attention_decode_row(gated ? L.atty_raw : L.atty, kv.scratch.data(), L.q, kc, vc, pos + 1, w.cope_pos,
                                 attn_dims(c, 1, 1, window));
            if (gated) {
                head_gates_forward(c, w, L, in, 1);
                head_gate_forward(L.atty, L.atty_raw, L.head_gates, 1, c.n_heads, c.head_dim);
            }
            if (w.wo) linear_forward(L.attn_out, L.atty, w.wo, nullptr, 1, HD, C);
        });
    }
    kv.len++;
    const double th = o.timing ? now_seconds() : 0;
    head_forward(m, a, 1);
    if (o.timing) a.time_head += now_seconds() - th;
}

void model_backward(Model& m, Activations& a, const int* tokens, const int* targets) {
    const ModelConfig& c = m.cfg;
    const int B = a.cur_B, T = a.cur_T, N = B * T, C = c.d_model, V = c.vocab_size;
    const bool pre = c.norm_position == NormPosition::pre;
    int n_valid = 0;
    for (int i = 0; i < N; i++) n_valid += targets[i] >= 0;
    if (n_valid == 0) return;
    crossentropy_backward(a.dlogits, a.logits, targets, N, V, 1.f / n_valid);

    const float* xf = a.layers.back().out;
    const float* head_in = c.final_norm ? a.lnf : xf;
    const float* w_head = c.tie_embeddings ? m.w.tok_emb : m.w.lm_head;
    float* dw_head = c.tie_embeddings ? m.g.tok_emb : m.g.lm_head;
    float* dres = a.dres;  // dL/d (current block output), flows down the stack
    float* dtmp = a.dtmp;
    zero(dres, (size_t)N * C);
    linear_backward(dres, dw_head, m.g.lm_head_bias, a.dlogits, head_in, w_head, N, C, V);
    if (c.final_norm) {
        zero(dtmp, (size_t)N * C);
        norm_backward(c, dtmp, m.g.final_norm, m.g.final_norm_bias, dres, xf, m.w.final_norm, a.lnf_mean, a.lnf_rstd, N);
        std::swap(dres, dtmp);
    }
    // The routing losses are means over layers: each layer's gets its weight / L.
    const float dbal = c.attention.heads.beta / c.n_layers;
    const float daux = c.moe.aux_weight / c.n_layers, dzl = c.moe.z_loss_weight / c.n_layers;
    for (int l = c.n_layers - 1; l >= 0; l--) {
        const LayerWeights& w = m.w.layers[l];
        LayerWeights& g = m.g.layers[l];
        const LayerActs& L = a.layers[l];
        const uint64_t seed = a.seed * 1000003ULL + l;
        if (pre) {
            // dres = dL/d res2; the residual passes it to res1, the FFN path adds through ln2.
            zero(dtmp, (size_t)N * C);
            ffn_block_backward(c, w, g, L, a, dtmp, dres, L.ln2, N, a.training, seed, daux, dzl);
            norm_backward(c, dres, g.ffn_norm, g.ffn_norm_bias, dtmp, L.res1, w.ffn_norm, L.ln2_mean, L.ln2_rstd, N);
            zero(dtmp, (size_t)N * C);
            attn_block_backward(c, w, g, L, a, dtmp, dres, L.ln1, B, T, a.window, dbal);
            norm_backward(c, dres, g.attn_norm, g.attn_norm_bias, dtmp, L.x_in, w.attn_norm, L.ln1_mean, L.ln1_rstd, N);
        } else {
            // dres = dL/d ln2 (block output)
            zero(dtmp, (size_t)N * C);
            norm_backward(c, dtmp, g.ffn_norm, g.ffn_norm_bias, dres, L.res2, w.ffn_norm, L.ln2_mean, L.ln2_rstd, N);
            std::memcpy(dres, dtmp, sizeof(float) * N * C);        // residual path res2 -> ln1
            ffn_block_backward(c, w, g, L, a, dres, dtmp, L.ln1, N, a.training, seed, daux, dzl);  // dres = dL/d ln1
            zero(dtmp, (size_t)N * C);
            norm_backward(c, dtmp, g.attn_norm, g.attn_norm_bias, dres, L.res1, w.attn_norm, L.ln1_mean, L.ln1_rstd, N);
            std::memcpy(dres, dtmp, sizeof(float) * N * C);        // residual path res1 -> x_in
            attn_block_backward(c, w, g, L, a, dres, dtmp, L.x_in, B, T, a.window, dbal);
        }
    }
    embedding_backward(m.g.tok_emb, m.g.pos_emb, dres, tokens, B, T, C);
}

FlopBreakdown model_flops_per_token(const ModelConfig& c, int T) {
    FlopBreakdown f;
    const double C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    const double L = c.n_layers, F = c.ffn.d_ff, V = c.vocab_size, D = c.head_dim, H = c.n_heads;
    // Mean keys visible per query for a causal window W over T tokens.
    const int W = std::min(model_window(c, T, 4.f), T);
    double keys = 0;
    for (int i = 0; i < T; i++) keys += std::min(i + 1, W);
    keys /= T;
    f.attn_proj = L * 2 * C * (HD + 2 * GD);
    f.attn_scores = L * 2 * H * D * keys;
    if (c.attention.positional == PosKind::cope) f.attn_scores += L * 2 * H * D * c.attention.cope_npos;
    f.attn_av = L * 2 * H * D * keys;
    f.attn_out = c.attention.use_wo ? L * 2 * HD * C : 0;
    if (c.attention.heads.kind == HeadSelection::moh) {
        const double S = c.attention.heads.n_shared;
        f.routers += L * 2 * C * (H - S + (S > 0 ? S + 2 : 0));
    }
    const MoeConfig& mc = c.moe;
    if (mc.kind == FfnRouting::dense) {
        f.ffn = L * 2 * C * F * (c.ffn.kind == FfnKind::swiglu ? 3 : 2);
    } else {
        const double h = mc.kind == FfnRouting::mh_moe ? mc.n_heads : 1, Cs = C / h;
        const double K = mc.routing == MoeRouting::top1_capacity ? 1 : mc.top_k;
        // Nominal: every sub-token reaches K experts (expert choice: cf experts on average).
        const double per = mc.routing == MoeRouting::expert_choice ? mc.capacity_factor : K;
        f.routers += L * h * 2 * Cs * mc.n_experts * (mc.routing == MoeRouting::noisy_topk ? 2 : 1);
        f.ffn = L * h * (per + mc.n_shared_experts) * 2 * Cs * mc.d_ff_expert * 3;
        if (mc.kind == FfnRouting::mh_moe) f.ffn += L * 2 * 2 * C * C;  // head and merge layers
    }
    f.lm_head = 2 * C * V;
    return f;
}

}  // namespace rl
