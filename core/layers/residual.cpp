#include "layers/residual.h"

namespace rl {

void residual_forward(float* out, const float* x, const float* fx, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = x[i] + fx[i];
}

void residual_backward(float* dx, const float* dout, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] += dout[i];
}

}  // namespace rl
