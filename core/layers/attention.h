// Causal scaled-dot-product attention with GQA, optional CoPE, sliding/adaptive windows; RoPE.
// Size key: B batch, T seq, H q-heads, G kv-heads, D head dim, P CoPE positions (npos).
// Layout: q (B*T, H*D), k and v (B*T, G*D), y (B*T, H*D); query head h reads kv head h / (H/G).
// Projections live outside (linear.h): this is the core between them.
#pragma once
#include <cmath>
#include <cstddef>
#include <vector>

namespace rl {

struct AttnDims {
    int B = 1, T = 1, H = 1, G = 1, D = 1;
    int window = 1 << 30;  // key j is visible to query i when i - window < j <= i (docs/routing-math.md §1.2)
    int npos = 0;          // CoPE positions; 0 = CoPE off
    bool cope_shared = false;  // one (P, D) table for all heads of the layer, else (H, P, D)
    float scale = 0.f;         // score scale; 0 = 1/sqrt(D) (GraniteMoe sets its attention_multiplier)
};
// The score scale of d: d.scale, or 1/sqrt(D).
inline float attn_scale(const AttnDims& d) { return d.scale > 0.f ? d.scale : 1.f / std::sqrt((float)d.D); }

// RoPE's inverse frequencies into inv_freq (D/2): inv_freq[i] = theta^(-2i/D) (transformers
// modeling_rope_utils.py _compute_default_rope_parameters).
void rope_inv_freq(float* inv_freq, int D, float theta);
// Llama 3.1+'s rescaling of n such frequencies in place (_compute_llama3_parameters): wavelength
// 2*pi/f above orig/low_freq_factor -> f/factor, below orig/high_freq_factor -> f, between a blend.
void rope_scale_llama3(float* inv_freq, int n, float factor, float low_freq_factor, float high_freq_factor,
                       int original_max_positions);

// Rotates pairs (i, i + D/2) of every head in place by angle (t + pos_offset) * inv_freq[i]
// ("rotate_half", LLaMA). x is (B*T, nh*D), inv_freq (D/2).
void rope_forward(float* x, int B, int T, int nh, int D, const float* inv_freq, int pos_offset = 0);
// The adjoint: rotates the gradient by the negative angle, in place.
void rope_backward(float* dx, int B, int T, int nh, int D, const float* inv_freq, int pos_offset = 0);

// RoPE on n rows of one head each (row stride `stride`), row r at position pos[r].
void rope_forward_rows(float* x, int n, int stride, const int* pos, int D, const float* inv_freq);

// Head h's CoPE table (P, D) inside cope_e ((H|1), P, D); null without CoPE.
const float* attention_cope_table(const float* cope_e, const AttnDims& d, int h);

// Floats of scratch attention_forward/backward need (per OpenMP thread, all threads together).
size_t attention_scratch_floats(const AttnDims& d);

// y (B*T, H*D) overwritten. Saved for backward: att (B,H,T,T) softmax probabilities (0 where
// masked) and, with CoPE, gates (B,H,T,T) = sigmoid(s/sqrt(D)) (docs/routing-math.md §1.5). entropy_mean (may be
// null) receives the mean attention-row entropy in nats, used by the adaptive window: over every
// (query, head) row, or with head_on (B*T, H) (the head gates) only over the rows of heads that
// are on for their query, which are exactly the rows the skip path computes.
void attention_forward(float* y, float* att, float* gates, float* entropy_mean, float* scratch, const float* q,
                       const float* k, const float* v, const float* cope_e, const AttnDims& d,
                       const float* head_on = nullptr);
// Accumulates dq, dk, dv (same layouts as q, k, v) and dcope_e ((H|1), P, D).
void attention_backward(float* dq, float* dk, float* dv, float* dcope_e, float* scratch, const float* dy,
                        const float* q, const float* k, const float* v, const float* att, const float* gates,
                        const float* cope_e, const AttnDims& d);

// One query row against a KV cache (decode): q_row (H*D) at position i = len-1, kc / vc (len, G*D).
// y_row (H*D). scratch: attention_decode_scratch_floats. Same math as the full forward's row;
// head_on (H) and entropy_mean as in attention_forward.
size_t attention_decode_scratch_floats(const AttnDims& d, int len);
void attention_decode_row(float* y_row, float* scratch, const float* q_row, const float* kc, const float* vc,
                          int len, const float* cope_e, const AttnDims& d, const float* head_on = nullptr,
                          float* entropy_mean = nullptr);

// Skip path (inference): attention for a subset of query rows of ONE head of ONE sequence.
// q (n,D) rows with row stride q_stride, at positions pos[0..n) (ascending); keys/values of the
// head's kv group: k, v (len, D) with row stride kv_stride; cope_e: the head's (P, D) table or null.
// y (n,D) with row stride y_stride, each row scaled by scale_out[r]. Same math as
// attention_forward's rows; nothing is computed for rows that are not given. Returns the sum of the
// rows' entropies (nats).
size_t attention_rows_scratch_floats(int n, int len, int npos);
double attention_rows(float* y, int y_stride, float* scratch, const float* q, int q_stride, const int* pos, int n,
                      const float* k, const float* v, int kv_stride, int len, const float* cope_e, int npos, int D,
                      int window, const float* scale_out);

// Skip path in training (docs/routing-math.md §3.8): attention_rows with what the backward needs
// saved. Same rows, conventions and math as attention_rows, len keys available (k, v (len, D)):
// att (n, len) receives the rows' softmax probabilities and, with CoPE, gates (n, len) the gates
// sigmoid(s/sqrt(D)) (both 0 where masked). y (n, D), row stride y_stride: the unscaled head output.
// Causal in blocks of rows, as attention_forward. scratch: attention_rows_forward_scratch_floats.
// Returns the sum of the rows' entropies (nats).
size_t attention_rows_forward_scratch_floats(int n, int len, int npos, int D);
double attention_rows_forward(float* y, int y_stride, float* att, float* gates, float* scratch, const float* q,
                              int q_stride, const int* pos, int n, const float* k, const float* v, int kv_stride,
                              int len, const float* cope_e, int npos, int D, int window);
// Backward of attention_rows_forward for the same rows: from dy (n, D) accumulates dq (n, D), dk and
// dv (len, D) of the head's kv group (row stride dkv_stride) and, with CoPE, dcope_e (npos, D). Keys
// after pos[n-1] get nothing (no given row sees them). att, gates: as saved by the forward.
// scratch: attention_rows_backward_scratch_floats(n, len, npos, D).
size_t attention_rows_backward_scratch_floats(int n, int len, int npos, int D);
void attention_rows_backward(float* dq, int dq_stride, float* dk, float* dv, int dkv_stride, float* dcope_e,
                             float* scratch, const float* dy, int dy_stride, const float* q, int q_stride,
                             const int* pos, int n, const float* k, const float* v, int kv_stride, int len,
                             const float* att, const float* gates, const float* cope_e, int npos, int D, int window);
// The adjoint of rope_forward_rows: rotates n gradient rows by their negative angles, in place.
void rope_backward_rows(float* dx, int n, int stride, const int* pos, int D, const float* inv_freq);

// Naive references of attention_rows_forward / attention_rows_backward in double precision: they
// recompute scores, gates, positions and probabilities from q, k, v, e (no saved state, no Eigen).
// Rows are contiguous (stride D); k, v (keys, D) contiguous; att (n, keys) may be null.
void attention_rows_forward_ref(float* y, float* att, const float* q, const int* pos, int n, const float* k,
                                const float* v, const float* cope_e, int npos, int D, int window);
void attention_rows_backward_ref(float* dq, float* dk, float* dv, float* dcope_e, const float* dy, const float* q,
                                 const int* pos, int n, const float* k, const float* v, const float* cope_e, int npos,
                                 int D, int window);

// Naive reference of attention_forward in double precision (no Eigen, no scratch).
void attention_forward_ref(float* y, float* att, const float* q, const float* k, const float* v,
                           const float* cope_e, const AttnDims& d);

}  // namespace rl
