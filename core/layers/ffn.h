// FFN nonlinearities, elementwise over n values. The FFN block itself (linear -> act -> linear)
// is composed in model.cpp. Elementwise ops have no separate *_ref: the op is already the naive
// loop, and the finite-difference tests check it directly.
#pragma once

namespace rl {

// SwiGLU (Shazeer 2020): h = silu(gate) * up
void swiglu_forward(float* h, const float* gate, const float* up, int n);
// Accumulates dgate, dup.
void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int n);
// GELU, tanh approximation (GPT-2, llm.c)
void gelu_forward(float* out, const float* x, int n);
void gelu_backward(float* dx, const float* dout, const float* x, int n);
void relu_forward(float* out, const float* x, int n);
void relu_backward(float* dx, const float* dout, const float* x, int n);

}  // namespace rl
