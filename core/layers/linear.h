// Linear layer y = x W^T + b with W stored (out, in) as PyTorch does.
// Size key: N rows (B*T), I in features, O out features.
#pragma once
#include "tensor/gemm_bf16.h"

namespace rl {

// out (N,O) = inp (N,I) . w(O,I)^T + bias(O); bias may be null. Overwrites out.
void linear_forward(float* out, const float* inp, const float* w, const float* bias, int N, int I, int O);
// out (N,O) += bias (O) on every row: linear_forward's bias, for a product made elsewhere (BF16 weights).
void linear_add_bias(float* out, const float* bias, int N, int O);
// Accumulates: dinp (N,I) += dout . w; dw (O,I) += dout^T . inp; dbias (O) += colsum(dout).
// dinp, dw and dbias may each be null when not needed (dw: a frozen weight, router-only tuning).
void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int N, int I, int O);

// linear_backward where W is float32 (w) or, when w is null, a frozen model's BF16 matrix (h, unpacked):
// then only dinp is taken (dw and dbias must be null: router-only tuning through a mapped checkpoint).
void linear_backward_any(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                         Bf16Weight h, int N, int I, int O);

void linear_forward_ref(float* out, const float* inp, const float* w, const float* bias, int N, int I, int O);
void linear_backward_ref(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                         const float* w, int N, int I, int O);

}  // namespace rl
