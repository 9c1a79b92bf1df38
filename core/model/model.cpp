// The transformer, top to bottom (nanoGPT's shape, llm.c's buffers): embeddings, L blocks of
// attention + FFN with pre- or post-norm residuals, optional final norm, LM head, cross-entropy.
// Backward walks the same path in reverse. Every buffer is a view into an arena made in
// activations_create (model/tensors.cpp); nothing here allocates (tests/alloc).
#include "model/model.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "backend/ops.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "layers/ffn.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/norm.h"
#include "layers/residual.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "util/threads.h"

namespace rl {

namespace {

// eps: 0 = the config's norm_eps (the final norm passes final_norm_eps, which may differ: JetMoE).
void norm_forward(const Ops& op, const ModelConfig& c, float* out, float* mean, float* rstd, const float* x,
                  const float* w, const float* b, int N, float eps = 0.f) {
    if (eps == 0.f) eps = c.norm_eps;
    if (c.norm == NormKind::rmsnorm) op.rmsnorm_forward(out, rstd, x, w, N, c.d_model, eps);
    else op.layernorm_forward(out, mean, rstd, x, w, b, N, c.d_model, eps);
}
void norm_backward(const Ops& op, const ModelConfig& c, float* dx, float* dw, float* db, const float* dout,
                   const float* x, const float* w, const float* mean, const float* rstd, int N) {
    if (c.norm == NormKind::rmsnorm) op.rmsnorm_backward(dx, dw, dout, x, w, rstd, N, c.d_model);
    else op.layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, c.d_model);
}

int cope_npos(const ModelConfig& c) { return c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0; }

KvSource kv_of_activations(LayerActs& L, int T) { return {L.k, L.v, T, 0, false, nullptr}; }
KvSource kv_of_cache(KVCache& kv, int l) {
    return {kv.k[l].data(), kv.v[l].data(), kv.capacity, kv.len, true, kv.scratch.data()};
}

// Gates (N,H) of every head for the block input `in`: the MoH router, the query-norm rule on the
// queries already in a.q (before RoPE), or static pruning's 1/0.
void head_gates_forward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerActs& a, Activations& s,
                        const float* in, int N) {
    const HeadsConfig& h = c.attention.heads;
    if (h.kind == HeadSelection::moh) {
        HeadRouterDims rd = model_router_dims(c, N);
        rd.bias = w.head_bias;
        if (h.router == HeadRouterKind::query_norm)
            op.head_gates_query_norm(a.head_gates, a.hr, a.q, rd, c.head_dim);
        else if (h.router == HeadRouterKind::experts)
            op.head_gates_experts(a.head_gates, a.hr, in, w.router_routed, rd, h.n_experts, s.router_scratch);
        else
            op.head_router_forward(a.head_gates, a.hr, in, w.router_shared, w.router_routed, w.router_type, rd,
                                   s.router_scratch);
        a.head_balance = op.head_router_balance(a.head_f.data(), a.head_P.data(), a.hr, rd);
    } else {
        op.head_gates_static(a.head_gates, N, c.n_heads, h.n_active);
    }
}

}  // namespace

namespace {

// out (N,O) = in (N,I) W^T (+ b): W float32 (w) or, when w is null, a frozen model's BF16 matrix, in its
// mapped checkpoint or packed at open (wh; tensor/gemm_bf16.h, forward only).
void proj_forward(const Ops& op, float* out, const float* in, const float* w, Bf16Weight wh, const float* b, int N,
                  int I, int O) {
    if (w || !wh) return op.linear_forward(out, in, w, b, N, I, O);
    gemm_bf16w(N, O, I, in, I, wh, out, O);
    if (b) linear_add_bias(out, b, N, O);
}

// proj_forward's backward: a float32 W through the op table (its gradient where dw is given), a frozen
// model's BF16 W on the CPU (the input's gradient only; such a model is CPU-only, tensor/gemm_bf16.h).
void proj_backward(const Ops& op, float* din, float* dw, float* db, const float* dout, const float* in, const float* w,
                   Bf16Weight wh, int N, int I, int O) {
    if (w || !wh) return op.linear_backward(din, dw, db, dout, in, w, N, I, O);
    linear_backward_any(din, nullptr, nullptr, dout, in, nullptr, wh, N, I, O);
}

// QK-norm, in place before RoPE, over rows (N, nh*D): one RMSNorm over the whole projection
// (modeling_olmoe.py OlmoeAttention.forward) or one per head with a (D) weight (modeling_qwen3_moe.py
// Qwen3MoeAttention.forward). rstd: (N*nh) scratch. Forward only (config_training_blocker).
void qk_norm_forward(const Ops& op, const ModelConfig& c, float* x, const float* w, int N, int nh, float* rstd) {
    const int D = c.head_dim;
    if (c.attention.qk_norm == QkNorm::full) op.rmsnorm_forward(x, rstd, x, w, N, nh * D, c.norm_eps);
    else op.rmsnorm_forward(x, rstd, x, w, N * nh, D, c.norm_eps);
}

// qk_norm_forward's backward, in place: d (N, nh*D) holds dL/d the normed rows on entry and dL/d the
// projection on return. The projection is recomputed into `pre` (N, nh*D scratch) rather than saved:
// one GEMM per layer instead of two (N, H*D) buffers kept through the step. Frozen norm weight: its
// own gradient is not taken (router-only tuning is the one way a model with qk_norm trains).
void qk_norm_backward(const Ops& op, const ModelConfig& c, float* d, float* pre, const float* in, const float* w,
                      Bf16Weight wh, const float* b, const float* norm_w, int N, int nh) {
    const int D = c.head_dim, HD = nh * D, C = c.d_model;
    proj_forward(op, pre, in, w, wh, b, N, C, HD);
    const bool full = c.attention.qk_norm == QkNorm::full;
    const int rows = full ? N : N * nh, width = full ? HD : D;
    parallel_for(rows, rows >= 64, [&](int r) {
        const float* x = pre + (size_t)r * width;
        float* dy = d + (size_t)r * width;
        double ss = 0, dot = 0;
        for (int i = 0; i < width; i++) ss += (double)x[i] * x[i];
        const double rs = 1.0 / std::sqrt(ss / width + c.norm_eps);
        for (int i = 0; i < width; i++) dot += (double)x[i] * norm_w[i] * dy[i];
        const double k = rs * rs * rs * dot / width;
        for (int i = 0; i < width; i++) dy[i] = (float)(rs * norm_w[i] * dy[i] - x[i] * k);  // rmsnorm_backward's dx
    });
}

// K and V rows of this call (contiguous: B sequences of T, or one token of the cache), RoPE on the
// keys. With skip and no cache, only the kv groups some active head of the batch reads.
void kv_forward(const Ops& op, const ModelConfig& c, const LayerWeights& w, Activations& s, const LayerActs& L,
                const float* in, int B, int T, const KvSource& kv, bool skip) {
    const int N = B * T, C = c.d_model, G = c.n_kv_heads, D = c.head_dim, GD = G * D;
    float* kd = kv.k + (size_t)kv.pos0 * GD;  // (N, G*D)
    float* vd = kv.v + (size_t)kv.pos0 * GD;  // (N, G*D)
    const int needed = skip && !kv.cached ? op.kv_groups_needed(c, L, N, s.kv_need) : G;
    if (needed == G) {  // one GEMM each, as dense
        proj_forward(op, kd, in, w.wk, w.bf16_wk, w.bk, N, C, GD);
        proj_forward(op, vd, in, w.wv, w.bf16_wv, w.bv, N, C, GD);
    } else {  // (qkv_bias and qk_norm need all heads: config_validate)
        for (int g = 0; g < G; g++) {
            if (!s.kv_need[g]) continue;
            op.gemm(false, true, N, D, C, 1.f, in, C, w.wk + (size_t)g * D * C, C, 0.f, kd + g * D, GD);
            op.gemm(false, true, N, D, C, 1.f, in, C, w.wv + (size_t)g * D * C, C, 0.f, vd + g * D, GD);
        }
    }
    if (w.k_norm) qk_norm_forward(op, c, kd, w.k_norm, N, G, s.qk_rstd);
    if (c.attention.positional == PosKind::rope) op.rope_forward(kd, B, T, G, D, model_rope_inv_freq(c).data(), kv.pos0);
}

// Every head over every query row (training's dense-masked MoH, as the official code computes it):
// q (+RoPE), the causal softmax saved for backward (or one row against the cache), gates, W_O.
// q_ready: L.q already holds the projection (the query-norm head rule read it to choose the heads).
void attn_heads_dense(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& s,
                      const float* in, int B, int T, int window, const KvSource& kv, float* entropy, bool q_ready) {
    const int N = B * T, C = c.d_model, H = c.n_heads, D = c.head_dim, HD = H * D;
    const bool gated = c.attention.heads.kind != HeadSelection::all_heads;
    float* y = gated ? L.atty_raw : L.atty;  // (N, H*D) heads before their gates
    const float* on = gated ? L.head_gates : nullptr;
    if (!q_ready) proj_forward(op, L.q, in, w.wq, w.bf16_wq, w.bq, N, C, HD);
    if (w.q_norm) qk_norm_forward(op, c, L.q, w.q_norm, N, H, s.qk_rstd);
    if (c.attention.positional == PosKind::rope) op.rope_forward(L.q, B, T, H, D, model_rope_inv_freq(c).data(), kv.pos0);
    if (kv.cached)
        op.attention_decode_row(y, kv.rows_scratch, L.q, kv.k, kv.v, kv.pos0 + 1, w.cope_pos,
                                model_attn_dims(c, 1, 1, window), on, entropy);
    else
        op.attention_forward(y, L.att, L.gates, entropy, s.attn_scratch, L.q, kv.k, kv.v, w.cope_pos,
                             model_attn_dims(c, B, T, window), on);
    if (gated) op.head_gate_forward(L.atty, L.atty_raw, L.head_gates, N, H, D);
    if (w.wo || w.bf16_wo) proj_forward(op, L.attn_out, L.atty, w.wo, w.bf16_wo, nullptr, N, HD, C);
}

}  // namespace

namespace {

// ---- attention block: in (N,C) -> attn_out (N,C) ----
// One path for the full forward, the skip path, decode and skip decode: the head gates first, then
// the K/V rows into `kv`, then the heads, dense or skipping the pairs whose gate is 0 (same output).
// entropy: mean attention-row entropy over the rows of heads that are on (every row without gates).
void attn_block_forward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& s,
                        const float* in, int B, int T, int window, const KvSource& kv, bool skip, float* entropy) {
    const bool gated = c.attention.heads.kind != HeadSelection::all_heads;
    // The query-norm rule reads every head's query before choosing: nothing for the skip path to skip.
    const bool by_query = gated && c.attention.heads.router == HeadRouterKind::query_norm;
    skip = skip && gated && !by_query;
    if (by_query) proj_forward(op, L.q, in, w.wq, w.bf16_wq, w.bq, B * T, c.d_model, c.n_heads * c.head_dim);
    if (gated) head_gates_forward(op, c, w, L, s, in, B * T);
    kv_forward(op, c, w, s, L, in, B, T, kv, skip);
    if (skip) op.attn_skip_forward(c, w, L, s, in, B, T, window, kv, entropy);
    else attn_heads_dense(op, c, w, L, s, in, B, T, window, kv, entropy, by_query);
}

// Accumulates dL/d in into din (full forward only). dbalance: dLoss/dL_b of this layer (beta / L).
// skip: the forward took the skip path (Activations::skip), so the backward differentiates its rows.
void attn_block_backward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerWeights& g,
                         const LayerActs& a, Activations& s, float* din, const float* dout, const float* in, int B,
                         int T, int window, float dbalance, bool skip) {
    const int N = B * T, C = c.d_model, HD = c.n_heads * c.head_dim, GD = c.n_kv_heads * c.head_dim;
    if (skip && c.attention.heads.kind != HeadSelection::all_heads)
        return op.attn_skip_backward(c, w, g, a, s, din, dout, in, B, T, window, dbalance);
    const float* datty = dout;
    if (w.wo || w.bf16_wo) {
        op.tensor_zero(s.datty, (size_t)N * HD);
        proj_backward(op, s.datty, g.wo, nullptr, dout, a.atty, w.wo, w.bf16_wo, N, HD, C);
        datty = s.datty;
    }
    if (c.attention.heads.kind != HeadSelection::all_heads) {
        op.tensor_zero(s.datty_raw, (size_t)N * HD);
        op.head_gate_backward(s.datty_raw, s.dgates, datty, a.atty_raw, a.head_gates, N, c.n_heads, c.head_dim);
        const HeadsConfig& hc = c.attention.heads;
        if (hc.kind == HeadSelection::moh && hc.router == HeadRouterKind::learned)
            op.head_router_backward(din, g.router_shared, g.router_routed, g.router_type, s.router_scratch, s.dgates,
                                    dbalance, a.head_f.data(), a.hr, in, w.router_shared, w.router_routed,
                                    w.router_type, model_router_dims(c, N));
        if (hc.kind == HeadSelection::moh && hc.router == HeadRouterKind::experts)
            op.head_gates_experts_backward(din, g.router_routed, s.router_scratch, s.dgates, dbalance, a.head_f.data(),
                                           a.hr, a.head_gates, in, w.router_routed, model_router_dims(c, N),
                                           hc.n_experts);
        datty = s.datty_raw;
    }
    op.tensor_zero(s.dq, (size_t)N * HD);
    op.tensor_zero(s.dk, (size_t)N * GD);
    op.tensor_zero(s.dv, (size_t)N * GD);
    op.attention_backward(s.dq, s.dk, s.dv, g.cope_pos, s.attn_scratch, datty, a.q, a.k, a.v, a.att, a.gates,
                          w.cope_pos, model_attn_dims(c, B, T, window));
    if (c.attention.positional == PosKind::rope) {
        const RopeFreqs inv_freq = model_rope_inv_freq(c);
        op.rope_backward(s.dq, B, T, c.n_heads, c.head_dim, inv_freq.data(), 0);
        op.rope_backward(s.dk, B, T, c.n_kv_heads, c.head_dim, inv_freq.data(), 0);
    }
    if (w.q_norm) qk_norm_backward(op, c, s.dq, s.datty, in, w.wq, w.bf16_wq, w.bq, w.q_norm, N, c.n_heads);
    if (w.k_norm) qk_norm_backward(op, c, s.dk, s.datty, in, w.wk, w.bf16_wk, w.bk, w.k_norm, N, c.n_kv_heads);
    proj_backward(op, din, g.wq, g.bq, s.dq, in, w.wq, w.bf16_wq, N, C, HD);
    proj_backward(op, din, g.wk, g.bk, s.dk, in, w.wk, w.bf16_wk, N, C, GD);
    proj_backward(op, din, g.wv, g.bv, s.dv, in, w.wv, w.bf16_wv, N, C, GD);
}

// The layer's MoE dims for a forward over sequences of T tokens: the config's, plus this layer's
// selection bias, sequence length (seq_aux_loss) and window counts (global_aux_loss, training only).
MoeDims layer_moe_dims(const ModelConfig& c, const LayerWeights& w, const LayerActs& a, int N, int T, bool training,
                       uint64_t seed) {
    MoeDims md = model_moe_dims(c, N, training, seed, a.layer);
    md.bias = w.moe.bias;
    md.seq_rows = T * (md.N / N);
    if (training && !a.moe_ring_sum.empty()) {
        md.global_counts = a.moe_ring_sum.data();
        for (double r : a.moe_ring_rows) md.global_rows += r;
    }
    return md;
}

// ---- FFN block: in (N,C) -> ffn_out (N,C): dense, MoE, or MH-MoE (head -> split -> MoE -> merge) ----
void ffn_block_forward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerActs& a, const float* in, int N,
                       int T, bool training, uint64_t seed, bool all_experts) {
    const int C = c.d_model, F = c.ffn.d_ff;
    const bool sparse = w.moe.router != nullptr;  // false in model.moe.dense_layers
    MoeDims md = layer_moe_dims(c, w, a, N, T, training, seed);
    md.all_experts = all_experts;
    if (sparse && c.moe.kind == FfnRouting::moe) {
        op.moe_forward(a.ffn_out, a.mst, a.ms, in, w.moe, md);
        if (w.moe_out_bias) linear_add_bias(a.ffn_out, w.moe_out_bias, N, C);  // JetMoeMoE: + bias once per token
        return;
    }
    if (sparse && c.moe.kind == FfnRouting::mh_moe) {
        // (N,C) rows are N*h contiguous sub-tokens of width C/h: the split and merge are free views.
        op.linear_forward(a.xh, in, w.w_head, w.b_head, N, C, C);
        op.moe_forward(a.ym, a.mst, a.ms, a.xh, w.moe, md);
        op.linear_forward(a.ffn_out, a.ym, w.w_merge, w.b_merge, N, C, C);
        return;
    }
    if (c.ffn.kind == FfnKind::swiglu)
        return op.swiglu_ffn_forward(a.ffn_out, a.fa, a.fb, a.fh, in,
                                     {w.w_gate, w.w_up, w.w_down, w.bf16_gate, w.bf16_up, w.bf16_down}, N, C, F);
    op.linear_forward(a.fa, in, w.w_up, w.b_up, N, C, F);
    if (c.ffn.kind == FfnKind::relu) op.relu_forward(a.fh, a.fa, N * F);
    else op.gelu_forward(a.fh, a.fa, N * F);
    op.linear_forward(a.ffn_out, a.fh, w.w_down, w.b_down, N, F, C);
}

void ffn_block_backward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& a,
                        Activations& s, float* din, const float* dout, const float* in, int N, int T, bool training,
                        uint64_t seed, float daux, float dzl) {
    const int C = c.d_model, F = c.ffn.d_ff;
    const bool sparse = w.moe.router != nullptr;
    const MoeDims md = sparse ? layer_moe_dims(c, w, a, N, T, training, seed) : MoeDims{};
    if (sparse && c.moe.kind == FfnRouting::moe) {
        op.moe_backward(din, g.moe, s.moe_scratch, dout, in, a.mst, a.ms, w.moe, md, daux, dzl);
        return;
    }
    if (sparse && c.moe.kind == FfnRouting::mh_moe) {
        op.tensor_zero(s.dym, (size_t)N * C);
        op.linear_backward(s.dym, g.w_merge, g.b_merge, dout, a.ym, w.w_merge, N, C, C);
        op.tensor_zero(s.dxh, (size_t)N * C);
        op.moe_backward(s.dxh, g.moe, s.moe_scratch, s.dym, a.xh, a.mst, a.ms, w.moe, md, daux, dzl);
        op.linear_backward(din, g.w_head, g.b_head, s.dxh, in, w.w_head, N, C, C);
        return;
    }
    if (c.ffn.kind == FfnKind::swiglu)
        return op.swiglu_ffn_backward(din, {g.w_gate, g.w_up, g.w_down}, s.dfb, s.dfh, dout, in, a.fa, a.fb, a.fh,
                                      {w.w_gate, w.w_up, w.w_down, w.bf16_gate, w.bf16_up, w.bf16_down}, N, C, F);
    op.tensor_zero(s.dfh, (size_t)N * F);
    op.linear_backward(s.dfh, g.w_down, g.b_down, dout, a.fh, w.w_down, N, F, C);
    op.tensor_zero(s.dfa, (size_t)N * F);
    if (c.ffn.kind == FfnKind::relu) op.relu_backward(s.dfa, s.dfh, a.fa, N * F);
    else op.gelu_backward(s.dfa, s.dfh, a.fa, N * F);
    op.linear_backward(din, g.w_up, g.b_up, s.dfa, in, w.w_up, N, C, F);
}

// ---- one transformer block: x_in (N,C) -> out (N,C) ----
// pre-norm:  res1 = x + attn(norm1(x));  res2 = res1 + ffn(norm2(res1))
// post-norm: res1 = x + attn(x); h = norm1(res1); res2 = h + ffn(h); out = norm2(res2)
void block_forward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& a, int B,
                   int T, const ForwardOptions& o, uint64_t seed, const KvSource& kv, float* entropy) {
    const int N = B * T;
    const size_t NC = (size_t)N * c.d_model;
    const bool pre = c.norm_position == NormPosition::pre;
    double t0 = o.timing ? now_seconds() : 0;
    if (pre) norm_forward(op, c, L.ln1, L.ln1_mean, L.ln1_rstd, L.x_in, w.attn_norm, w.attn_norm_bias, N);
    attn_block_forward(op, c, w, L, a, pre ? L.ln1 : L.x_in, B, T, a.window, kv, o.skip, entropy);
    if (w.bo) linear_add_bias(L.attn_out, w.bo, N, c.d_model);  // JetMoeMoA.reduce: + bias once per token
    // GraniteMoe scales each branch before its residual add (modeling_granitemoe.py GraniteMoeDecoderLayer.forward).
    const float rm = c.residual_multiplier;
    if (rm != 1.f) op.tensor_scale(L.attn_out, rm, NC);
    op.residual_forward(L.res1, L.x_in, L.attn_out, NC);
    if (o.timing) a.time_attn += now_seconds() - t0;
    if (o.timing) t0 = now_seconds();
    if (pre) {
        norm_forward(op, c, L.ln2, L.ln2_mean, L.ln2_rstd, L.res1, w.ffn_norm, w.ffn_norm_bias, N);
        ffn_block_forward(op, c, w, L, L.ln2, N, T, o.training, seed, o.moe_all_experts);
        if (rm != 1.f) op.tensor_scale(L.ffn_out, rm, NC);
        op.residual_forward(L.res2, L.res1, L.ffn_out, NC);
    } else {
        norm_forward(op, c, L.ln1, L.ln1_mean, L.ln1_rstd, L.res1, w.attn_norm, w.attn_norm_bias, N);
        ffn_block_forward(op, c, w, L, L.ln1, N, T, o.training, seed, o.moe_all_experts);
        if (rm != 1.f) op.tensor_scale(L.ffn_out, rm, NC);
        op.residual_forward(L.res2, L.ln1, L.ffn_out, NC);
        norm_forward(op, c, L.ln2, L.ln2_mean, L.ln2_rstd, L.res2, w.ffn_norm, w.ffn_norm_bias, N);
    }
    if (o.timing) a.time_ffn += now_seconds() - t0;
}

// dres: dL/d out on entry, dL/d x_in on return; dtmp is scratch. daux/dzl/dbal: the routing losses' weights / L.
// With Activations::timing the FFN and attention parts' seconds are added to time_ffn / time_attn.
void block_backward(const Ops& op, const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& L,
                    Activations& a, float* dres, float* dtmp, uint64_t seed, float dbal, float daux, float dzl) {
    const int B = a.cur_B, T = a.cur_T, N = B * T;
    const size_t NC = (size_t)N * c.d_model;
    double t0 = a.timing ? now_seconds() : 0;
    auto lap = [&](double& into) {
        if (!a.timing) return;
        const double t1 = now_seconds();
        into += t1 - t0;
        t0 = t1;
    };
    // GraniteMoe's residual_multiplier scales each branch's output: the branch gets rm times the
    // residual's gradient (scaled in place for the call and back: within a rounding of the exact).
    const float rm = c.residual_multiplier;
    auto branch = [&](float* d, auto&& backward) {
        if (rm != 1.f) op.tensor_scale(d, rm, NC);
        backward();
        if (rm != 1.f) op.tensor_scale(d, 1.f / rm, NC);
    };
    if (c.norm_position == NormPosition::pre) {
        // dres = dL/d res2. Its identity branch is dL/d res1 already; the FFN branch adds through norm2.
        op.tensor_zero(dtmp, NC);
        branch(dres, [&] { ffn_block_backward(op, c, w, g, L, a, dtmp, dres, L.ln2, N, T, a.training, seed, daux, dzl); });
        norm_backward(op, c, dres, g.ffn_norm, g.ffn_norm_bias, dtmp, L.res1, w.ffn_norm, L.ln2_mean, L.ln2_rstd, N);
        lap(a.time_ffn);
        op.tensor_zero(dtmp, NC);
        branch(dres, [&] { attn_block_backward(op, c, w, g, L, a, dtmp, dres, L.ln1, B, T, a.window, dbal, a.skip); });
        norm_backward(op, c, dres, g.attn_norm, g.attn_norm_bias, dtmp, L.x_in, w.attn_norm, L.ln1_mean, L.ln1_rstd, N);
        lap(a.time_attn);
    } else {
        op.tensor_zero(dtmp, NC);  // dL/d res2
        norm_backward(op, c, dtmp, g.ffn_norm, g.ffn_norm_bias, dres, L.res2, w.ffn_norm, L.ln2_mean, L.ln2_rstd, N);
        op.tensor_zero(dres, NC);  // dL/d ln1 = residual + FFN branches of dL/d res2
        op.residual_backward(dres, dtmp, NC);
        branch(dtmp, [&] { ffn_block_backward(op, c, w, g, L, a, dres, dtmp, L.ln1, N, T, a.training, seed, daux, dzl); });
        lap(a.time_ffn);
        op.tensor_zero(dtmp, NC);  // dL/d res1
        norm_backward(op, c, dtmp, g.attn_norm, g.attn_norm_bias, dres, L.res1, w.attn_norm, L.ln1_mean, L.ln1_rstd, N);
        op.tensor_zero(dres, NC);  // dL/d x_in = residual + attention branches of dL/d res1
        op.residual_backward(dres, dtmp, NC);
        branch(dtmp, [&] { attn_block_backward(op, c, w, g, L, a, dres, dtmp, L.x_in, B, T, a.window, dbal, a.skip); });
        lap(a.time_attn);
    }
}

// Optional final norm, then logits (N,V) with the LM head (or the tied token embedding).
void lm_head_forward(const Model& m, Activations& a, int N) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    const float* xf = a.layers.back().out;
    const float* head_in = xf;
    if (c.final_norm) {
        norm_forward(op, c, a.lnf, a.lnf_mean, a.lnf_rstd, xf, m.w.final_norm, m.w.final_norm_bias, N, c.final_norm_eps);
        head_in = a.lnf;
    }
    const float* w_head = c.tie_embeddings ? m.w.tok_emb : m.w.lm_head;
    proj_forward(op, a.logits, head_in, m.w.bf16_head ? nullptr : w_head, m.w.bf16_head, m.w.lm_head_bias, N,
                 c.d_model, c.vocab_size);
    // GraniteMoe divides the logits (modeling_granitemoe.py GraniteMoeForCausalLM.forward: logits / logits_scaling).
    if (c.logits_scaling != 1.f) op.tensor_scale(a.logits, 1.f / c.logits_scaling, (size_t)N * c.vocab_size);
}

// a.logits (holding dL/d logits by now) -> dres = dL/d (last block output); dtmp is scratch.
void lm_head_backward(Model& m, Activations& a, float* dres, float* dtmp, int N) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    const float* xf = a.layers.back().out;
    const float* head_in = c.final_norm ? a.lnf : xf;
    const float* w_head = c.tie_embeddings ? m.w.tok_emb : m.w.lm_head;
    float* dw_head = c.tie_embeddings ? m.g.tok_emb : m.g.lm_head;
    const size_t NC = (size_t)N * c.d_model;
    float* dhead_in = c.final_norm ? dtmp : dres;  // (N,C)
    op.tensor_zero(dhead_in, NC);
    if (c.logits_scaling != 1.f) op.tensor_scale(a.logits, 1.f / c.logits_scaling, (size_t)N * c.vocab_size);
    proj_backward(op, dhead_in, dw_head, m.g.lm_head_bias, a.logits, head_in, m.w.bf16_head ? nullptr : w_head, m.w.bf16_head,
                  N, c.d_model, c.vocab_size);
    if (!c.final_norm) return;
    op.tensor_zero(dres, NC);
    norm_backward(op, c, dres, m.g.final_norm, m.g.final_norm_bias, dtmp, xf, m.w.final_norm, a.lnf_mean, a.lnf_rstd,
                  N);
}

// The blocks over a.x0 and the LM head; kv_of(l) says where layer l's keys and values live. Each
// layer's MoE noise gets its own stream: (seed, layer).
template <class KvOf>
void stack_forward(const Model& m, Activations& a, int B, int T, const ForwardOptions& o, KvOf&& kv_of) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    float entropy_sum = 0.f;
    for (int l = 0; l < c.n_layers; l++) {
        float ent = 0.f;
        block_forward(op, c, m.w.layers[l], a.layers[l], a, B, T, o, o.seed * 1000003ULL + l, kv_of(l), &ent);
        entropy_sum += ent;
    }
    a.entropy = entropy_sum / c.n_layers;
    const double th = o.timing ? now_seconds() : 0;
    lm_head_forward(m, a, B * T);
    if (o.timing) a.time_head += now_seconds() - th;
}

}  // namespace

HeadRouterDims model_router_dims(const ModelConfig& c, int N) {
    const HeadsConfig& h = c.attention.heads;
    HeadRouterDims d;
    d.N = N; d.C = c.d_model; d.H = c.n_heads; d.S = h.n_shared; d.K = h.n_active_routed;
    d.paper = h.gate_scaling == GateScaling::paper;
    return d;
}

AttnDims model_attn_dims(const ModelConfig& c, int B, int T, int window) {
    AttnDims d;
    d.B = B; d.T = T; d.H = c.n_heads; d.G = c.n_kv_heads; d.D = c.head_dim;
    d.window = window;
    d.npos = cope_npos(c);
    d.cope_shared = c.attention.cope_shared;
    d.scale = c.attention.scale;
    return d;
}

RopeFreqs model_rope_inv_freq(const ModelConfig& c) {
    RopeFreqs f{};
    assert(c.head_dim / 2 <= (int)f.size());
    rope_inv_freq(f.data(), c.head_dim, c.attention.rope_theta);
    if (const RopeScalingConfig& r = c.attention.rope_scaling; r.kind == RopeScaling::llama3)
        rope_scale_llama3(f.data(), c.head_dim / 2, r.factor, r.low_freq_factor, r.high_freq_factor, r.original_max_positions);
    return f;
}

MoeDims model_moe_dims(const ModelConfig& c, int N, bool training, uint64_t seed, int layer) {
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
    d.score = mc.score_function;
    d.balance = mc.load_balancing;
    d.drop = mc.token_drop_policy;
    d.topk_scale = mc.topk_scaling_factor;
    d.n_groups = mc.n_groups;
    d.group_topk = mc.group_topk;
    d.Fs = mc.d_ff_shared;
    d.norm_topk = mc.topk_weights == TopkWeights::automatic ? -1 : mc.topk_weights == TopkWeights::renormalised ? 1 : 0;
    d.inference_capacity_factor = mc.inference_capacity_factor;
    // The masked experts of this layer (validated already; config_masks_each allocates nothing).
    config_masks_each(mc.masked_experts, [&](int at, int e) {
        if (e < d.E && (at < 0 || at == layer)) d.masked[e >> 6] |= uint64_t{1} << (e & 63), d.any_masked = true;
    });
    return d;
}

constexpr int k_max_routed_heads = 128;  // config_validate: n_heads <= 128

void model_route_update(Model& m, Activations& a) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    const bool moe = c.moe.kind != FfnRouting::dense;
    for (int l = 0; l < c.n_layers; l++) {
        LayerWeights& w = m.w.layers[l];
        LayerActs& L = a.layers[l];
        if (w.head_bias) {  // head_f is a fraction of the step's N tokens: back to whole counts
            const int R = (int)L.head_f.size(), N = a.cur_B * a.cur_T;
            float counts[k_max_routed_heads];
            for (int i = 0; i < R; i++) counts[i] = (float)std::lround(L.head_f[i] * N);
            op.route_bias_update(w.head_bias, counts, R, c.attention.heads.bias_update_rate);
        }
        if (!moe || !w.moe.router) continue;
        const int E = c.moe.n_experts;
        if (w.moe.bias) op.route_bias_update(w.moe.bias, L.mst.counts.data(), E, c.moe.bias_update_rate);
        if (L.moe_ring_rows.empty()) continue;  // global_aux_loss over one step (window 1), or off
        // The ring drops its oldest step and takes this one's counts (f is a fraction of N*K choices).
        const MoeDims md = model_moe_dims(c, a.cur_B * a.cur_T, true, 0);
        float* slot = L.moe_ring.data() + (size_t)L.moe_ring_pos * E;
        for (int e = 0; e < E; e++) {
            const float n = L.mst.counts[e];
            L.moe_ring_sum[e] += n - slot[e];
            slot[e] = n;
        }
        L.moe_ring_rows[L.moe_ring_pos] = md.N;
        L.moe_ring_pos = (L.moe_ring_pos + 1) % (int)L.moe_ring_rows.size();
    }
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
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    assert(B <= a.B && T <= a.T);
    a.cur_B = B;
    a.cur_T = T;
    a.window = o.window > 0 ? o.window : model_window(c, T, o.prev_entropy);
    a.training = o.training;
    a.seed = o.seed;
    // The query-norm rule computes every head before choosing (attn_block_forward): no skip, so none back.
    a.skip = o.skip && c.attention.heads.kind != HeadSelection::all_heads &&
             c.attention.heads.router != HeadRouterKind::query_norm;
    a.timing = o.timing;
    op.embedding_forward(a.x0, tokens, m.w.tok_emb, m.w.pos_emb, B, T, c.d_model, 0);
    if (c.embedding_multiplier != 1.f) op.tensor_scale(a.x0, c.embedding_multiplier, (size_t)B * T * c.d_model);
    stack_forward(m, a, B, T, o, [&](int l) { return kv_of_activations(a.layers[l], T); });
    a.moh_balance = a.moe_aux = a.zloss = 0;
    for (const LayerActs& L : a.layers) {
        a.moh_balance += L.head_balance / c.n_layers;
        a.moe_aux += L.mst.aux / c.n_layers;
        a.zloss += L.mst.zloss / c.n_layers;
    }
    if (!targets) return 0.0;
    int n_valid = 0;
    a.ce = op.crossentropy_forward(a.losses, a.logits, a.logits, targets, B * T, c.vocab_size, &n_valid);
    // Routing losses are computed per layer and averaged over layers (never pooled, HF #28255).
    double loss = a.ce;
    if (c.attention.heads.kind == HeadSelection::moh) loss += c.attention.heads.beta * a.moh_balance;
    if (c.moe.kind != FfnRouting::dense) loss += c.moe.aux_weight * a.moe_aux + c.moe.z_loss_weight * a.zloss;
    return loss;
}

// One token at position kv.len through the same blocks as model_forward, with attention reading
// the cache (the KV-cache path must equal the full forward). a: activations for B = T = 1.
void model_decode_step(const Model& m, Activations& a, KVCache& kv, int token, const ForwardOptions& o) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    assert(kv.len < kv.capacity && a.B >= 1 && a.T >= 1);
    a.cur_B = a.cur_T = 1;
    a.window = o.window > 0 ? o.window : model_window(c, kv.capacity, o.prev_entropy);
    op.embedding_forward(a.x0, &token, m.w.tok_emb, m.w.pos_emb, 1, 1, c.d_model, kv.len);
    if (c.embedding_multiplier != 1.f) op.tensor_scale(a.x0, c.embedding_multiplier, (size_t)c.d_model);
    stack_forward(m, a, 1, 1, o, [&](int l) { return kv_of_cache(kv, l); });
    kv.len++;
}

void model_backward(Model& m, Activations& a, const int* tokens, const int* targets) {
    const Ops& op = *m.ops;
    const ModelConfig& c = m.cfg;
    const int N = a.cur_B * a.cur_T;
    int n_valid = 0;
    for (int i = 0; i < N; i++) n_valid += targets[i] >= 0;
    if (n_valid == 0) return;
    const double th = a.timing ? now_seconds() : 0;
    // In place: the probabilities become dL/d logits (one (N,V) buffer fewer, 3 MB at B=16, V=605).
    op.crossentropy_backward(a.logits, a.logits, targets, N, c.vocab_size, 1.f / n_valid);
    lm_head_backward(m, a, a.dres, a.dtmp, N);  // a.dres: dL/d (current block output), flows down the stack
    if (a.timing) a.time_head += now_seconds() - th;
    // The routing losses are means over layers: each layer's gets its weight / L.
    const float dbal = c.attention.heads.beta / c.n_layers;
    const float daux = c.moe.aux_weight / c.n_layers, dzl = c.moe.z_loss_weight / c.n_layers;
    for (int l = c.n_layers - 1; l >= 0; l--)
        block_backward(op, c, m.w.layers[l], m.g.layers[l], a.layers[l], a, a.dres, a.dtmp, a.seed * 1000003ULL + l,
                       dbal, daux, dzl);
    op.embedding_backward(m.g.tok_emb, m.g.pos_emb, a.dres, tokens, a.cur_B, a.cur_T, c.d_model);
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
        if (c.attention.heads.router == HeadRouterKind::query_norm) f.routers += L * 2 * D * (H - S);  // query norms
        else if (c.attention.heads.router == HeadRouterKind::experts) f.routers += L * 2 * C * c.attention.heads.n_experts;
        else f.routers += L * 2 * C * (H - S + (S > 0 ? S + 2 : 0));
    }
    const MoeConfig& mc = c.moe;
    double Ls = 0;  // sparse layers (model.moe.dense_layers are dense)
    for (int l = 0; l < c.n_layers; l++) Ls += config_layer_sparse(c, l);
    f.ffn = (L - Ls) * 2 * C * F * (c.ffn.kind == FfnKind::swiglu ? 3 : 2);
    if (Ls > 0) {
        const double h = mc.kind == FfnRouting::mh_moe ? mc.n_heads : 1, Cs = C / h;
        const double K = mc.routing == MoeRouting::top1_capacity ? 1 : mc.top_k;
        const double Fs = mc.d_ff_shared > 0 ? mc.d_ff_shared : mc.d_ff_expert;
        // Nominal: every sub-token reaches K experts (expert choice: cf experts on average).
        const double per = mc.routing == MoeRouting::expert_choice ? mc.capacity_factor : K;
        f.routers += Ls * h * 2 * Cs * (mc.n_experts * (mc.routing == MoeRouting::noisy_topk ? 2 : 1) +
                                        (mc.shared_expert_gate ? 1 : 0));
        f.ffn += Ls * h * (per * mc.d_ff_expert + mc.n_shared_experts * Fs) * 2 * Cs * 3;
        if (mc.kind == FfnRouting::mh_moe) f.ffn += Ls * 2 * 2 * C * C;  // head and merge layers
    }
    f.lm_head = 2 * C * V;
    return f;
}

}  // namespace rl
