// Residual connection out = x + f(x). Size key: n floats (N*C).
#pragma once
#include <cstddef>

namespace rl {

// out (n) = x + fx. Overwrites out (which may alias neither input).
void residual_forward(float* out, const float* x, const float* fx, size_t n);
// The identity branch of the backward: dx (n) += dout. The f branch receives dout as it is.
void residual_backward(float* dx, const float* dout, size_t n);

}  // namespace rl
