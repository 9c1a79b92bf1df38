#include "layers/ffn.h"

#include <algorithm>
#include <cstring>

#include "layers/linear.h"
#include "tensor/gemm_bf16.h"
#include "tensor/eigen.h"
#include "util/threads.h"

#include <cmath>
#include <cstddef>

namespace rl {

// Elementwise in blocks of 4096: Eigen's vectorised exp, blocks over the threads for large n.
constexpr int k_block = 4096;

void swiglu_forward(float* h, const float* gate, const float* up, int n) {
    const int nb = (n + k_block - 1) / k_block;
    parallel_for(nb, nb >= 8, [&](int b) {
        const int i0 = b * k_block, len = std::min(k_block, n - i0);
        Eigen::Map<const Eigen::ArrayXf> g(gate + i0, len), u(up + i0, len);
        Eigen::Map<Eigen::ArrayXf>(h + i0, len) = g / (1.f + (-g).exp()) * u;
    });
}

// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)
void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int n) {
    const int nb = (n + k_block - 1) / k_block;
    parallel_for(nb, nb >= 8, [&](int b) {
        const int i0 = b * k_block, len = std::min(k_block, n - i0);
        Eigen::Map<const Eigen::ArrayXf> g(gate + i0, len), u(up + i0, len), d(dh + i0, len);  // d may be dgate
        float sbuf[k_block];  // on the stack: no allocation in a step
        Eigen::Map<Eigen::ArrayXf> s(sbuf, len);
        s = 1.f / (1.f + (-g).exp());
        Eigen::Map<Eigen::ArrayXf>(dup + i0, len) = d * g * s;                         // before dgate may overwrite d
        Eigen::Map<Eigen::ArrayXf>(dgate + i0, len) = d * u * s * (1.f + g * (1.f - s));
    });
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

namespace {

// out (n,O) = inp (n,I) . W^T with W float32 (w) or, when w is null, BF16 bits (h).
void weight_forward(float* out, const float* inp, const float* w, Bf16Weight h, int n, int I, int O) {
    if (w) linear_forward(out, inp, w, nullptr, n, I, O);
    else gemm_bf16w(n, O, I, inp, I, h, out, O);
}

}  // namespace

void swiglu_ffn_forward(float* y, float* fa, float* fb, float* fh, const float* x, const SwigluWeights& w, int n,
                        int C, int F) {
    weight_forward(fa, x, w.w_gate, w.bf16_gate, n, C, F);
    weight_forward(fb, x, w.w_up, w.bf16_up, n, C, F);
    swiglu_forward(fh, fa, fb, n * F);
    weight_forward(y, fh, w.w_down, w.bf16_down, n, F, C);
}

void swiglu_ffn_backward(float* dx, const SwigluWeights& g, float* dfb, float* dfh, const float* dy,
                         const float* x, const float* fa, const float* fb, const float* fh, const SwigluWeights& w,
                         int n, int C, int F) {
    std::memset(dfh, 0, sizeof(float) * n * F);
    linear_backward_any(dfh, g.w_down, nullptr, dy, fh, w.w_down, w.bf16_down, n, F, C);
    float* dfa = dfh;  // d gate overwrites d hidden in place
    swiglu_backward(dfa, dfb, dfh, fa, fb, n * F);
    linear_backward_any(dx, g.w_gate, nullptr, dfa, x, w.w_gate, w.bf16_gate, n, C, F);
    linear_backward_any(dx, g.w_up, nullptr, dfb, x, w.w_up, w.bf16_up, n, C, F);
}

}  // namespace rl
