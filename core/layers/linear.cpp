#include "layers/linear.h"

#include <cassert>

#include "tensor/eigen.h"
#include "tensor/gemm.h"

namespace rl {

void linear_forward(float* out, const float* inp, const float* w, const float* bias, int N, int I, int O) {
    gemm(false, true, N, O, I, 1.f, inp, I, w, I, 0.f, out, O);  // (N,O) = (N,I) (O,I)^T
    if (bias) linear_add_bias(out, bias, N, O);
}

void linear_add_bias(float* out, const float* bias, int N, int O) {
    MapR(out, N, O).rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, O);
}

void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int N, int I, int O) {
    if (dinp) gemm(false, false, N, I, O, 1.f, dout, O, w, I, 1.f, dinp, I);  // (N,I) += (N,O) (O,I)
    if (dw) gemm(true, false, O, I, N, 1.f, dout, O, inp, I, 1.f, dw, I);      // (O,I) += (N,O)^T (N,I)
    if (dbias) Eigen::Map<Eigen::RowVectorXf>(dbias, O) += CMapR(dout, N, O).colwise().sum();
}

void linear_backward_any(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                         Bf16Weight h, int N, int I, int O) {
    if (w || !h) return linear_backward(dinp, dw, dbias, dout, inp, w, N, I, O);
    assert(!dw && !dbias && !h.packed);  // a BF16 weight is frozen; packed panels are for the forward only
    if (dinp) gemm_bf16w_acc_nn(N, O, I, dout, O, h.bits, dinp, I);  // (N,I) += (N,O) (O,I)
}

void linear_forward_ref(float* out, const float* inp, const float* w, const float* bias, int N, int I, int O) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int i = 0; i < I; i++) acc += (double)inp[n * I + i] * w[o * I + i];
            out[n * O + o] = (float)acc;
        }
}

void linear_backward_ref(float* dinp, float* dw, float* dbias, const float* dout, const float* inp,
                         const float* w, int N, int I, int O) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < O; o++) {
            float d = dout[n * O + o];
            if (dbias) dbias[o] += d;
            for (int i = 0; i < I; i++) {
                if (dinp) dinp[n * I + i] += d * w[o * I + i];
                if (dw) dw[o * I + i] += d * inp[n * I + i];
            }
        }
}

}  // namespace rl
