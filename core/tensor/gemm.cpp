#include "tensor/gemm.h"

#include <algorithm>

#include "tensor/arena.h"
#include "tensor/eigen.h"
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef ROUTELAB_HAVE_XSMM
#include <libxsmm.h>
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

// A few rows (a decoded token, an expert that got one token): matrix-vector loops. Eigen's GEMV
// would copy a strided operand into a heap temporary; these touch no heap.
void gemm_small(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                float beta, float* C, int ldc) {
    for (int i = 0; i < M; i++) {
        float* c = C + (size_t)i * ldc;
        if (beta == 0.f) std::fill_n(c, N, 0.f);
        else if (beta != 1.f)
            for (int j = 0; j < N; j++) c[j] *= beta;
        if (tb) {  // c[j] += alpha * sum_k a[i,k] B[j,k]: contiguous dot products when !ta
            for (int j = 0; j < N; j++) {
                const float* b = B + (size_t)j * ldb;
                float acc = 0.f;
                if (!ta) {
                    const float* a = A + (size_t)i * lda;
#pragma omp simd reduction(+ : acc)
                    for (int k = 0; k < K; k++) acc += a[k] * b[k];
                } else {
                    for (int k = 0; k < K; k++) acc += A[(size_t)k * lda + i] * b[k];
                }
                c[j] += alpha * acc;
            }
        } else {  // c += alpha * a[i,k] B[k,:]: one axpy per k over a contiguous row of B
            for (int k = 0; k < K; k++) {
                const float a = alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                const float* b = B + (size_t)k * ldb;
#pragma omp simd
                for (int j = 0; j < N; j++) c[j] += a * b[j];
            }
        }
    }
}

#ifdef ROUTELAB_HAVE_XSMM
// libxsmm's JIT kernels are column-major with a transpose only on the second operand. A row-major
// C = op(A) B is the column-major C^T = B^T op(A)^T: B's buffer read column-major is B^T as is, and
// A's is op(A)^T when ta is false and needs the kernel's transpose when ta is true. A transposed B
// (x W^T, the forward of every linear layer) is first transposed into a per-thread buffer: the
// same O x I pass oneDNN's packing makes, without its malloc per call. Kernels are generated at
// alpha 1, beta 0 or 1; the dispatch caches one per shape.
constexpr int k_xsmm_kblock = 256;  // the kernels do not block K: longer reductions go in chunks
constexpr int k_split_rows = 64;    // rows of C per block of a large product (a multiple of 16: few kernels)

void gemm_xsmm_nn(bool ta, int M, int N, int K, float beta, const float* A, int lda, const float* B, int ldb,
                  float* C, int ldc) {
    const float one = 1.f;
    const int prefetch = LIBXSMM_PREFETCH_NONE;
    for (int k0 = 0; k0 < K; k0 += k_xsmm_kblock) {
        const int kb = std::min(k_xsmm_kblock, K - k0);
        const bool first = k0 == 0;
        const int flags = (ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) | (first && beta == 0.f ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
        const libxsmm_blasint m = N, n = M, k = kb, xa = ldb, xb = lda, xc = ldc;
        libxsmm_smmfunction f = libxsmm_smmdispatch(m, n, k, &xa, &xb, &xc, &one, first ? &beta : &one, &flags, &prefetch);
        const float* ak = ta ? A + (size_t)k0 * lda : A + k0;  // op(A) columns k0.. (rows of A when ta)
        const float* bk = B + (size_t)k0 * ldb;                 // rows k0.. of B
        if (f) f(bk, ak, C);
        else gemm_eigen(ta, false, M, N, kb, 1.f, ak, lda, bk, ldb, first ? beta : 1.f, C, ldc);
    }
}

// One thread's share: rows m0..m1 of C. bt: B^T (K,N) when the caller transposed B.
void gemm_xsmm_rows(bool ta, int m0, int m1, int N, int K, float beta, const float* A, int lda, const float* B,
                    int ldb, float* C, int ldc) {
    if (m1 <= m0) return;
    const float* a = ta ? A + m0 : A + (size_t)m0 * lda;
    gemm_xsmm_nn(ta, m1 - m0, N, K, beta, a, lda, B, ldb, C + (size_t)m0 * ldc, ldc);
}

// Grows once to the largest B seen, then is reused: no allocation in a step after the first.
float* xsmm_transpose_buffer(size_t n) {
    thread_local FloatBuffer buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

void gemm_xsmm(bool ta, bool tb, int M, int N, int K, float beta, const float* A, int lda, const float* B, int ldb,
               float* C, int ldc) {
    const double flops = 2.0 * M * N * K;
#ifdef _OPENMP
    const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();  // (tensor sits below util: no threads.h)
#else
    const int nt = 1;
#endif
    if (tb) {  // B (N,K) -> B^T (K,N), row stride N
        float* bt = xsmm_transpose_buffer((size_t)K * N);
        libxsmm_otrans(bt, B, sizeof(float), K, N, ldb, N);
        B = bt, ldb = N;
    }
    // Large products run in blocks of k_split_rows rows of C, over the threads when there are several.
    // The blocks do not depend on the thread count, so neither do the results: each element of C comes
    // from the same kernel call on one thread or many (a step's numbers are the same whatever threads
    // the governor gave it, and a resumed run matches the straight one bit for bit).
    if (flops < 4e6 || M < 2 * k_split_rows) return gemm_xsmm_rows(ta, 0, M, N, K, beta, A, lda, B, ldb, C, ldc);
    const int blocks = (M + k_split_rows - 1) / k_split_rows;
    auto block = [&](int b) {
        gemm_xsmm_rows(ta, b * k_split_rows, std::min(M, (b + 1) * k_split_rows), N, K, beta, A, lda, B, ldb, C, ldc);
    };
    if (nt == 1) {  // no OpenMP region for one thread (libgomp allocates a team for it)
        for (int b = 0; b < blocks; b++) block(b);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) block(b);
}
#endif

bool xsmm_can(float alpha, float beta) { return alpha == 1.f && (beta == 0.f || beta == 1.f); }

}  // namespace

bool gemm_available(GemmLib lib) {
    switch (lib) {
        case GemmLib::eigen: return true;
#ifdef ROUTELAB_HAVE_XSMM
        case GemmLib::xsmm: return true;
#endif
        default: return false;
    }
}

const char* gemm_lib_name(GemmLib lib) {
    switch (lib) {
        case GemmLib::xsmm: return "xsmm";
        default: return "eigen";
    }
}

// Measured with `routelab_bench --benchmark_filter=gemm/` at the shapes of a step (bench_ops.cpp),
// one thread: libxsmm 250-280 GFLOP/s on every product but x W^T, Eigen 100-185; oneDNN matches
// libxsmm there and beats it on x W^T at 80 rows (223-235 against 167-200 with the transpose), but it
// mallocs its packing buffers on every call (a training step must not allocate) and its library
// adds ~14 MB to the resident set. So gemm() uses libxsmm wherever it is built in; oneDNN is only a
// candidate in the benchmark, which calls it directly. A product of a few rows (one
// decoded token) is a matrix-vector product, where a library call costs more than it saves: Eigen.
GemmLib gemm_choice(bool ta, bool tb, int M, int N, int K, float alpha, float beta) {
    if (M <= 4 || (double)M * N * K < 4096) return GemmLib::eigen;  // gemm_with: the small loops
    if (gemm_available(GemmLib::xsmm) && xsmm_can(alpha, beta)) return GemmLib::xsmm;
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
    if (lib == GemmLib::xsmm && xsmm_can(alpha, beta)) return gemm_xsmm(ta, tb, M, N, K, beta, A, lda, B, ldb, C, ldc);
#endif
    if (M <= 4) return gemm_small(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
