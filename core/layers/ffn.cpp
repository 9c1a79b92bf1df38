#include "layers/ffn.h"

#include <cmath>
#include <cstddef>

namespace rl {

void swiglu_forward(float* h, const float* gate, const float* up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        h[i] = g / (1.f + std::exp(-g)) * up[i];
    }
}

// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)
void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int n) {
    for (int i = 0; i < n; i++) {
        float g = gate[i];
        float s = 1.f / (1.f + std::exp(-g));
        dgate[i] += dh[i] * up[i] * s * (1.f + g * (1.f - s));
        dup[i] += dh[i] * g * s;
    }
}

static constexpr float k_gelu_scale = 0.7978845608028654f;  // sqrt(2/pi)

void gelu_forward(float* out, const float* x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        out[i] = 0.5f * v * (1.f + std::tanh(k_gelu_scale * (v + 0.044715f * v * v * v)));
    }
}

void gelu_backward(float* dx, const float* dout, const float* x, int n) {
    for (int i = 0; i < n; i++) {
        float v = x[i];
        float u = k_gelu_scale * (v + 0.044715f * v * v * v);
        float t = std::tanh(u);
        float sech2 = 1.f - t * t;
        float grad = 0.5f * (1.f + t) + 0.5f * v * sech2 * k_gelu_scale * (1.f + 3.f * 0.044715f * v * v);
        dx[i] += grad * dout[i];
    }
}

void relu_forward(float* out, const float* x, int n) {
    for (int i = 0; i < n; i++) out[i] = x[i] > 0.f ? x[i] : 0.f;
}

void relu_backward(float* dx, const float* dout, const float* x, int n) {
    for (int i = 0; i < n; i++) dx[i] += x[i] > 0.f ? dout[i] : 0.f;
}

}  // namespace rl
