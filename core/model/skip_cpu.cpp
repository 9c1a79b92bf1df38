// The CPU versions of the model's fused ops (backend/ops.h): which kv groups an active head reads,
// and MoH's skip path, forward and backward, as per-(sequence, head) loops over only the (token, head)
// pairs whose gate is non-zero (docs/routing-math.md §3.8). model.cpp calls them through the op
// table, as it calls every layer; a GPU would run each as one kernel sequence.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "backend/ops.h"
#include "model/model.h"
#include "util/threads.h"

namespace rl {

namespace {
int cope_npos(const ModelConfig& c) { return c.attention.positional == PosKind::cope ? c.attention.cope_npos : 0; }
}  // namespace

// The CPU's kv_groups_needed (backend/ops.h).
int kv_groups_needed(const ModelConfig& c, const LayerActs& L, int N, std::vector<char>& need) {
    const int H = c.n_heads, G = c.n_kv_heads;
    std::fill(need.begin(), need.end(), 0);
    for (int t = 0; t < N; t++)
        for (int h = 0; h < H; h++)
            if (L.head_gates[(size_t)t * H + h] != 0.f) need[h / (H / G)] = 1;
    return (int)std::count(need.begin(), need.end(), 1);
}

namespace {

// ---- the skip path: only the (token, head) pairs whose gate is non-zero (docs/routing-math.md §3.8) ----

// One thread's block of Activations::skip_scratch (model_skip_scratch_floats), for T rows of one
// (sequence, head) at a time; the dW blocks hold this thread's share of a backward's weight gradients.
struct SkipWork {
    float* xa;     // (T,C) gathered input rows
    float* proj;   // (T,C) W_O slice output; backward: gathered output-gradient rows
    float* dxa;    // (T,C) gradient of the gathered input rows
    float* qh;     // (T,D) decode: the rows' queries
    float* yh;     // (T,D) the rows' head outputs
    float* dyh;    // (T,D) their gradient
    float* dqh;    // (T,D) their queries' gradient
    float* gsel;   // (T) decode: the rows' gates
    float* rows;   // attention_rows / attention_rows_forward / attention_rows_backward scratch for T rows
    float* dwq;    // (H*D, C) the sequence's dW_q (backward only: a block of Activations::skip_seq_grads)
    float* dwo;    // (C, H*D) its dW_O (use_wo)
    float* dcope;  // ((H|1), P, D) its dE (CoPE)
};

}  // namespace

size_t model_skip_grad_floats(const ModelConfig& c) {
    const size_t HD = (size_t)c.n_heads * c.head_dim, P = cope_npos(c);
    return HD * c.d_model * (c.attention.use_wo ? 2 : 1) + (c.attention.cope_shared ? 1 : c.n_heads) * P * c.head_dim;
}

namespace {

// The attention-rows scratch of T rows: attention_rows, or attention_rows_forward's z, or the backward's.
size_t skip_rows_floats(const ModelConfig& c, int T) {
    const int P = cope_npos(c);
    return std::max({attention_rows_scratch_floats(T, T, P), attention_rows_backward_scratch_floats(T, T, P, c.head_dim),
                     attention_rows_forward_scratch_floats(T, T, P, c.head_dim)});
}

SkipWork skip_work(const ModelConfig& c, float* base, int T) {
    const size_t C = c.d_model, D = c.head_dim;
    SkipWork w;
    w.xa = base;
    w.proj = w.xa + T * C;
    w.dxa = w.proj + T * C;
    w.qh = w.dxa + T * C;
    w.yh = w.qh + T * D;
    w.dyh = w.yh + T * D;
    w.dqh = w.dyh + T * D;
    w.gsel = w.dqh + T * D;
    w.rows = w.gsel + T;
    w.dwq = w.dwo = w.dcope = nullptr;  // the backward points them at its sequence's block (attn_skip_backward)
    return w;
}

SkipWork thread_skip_work(const ModelConfig& c, const Activations& s, int thread, int T) {
    return skip_work(c, s.skip_scratch + model_skip_scratch_floats(c, s.T) * thread, T);
}

// dst (cols, rows) = src^T for a row-major (rows, cols) src.
void transpose(float* dst, const float* src, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) dst[(size_t)k * rows + r] = src[(size_t)r * cols + k];
}

// Rows pos[0..n) of the (T, width) block src, contiguous in dst; src itself when all T rows are asked.
const float* gather_rows(float* dst, const float* src, const int* pos, int n, int T, int width) {
    if (n == T) return src;
    for (int r = 0; r < n; r++) std::memcpy(dst + (size_t)r * width, src + (size_t)pos[r] * width, sizeof(float) * width);
    return dst;
}

// Decode with the cache, sequence b (B = T = 1 in practice): per head with a non-zero gate, its
// query row, score and softmax row against the cache, A.V row (scaled by the gate) and W_O slice,
// added into out. Returns the rows' entropy sum and counts them in *rows_on.
double attn_sequence_skip_cached(const ModelConfig& c, const LayerWeights& w, const LayerActs& L, const float* in,
                                 int b, int T, int window, const KvSource& kv, float* out, const SkipWork& sw,
                                 long* rows_on) {
    const int C = c.d_model, H = c.n_heads, D = c.head_dim, HD = H * D, GD = c.n_kv_heads * D, group = H / c.n_kv_heads;
    int pos[1], idx[1];
    const float* kb = kv.k + (size_t)b * kv.stride * GD;  // (len, G*D) this sequence's keys
    const float* vb = kv.v + (size_t)b * kv.stride * GD;
    const AttnDims ad = model_attn_dims(c, 1, T, window);
    const RopeFreqs inv_freq = model_rope_inv_freq(c);
    double ent = 0.0;
    for (int i = 0; i < T; i++) {
        const int t = b * T + i;
        for (int h = 0; h < H; h++) {
            const float gt = L.head_gates[(size_t)t * H + h];
            if (gt == 0.f) continue;
            idx[0] = t, pos[0] = kv.pos0 + i, sw.gsel[0] = gt;
            gemm(false, true, 1, D, C, 1.f, in + (size_t)t * C, C, w.wq + (size_t)h * D * C, C, 0.f, sw.qh, D);
            if (c.attention.positional == PosKind::rope) rope_forward_rows(sw.qh, 1, D, pos, D, inv_freq.data());
            const int g = h / group;
            ent += attention_rows(sw.yh, D, kv.rows_scratch, sw.qh, D, pos, 1, kb + g * D, vb + g * D, GD, kv.pos0 + T,
                                  attention_cope_table(w.cope_pos, ad, h), ad.npos, D, window, sw.gsel);
            *rows_on += 1;
            if (w.wo) {
                // (1,D) x W_O[:, hD:(h+1)D]^T -> (1,C), added to the row
                gemm(false, true, 1, C, D, 1.f, sw.yh, D, w.wo + h * D, HD, 1.f, out + (size_t)idx[0] * C, C);
            } else {
                std::memcpy(out + (size_t)idx[0] * HD + h * D, sw.yh, sizeof(float) * D);
            }
        }
    }
    return ent;
}

// A full forward's skip path, sequence b, everything its backward needs saved. Per head, the rows
// whose gate is non-zero are listed (L.skip_rows), their input rows gathered (not when all T are
// active: the shared heads), their queries projected and rotated into L.skip_q, their attention rows
// computed with the probabilities and CoPE gates kept (L.skip_att, L.skip_gates) and their outputs
// (L.skip_y: the gate's backward reads them); each output row goes gated into atty (no W_O) or through
// the head's slice of W_O into attn_out. Inactive pairs stay 0. Returns the rows' entropy sum, counts them.
// wt: W_q^T (C, H*D), then with W_O W_O^T (H*D, C) (Activations::skip_wt, made once per call of attn_skip_forward).
double attn_sequence_skip_full(const ModelConfig& c, const LayerWeights& w, LayerActs& L, const float* in, int b,
                               int T, int window, const float* wt, const SkipWork& sw, long* rows_on) {
    const int C = c.d_model, H = c.n_heads, D = c.head_dim, HD = H * D, GD = c.n_kv_heads * D, group = H / c.n_kv_heads;
    const AttnDims ad = model_attn_dims(c, 1, T, window);
    const RopeFreqs inv_freq = model_rope_inv_freq(c);
    const float* xb = in + (size_t)b * T * C;          // (T,C) this sequence's rows
    const float* kb = L.k + (size_t)b * T * GD;        // (T,G*D)
    const float* vb = L.v + (size_t)b * T * GD;
    const float* gb = L.head_gates + (size_t)b * T * H;  // (T,H)
    float* out = w.wo ? L.attn_out + (size_t)b * T * C : L.atty + (size_t)b * T * HD;
    tensor_zero(out, (size_t)T * (w.wo ? C : HD));
    double ent = 0.0;
    for (int h = 0; h < H; h++) {
        int* rows = L.skip_rows.data() + ((size_t)b * H + h) * (T + 1);
        int* pos = rows + 1;
        int n = 0;
        for (int i = 0; i < T; i++)
            if (gb[(size_t)i * H + h] != 0.f) pos[n++] = i;
        rows[0] = n;
        if (n == 0) continue;
        const float* xa = gather_rows(sw.xa, xb, pos, n, T, C);
        float* qh = L.skip_q + ((size_t)b * H + h) * T * D;  // (n,D)
        gemm(false, false, n, D, C, 1.f, xa, C, wt + h * D, HD, 0.f, qh, D);  // x W_q[h]^T
        if (c.attention.positional == PosKind::rope) rope_forward_rows(qh, n, D, pos, D, inv_freq.data());
        const size_t blk = ((size_t)b * H + h) * T * T;
        const int g = h / group;
        float* yb = L.skip_y + ((size_t)b * H + h) * T * D;  // (n,D)
        ent += attention_rows_forward(yb, D, L.skip_att + blk, L.skip_gates ? L.skip_gates + blk : nullptr, sw.rows,
                                      qh, D, pos, n, kb + g * D, vb + g * D, GD, T,
                                      attention_cope_table(w.cope_pos, ad, h), ad.npos, D, window);
        *rows_on += n;
        for (int r = 0; r < n; r++) {
            const float gt = gb[(size_t)pos[r] * H + h];
            const float* y = yb + (size_t)r * D;
            float* o = w.wo ? sw.yh + (size_t)r * D : out + (size_t)pos[r] * HD + h * D;
            for (int d = 0; d < D; d++) o[d] = gt * y[d];
        }
        if (!w.wo) continue;
        // (n,D) x W_O[:, hD:(h+1)D]^T -> (n,C), added to the rows
        const float* wot = wt + (size_t)C * HD + (size_t)h * D * C;  // W_O[:, hD:(h+1)D]^T (D,C)
        if (n == T) {
            gemm(false, false, T, C, D, 1.f, sw.yh, D, wot, C, 1.f, out, C);
            continue;
        }
        gemm(false, false, n, C, D, 1.f, sw.yh, D, wot, C, 0.f, sw.proj, C);
        for (int r = 0; r < n; r++) {
            float* o = out + (size_t)pos[r] * C;
            const float* pr = sw.proj + (size_t)r * C;
            for (int k = 0; k < C; k++) o[k] += pr[k];
        }
    }
    return ent;
}

}  // namespace

// The CPU's attn_skip_forward (backend/ops.h) over B sequences: one sequence per OpenMP iteration
// (rows of different sequences never share an output row; each thread has its scratch), no parallel
// region for one sequence.
void attn_skip_forward(const ModelConfig& c, const LayerWeights& w, LayerActs& L, Activations& s, const float* in,
                       int B, int T, int window, const KvSource& kv, float* entropy) {
    double ent = 0.0;
    long rows_on = 0;
    if (kv.cached) {
        float* out = w.wo ? L.attn_out : L.atty;
        tensor_zero(out, (size_t)B * T * (w.wo ? c.d_model : c.n_heads * c.head_dim));
        for (int b = 0; b < B; b++)
            ent += attn_sequence_skip_cached(c, w, L, in, b, T, window, kv, out, thread_skip_work(c, s, 0, T), &rows_on);
    } else {
        // The weights transposed once, so every sequence's and head's x W^T is a plain product.
        const int C = c.d_model, HD = c.n_heads * c.head_dim;
        transpose(s.skip_wt, w.wq, HD, C);
        if (w.wo) transpose(s.skip_wt + (size_t)C * HD, w.wo, C, HD);
        double ent_part[k_max_threads] = {};  // per-thread sums, added in thread order
        long rows_part[k_max_threads] = {};
        parallel_for(B, true, [&](int b) {
            const int tid = thread_index();
            ent_part[tid] += attn_sequence_skip_full(c, w, L, in, b, T, window, s.skip_wt,
                                                     thread_skip_work(c, s, tid, T), &rows_part[tid]);
        });
        for (int t = 0; t < k_max_threads; t++) ent += ent_part[t], rows_on += rows_part[t];
    }
    if (entropy) *entropy = rows_on ? (float)(ent / rows_on) : 0.f;
}

namespace {

// Backward of attn_sequence_skip_full for sequence b, over the same rows: dout (the block output's
// gradient) -> the gates' gradient (s.dgates, pairs that are on), the rows' attention backward into
// s.dk, s.dv (this sequence's rows) and the thread's dE, the queries' backward into the thread's dW_q
// and din (this sequence's rows), W_O's into the thread's dW_O.
void attn_sequence_skip_backward(const ModelConfig& c, const LayerWeights& w, const LayerActs& L, Activations& s,
                                 float* din, const float* dout, const float* in, int b, int T, int window,
                                 const SkipWork& sw) {
    const int C = c.d_model, H = c.n_heads, D = c.head_dim, HD = H * D, GD = c.n_kv_heads * D, group = H / c.n_kv_heads;
    const AttnDims ad = model_attn_dims(c, 1, T, window);
    const RopeFreqs inv_freq = model_rope_inv_freq(c);
    const float* xb = in + (size_t)b * T * C;
    float* dxb = din + (size_t)b * T * C;
    const float* kb = L.k + (size_t)b * T * GD;
    const float* vb = L.v + (size_t)b * T * GD;
    float* dkb = s.dk + (size_t)b * T * GD;
    float* dvb = s.dv + (size_t)b * T * GD;
    const float* gb = L.head_gates + (size_t)b * T * H;
    const float* dob = dout + (size_t)b * T * (w.wo ? C : HD);
    float* dgb = s.dgates + (size_t)b * T * H;
    for (int h = 0; h < H; h++) {
        const int* rows = L.skip_rows.data() + ((size_t)b * H + h) * (T + 1);
        const int n = rows[0];
        const int* pos = rows + 1;
        if (n == 0) continue;
        const float* yb = L.skip_y + ((size_t)b * H + h) * T * D;  // (n,D) the rows' outputs before the gate
        // dY of the gated rows (n,D)
        if (w.wo) {
            const float* dor = gather_rows(sw.proj, dob, pos, n, T, C);  // (n,C)
            for (int r = 0; r < n; r++) {
                const float gt = gb[(size_t)pos[r] * H + h];
                const float* y = yb + (size_t)r * D;
                for (int d = 0; d < D; d++) sw.yh[(size_t)r * D + d] = gt * y[d];
            }
            gemm(false, false, n, D, C, 1.f, dor, C, w.wo + h * D, HD, 0.f, sw.dyh, D);      // dY = dO W_O[h]
            gemm(true, false, C, D, n, 1.f, dor, C, sw.yh, D, 1.f, sw.dwo + h * D, HD);      // dW_O[h] += dO^T (g y)
        } else {
            for (int r = 0; r < n; r++)
                std::memcpy(sw.dyh + (size_t)r * D, dob + (size_t)pos[r] * HD + h * D, sizeof(float) * D);
        }
        // The gate: dg = dY . y_raw, dy_raw = g dY.
        for (int r = 0; r < n; r++) {
            const float gt = gb[(size_t)pos[r] * H + h];
            const float* y = yb + (size_t)r * D;
            float* dy = sw.dyh + (size_t)r * D;
            float acc = 0.f;
            for (int d = 0; d < D; d++) acc += dy[d] * y[d], dy[d] *= gt;
            dgb[(size_t)pos[r] * H + h] = acc;
        }
        const int g = h / group;
        const size_t blk = ((size_t)b * H + h) * T * T;
        float* dcope = ad.npos ? sw.dcope + (c.attention.cope_shared ? 0 : (size_t)h * ad.npos * D) : nullptr;
        tensor_zero(sw.dqh, (size_t)n * D);
        attention_rows_backward(sw.dqh, D, dkb + g * D, dvb + g * D, GD, dcope, sw.rows, sw.dyh, D,
                                L.skip_q + ((size_t)b * H + h) * T * D, D, pos, n, kb + g * D, vb + g * D, GD, T,
                                L.skip_att + blk, L.skip_gates ? L.skip_gates + blk : nullptr,
                                attention_cope_table(w.cope_pos, ad, h), ad.npos, D, window);
        if (c.attention.positional == PosKind::rope) rope_backward_rows(sw.dqh, n, D, pos, D, inv_freq.data());
        // q = x W_q[h]^T: dW_q[h] += dq^T x, dx += dq W_q[h]
        const float* xa = gather_rows(sw.xa, xb, pos, n, T, C);
        const float* Wq = w.wq + (size_t)h * D * C;  // (D,C)
        gemm(true, false, D, C, n, 1.f, sw.dqh, D, xa, C, 1.f, sw.dwq + (size_t)h * D * C, C);
        if (n == T) {
            gemm(false, false, T, C, D, 1.f, sw.dqh, D, Wq, C, 1.f, dxb, C);
            continue;
        }
        gemm(false, false, n, C, D, 1.f, sw.dqh, D, Wq, C, 0.f, sw.dxa, C);
        for (int r = 0; r < n; r++) {
            float* o = dxb + (size_t)pos[r] * C;
            const float* dr = sw.dxa + (size_t)r * C;
            for (int k = 0; k < C; k++) o[k] += dr[k];
        }
    }
}

}  // namespace

// The CPU's attn_skip_backward (backend/ops.h), over the B sequences attn_skip_forward ran on: the
// rows' gradients per sequence in parallel, each sequence's share of dW_q, dW_O and dE in a block of
// its own, summed in sequence order (the same for any thread count), then the router and the K/V
// projections of the groups the forward computed.
void attn_skip_backward(const ModelConfig& c, const LayerWeights& w, LayerWeights& g, const LayerActs& a,
                        Activations& s, float* din, const float* dout, const float* in, int B, int T, int window,
                        float dbalance) {
    const int N = B * T, C = c.d_model, H = c.n_heads, D = c.head_dim, G = c.n_kv_heads, GD = G * D;
    const bool moh = c.attention.heads.kind == HeadSelection::moh;
    const size_t grads = model_skip_grad_floats(c);
    tensor_zero(s.skip_seq_grads, (size_t)B * grads);
    tensor_zero(s.dgates, (size_t)N * H);  // pairs that are off keep 0
    tensor_zero(s.dk, (size_t)N * GD);
    tensor_zero(s.dv, (size_t)N * GD);
    const size_t HDC = (size_t)H * D * C;
    auto seq_grads = [&](SkipWork sw, int b) {  // sequence b's block: dW_q, dW_O, dE as in skip_work
        sw.dwq = s.skip_seq_grads + (size_t)b * grads;
        sw.dwo = sw.dwq + HDC;
        sw.dcope = sw.dwo + (c.attention.use_wo ? HDC : 0);
        return sw;
    };
    parallel_for(B, true, [&](int b) {
        attn_sequence_skip_backward(c, w, a, s, din, dout, in, b, T, window,
                                    seq_grads(thread_skip_work(c, s, thread_index(), T), b));
    });
    const size_t ne = c.attention.positional == PosKind::cope
                          ? (size_t)(c.attention.cope_shared ? 1 : H) * c.attention.cope_npos * D : 0;
    for (int b = 0; b < B; b++) {  // sequence order: the same sums for any thread count
        const SkipWork sw = seq_grads(SkipWork{}, b);
        for (size_t i = 0; i < HDC; i++) g.wq[i] += sw.dwq[i];
        if (w.wo)
            for (size_t i = 0; i < HDC; i++) g.wo[i] += sw.dwo[i];
        for (size_t i = 0; i < ne; i++) g.cope_pos[i] += sw.dcope[i];
    }
    const HeadsConfig& hc = c.attention.heads;  // the rule of MoH-LLaMA3 (query_norm) has no weights to move
    if (moh && hc.router == HeadRouterKind::learned)
        head_router_backward(din, g.router_shared, g.router_routed, g.router_type, s.router_scratch, s.dgates, dbalance,
                             a.head_f.data(), a.hr, in, w.router_shared, w.router_routed, w.router_type,
                             model_router_dims(c, N));
    if (moh && hc.router == HeadRouterKind::experts)
        head_gates_experts_backward(din, g.router_routed, s.router_scratch, s.dgates, dbalance, a.head_f.data(), a.hr,
                                    a.head_gates, in, w.router_routed, model_router_dims(c, N), hc.n_experts);
    if (c.attention.positional == PosKind::rope) rope_backward(s.dk, B, T, G, D, model_rope_inv_freq(c).data());
    if (kv_groups_needed(c, a, N, s.kv_need) == G) {
        linear_backward(din, g.wk, nullptr, s.dk, in, w.wk, N, C, GD);
        linear_backward(din, g.wv, nullptr, s.dv, in, w.wv, N, C, GD);
        return;
    }
    for (int k = 0; k < G; k++) {
        if (!s.kv_need[k]) continue;
        for (auto [dkv, wkv, gkv] : {std::tuple{s.dk, w.wk, g.wk}, {s.dv, w.wv, g.wv}}) {
            gemm(false, false, N, C, D, 1.f, dkv + k * D, GD, wkv + (size_t)k * D * C, C, 1.f, din, C);  // dX += dY W
            gemm(true, false, D, C, N, 1.f, dkv + k * D, GD, in, C, 1.f, gkv + (size_t)k * D * C, C);    // dW += dY^T X
        }
    }
}

size_t model_skip_scratch_floats(const ModelConfig& c, int T) {
    return (size_t)T * c.d_model * 3 + (size_t)T * c.head_dim * 4 + T + skip_rows_floats(c, T);
}

}  // namespace rl
