#include "layers/norm.h"

#include <cmath>
#include <cstddef>

namespace rl {

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float* xr = x + (size_t)n * C;
        float* yr = out + (size_t)n * C;
        float ss = 0.f;
        for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
        float r = 1.f / std::sqrt(ss / C + eps);
        rstd[n] = r;
        for (int c = 0; c < C; c++) yr[c] = xr[c] * r * w[c];
    }
}

// y_c = x_c r w_c, r = (mean(x^2)+eps)^-1/2  =>  dx_c = r w_c dy_c - x_c r^3/C * sum_j x_j w_j dy_j
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int N, int C) {
    for (int n = 0; n < N; n++) {
        const float* xr = x + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float* dxr = dx + (size_t)n * C;
        const float r = rstd[n];
        float dot = 0.f;
        for (int c = 0; c < C; c++) dot += xr[c] * w[c] * dy[c];
        const float k = r * r * r * dot / C;
        for (int c = 0; c < C; c++) dxr[c] += r * w[c] * dy[c] - xr[c] * k;
        if (dw)  // null for a frozen weight
            for (int c = 0; c < C; c++) dw[c] += dy[c] * xr[c] * r;
    }
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int N,
                       int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float* xr = x + (size_t)n * C;
        float* yr = out + (size_t)n * C;
        float m = 0.f;
        for (int c = 0; c < C; c++) m += xr[c];
        m /= C;
        float v = 0.f;
        for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
        float r = 1.f / std::sqrt(v / C + eps);
        mean[n] = m;
        rstd[n] = r;
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * r * w[c] + b[c];
    }
}

// llm.c layernorm_backward: dx = r (g - mean(g) - xhat mean(g xhat)), g = w dy
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                        const float* mean, const float* rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float* xr = x + (size_t)n * C;
        const float* dy = dout + (size_t)n * C;
        float* dxr = dx + (size_t)n * C;
        const float m = mean[n], r = rstd[n];
        float gmean = 0.f, gxmean = 0.f;
        for (int c = 0; c < C; c++) {
            float xhat = (xr[c] - m) * r;
            float g = w[c] * dy[c];
            gmean += g;
            gxmean += g * xhat;
        }
        gmean /= C;
        gxmean /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (xr[c] - m) * r;
            float g = w[c] * dy[c];
            if (db) db[c] += dy[c];  // null for a frozen weight
            if (dw) dw[c] += xhat * dy[c];
            dxr[c] += r * (g - gmean - xhat * gxmean);
        }
    }
}

void rmsnorm_forward_ref(float* out, float* rstd, const float* x, const float* w, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[n * C + c] * x[n * C + c];
        double r = 1.0 / std::sqrt(ss / C + eps);
        rstd[n] = (float)r;
        for (int c = 0; c < C; c++) out[n * C + c] = (float)(x[n * C + c] * r * w[c]);
    }
}

void rmsnorm_backward_ref(float* dx, float* dw, const float* dout, const float* x, const float* w,
                          const float* rstd, int N, int C) {
    // Direct Jacobian: dy_c/dx_j = w_c (r delta_cj - x_c x_j r^3 / C)
    for (int n = 0; n < N; n++) {
        double r = rstd[n];
        for (int j = 0; j < C; j++) {
            double acc = 0;
            for (int c = 0; c < C; c++) {
                double jac = w[c] * ((c == j ? r : 0.0) - (double)x[n * C + c] * x[n * C + j] * r * r * r / C);
                acc += jac * dout[n * C + c];
            }
            dx[n * C + j] += (float)acc;
            if (dw) dw[j] += (float)(dout[n * C + j] * x[n * C + j] * r);
        }
    }
}

void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                           int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
        double r = 1.0 / std::sqrt(v / C + eps);
        mean[n] = (float)m;
        rstd[n] = (float)r;
        for (int c = 0; c < C; c++) out[n * C + c] = (float)((x[n * C + c] - m) * r * w[c] + b[c]);
    }
}

void layernorm_backward_ref(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int C) {
    // Direct Jacobian: xhat_c = (x_c - m) r; dxhat_c/dx_j = r (delta_cj - 1/C - xhat_c xhat_j / C)
    for (int n = 0; n < N; n++) {
        double r = rstd[n], m = mean[n];
        for (int j = 0; j < C; j++) {
            double xj = (x[n * C + j] - m) * r, acc = 0;
            for (int c = 0; c < C; c++) {
                double xc = (x[n * C + c] - m) * r;
                acc += w[c] * dout[n * C + c] * r * ((c == j ? 1.0 : 0.0) - 1.0 / C - xc * xj / C);
            }
            dx[n * C + j] += (float)acc;
            if (dw) dw[j] += (float)(dout[n * C + j] * xj);
            if (db) db[j] += dout[n * C + j];
        }
    }
}

}  // namespace rl
