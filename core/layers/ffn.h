// FFN nonlinearities, elementwise over n values, and the SwiGLU FFN (dense FFN and every MoE
// expert). Elementwise ops have no separate *_ref: the op is already the naive loop, and the
// finite-difference tests check it directly; the SwiGLU FFN is checked through moe_forward_ref and
// the model's gradient checks. Size key: n rows, C width, F hidden width.
#pragma once
#include <cstdint>

#include "tensor/gemm_bf16.h"

namespace rl {

// SwiGLU (Shazeer 2020): h = silu(gate) * up
void swiglu_forward(float* h, const float* gate, const float* up, int n);
// Overwrites dgate, dup; dgate may be dh itself (each element reads dh before writing dgate).
void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int n);
// GELU, tanh approximation (GPT-2, llm.c)
void gelu_forward(float* out, const float* x, int n);
void gelu_backward(float* dx, const float* dout, const float* x, int n);
void relu_forward(float* out, const float* x, int n);
void relu_backward(float* dx, const float* dout, const float* x, int n);

struct SwigluWeights {
    float* w_gate = nullptr;  // (F, C)
    float* w_up = nullptr;    // (F, C)
    float* w_down = nullptr;  // (C, F)
    // A frozen model's expert may keep a BF16 checkpoint's matrices where the file has them (the raw
    // bits, same shapes) in place of a float view, which is then null; forward only (tensor/gemm_bf16.h).
    Bf16Weight bf16_gate;  // (F, C)
    Bf16Weight bf16_up;    // (F, C)
    Bf16Weight bf16_down;  // (C, F)
};
// y (n,C) = W_down (silu(W_gate x) * W_up x), each W float32 or BF16 (forward only); saves fa, fb (n,F) pre-activations and fh (n,F) hidden.
void swiglu_ffn_forward(float* y, float* fa, float* fb, float* fh, const float* x, const SwigluWeights& w, int n,
                        int C, int F);
// Accumulates dx (n,C) and the weight gradients in g. dfb, dfh (n,F) are scratch (dfh holds d hidden,
// then d gate in place: one (n,F) buffer fewer than three).
void swiglu_ffn_backward(float* dx, const SwigluWeights& g, float* dfb, float* dfh, const float* dy,
                         const float* x, const float* fa, const float* fb, const float* fh, const SwigluWeights& w,
                         int n, int C, int F);

}  // namespace rl
