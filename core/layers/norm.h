// RMSNorm (Zhang & Sennrich 2019) and LayerNorm, forward/backward over rows.
// Size key: N rows (B*T), C width. Saved for backward: rstd (N) and, for LayerNorm, mean (N).
#pragma once

namespace rl {

// out (N,C) = x * rstd * w;  rstd (N) = 1/sqrt(mean(x^2) + eps)
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps);
// Accumulates dx (N,C) and dw (C).
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int N, int C);
// out (N,C) = (x - mean) * rstd * w + b
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N,
                       int C, float eps);
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int C);

// Naive references in double precision, same contracts.
void rmsnorm_forward_ref(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps);
void rmsnorm_backward_ref(float* dx, float* dw, const float* dout, const float* x, const float* w,
                          const float* rstd, int N, int C);
void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                           int N, int C, float eps);
void layernorm_backward_ref(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int C);

}  // namespace rl
