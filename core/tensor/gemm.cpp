#include "tensor/gemm.h"

#include <algorithm>

#include "tensor/eigen.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef ROUTELAB_HAVE_XSMM
#include <libxsmm.h>
#endif
#ifdef ROUTELAB_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

namespace rl {

namespace {

// Eigen: maps with outer strides, so sub-blocks of wider buffers need no copy.
void gemm_eigen(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                float beta, float* C, int ldc) {
    MapRS c(C, M, N, Strided(ldc));
    auto run = [&](const auto& a, const auto& b) {
        if (beta == 0.f) c.noalias() = alpha * (a * b);
        else {
            if (beta != 1.f) c *= beta;
            c.noalias() += alpha * (a * b);
        }
    };
    CMapRS a(A, ta ? K : M, ta ? M : K, Strided(lda));
    CMapRS b(B, tb ? N : K, tb ? K : N, Strided(ldb));
    if (ta && tb) run(a.transpose(), b.transpose());
    else if (ta) run(a.transpose(), b);
    else if (tb) run(a, b.transpose());
    else run(a, b);
}

#ifdef ROUTELAB_HAVE_XSMM
// libxsmm's JIT kernels are column-major with a transpose only on the second operand. A row-major
// C = op(A) B is the column-major C^T = B^T op(A)^T: B's buffer read column-major is B^T as is, and
// A's is op(A)^T when ta is false and needs the kernel's transpose when ta is true. So libxsmm
// serves every case with tb false, at alpha 1 and beta 0 or 1 (what its JIT generates).
// Rows of C are split over the threads for large products outside a parallel region.
void gemm_xsmm_rows(bool ta, int M, int N, int K, float beta, const float* A, int lda, const float* B, int ldb,
                    float* C, int ldc) {
    const libxsmm_blasint m = N, n = M, k = K, xa = ldb, xb = lda, xc = ldc;
    const float one = 1.f;
    const int flags = (ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) | (beta == 0.f ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
    const int prefetch = LIBXSMM_PREFETCH_NONE;
    libxsmm_smmfunction f = libxsmm_smmdispatch(m, n, k, &xa, &xb, &xc, &one, &beta, &flags, &prefetch);
    if (!f) return gemm_eigen(ta, false, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
    f(B, A, C);
}

void gemm_xsmm(bool ta, int M, int N, int K, float beta, const float* A, int lda, const float* B, int ldb, float* C,
               int ldc) {
    const double flops = 2.0 * M * N * K;
#ifdef _OPENMP
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();  // (tensor sits below util: no threads.h)
#else
    const int nt = 1;
#endif
    if (nt == 1 || flops < 4e6 || M < 2 * nt) {
        gemm_xsmm_rows(ta, M, N, K, beta, A, lda, B, ldb, C, ldc);
        return;
    }
    // Rows in multiples of 16 so the kernels stay few (the dispatch caches one per shape).
    const int per = ((M + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < nt; t++) {
        const int m0 = std::min(M, t * per), m1 = std::min(M, m0 + per);
        if (m1 <= m0) continue;
        const float* a = ta ? A + m0 : A + (size_t)m0 * lda;
        gemm_xsmm_rows(ta, m1 - m0, N, K, beta, a, lda, B, ldb, C + (size_t)m0 * ldc, ldc);
    }
}
#endif

bool xsmm_can(bool tb, float alpha, float beta) { return !tb && alpha == 1.f && (beta == 0.f || beta == 1.f); }

}  // namespace

bool gemm_available(GemmLib lib) {
    switch (lib) {
        case GemmLib::eigen: return true;
#ifdef ROUTELAB_HAVE_XSMM
        case GemmLib::xsmm: return true;
#endif
#ifdef ROUTELAB_HAVE_DNNL
        case GemmLib::dnnl: return true;
#endif
        default: return false;
    }
}

const char* gemm_lib_name(GemmLib lib) {
    switch (lib) {
        case GemmLib::xsmm: return "xsmm";
        case GemmLib::dnnl: return "dnnl";
        default: return "eigen";
    }
}

// Measured with `routelab_bench --benchmark_filter=Gemm` at the shapes of a step (bench_ops.cpp):
// libxsmm is fastest where it applies (x.W^T needs a transpose it lacks), oneDNN next, Eigen last.
// A product of a few rows (one decoded token) is a matrix-vector product, where the libraries' call
// overhead outweighs their kernels: Eigen's inline GEMV wins there.
GemmLib gemm_choice(bool ta, bool tb, int M, int N, int K, float alpha, float beta) {
    if (M <= 4 || (double)M * N * K < 4096) return GemmLib::eigen;
    // A long reduction (dW over 1280 rows at B = 16): libxsmm's kernel does not block K, oneDNN does
    // (at 1280 rows, one thread: 176-230 against 260-280 GFLOP/s).
    const bool long_k = ta && K > 512 && gemm_available(GemmLib::dnnl);
    if (gemm_available(GemmLib::xsmm) && xsmm_can(tb, alpha, beta) && !long_k) return GemmLib::xsmm;
    if (gemm_available(GemmLib::dnnl)) return GemmLib::dnnl;
    return GemmLib::eigen;
}

void gemm_with(GemmLib lib, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // an empty sum: C = beta C
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.f ? 0.f : beta * C[(size_t)i * ldc + j];
        return;
    }
#ifdef ROUTELAB_HAVE_XSMM
    if (lib == GemmLib::xsmm && xsmm_can(tb, alpha, beta)) return gemm_xsmm(ta, M, N, K, beta, A, lda, B, ldb, C, ldc);
#endif
#ifdef ROUTELAB_HAVE_DNNL
    // oneDNN threads over OpenMP itself and runs on the calling thread inside a parallel region.
    if (lib == GemmLib::dnnl || lib == GemmLib::xsmm) {
        dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    gemm_eigen(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc) {
    gemm_with(gemm_choice(ta, tb, M, N, K, alpha, beta), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_ref(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                const float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float& c = C[(size_t)i * ldc + j];
            c = (float)(alpha * acc + (beta == 0.f ? 0.0 : (double)beta * c));
        }
}

}  // namespace rl
