#include "layers/linear.h"

#include "tensor/eigen.h"

namespace rl {

void linear_forward(float* out, const float* inp, const float* w, const float* bias, int N, int I, int O) {
    MapR y(out, N, O);                 // (N,O)
    CMapR x(inp, N, I);                // (N,I)
    CMapR W(w, O, I);                  // (O,I)
    y.noalias() = x * W.transpose();
    if (bias) y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias, O);
}

void linear_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                     int N, int I, int O) {
    CMapR dy(dout, N, O);              // (N,O)
    CMapR x(inp, N, I);                // (N,I)
    CMapR W(w, O, I);                  // (O,I)
    if (dinp) MapR(dinp, N, I).noalias() += dy * W;
    MapR(dw, O, I).noalias() += dy.transpose() * x;
    if (dbias) Eigen::Map<Eigen::RowVectorXf>(dbias, O) += dy.colwise().sum();
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
                dw[o * I + i] += d * inp[n * I + i];
            }
        }
}

}  // namespace rl
