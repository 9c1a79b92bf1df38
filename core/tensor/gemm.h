// One row-major fp32 GEMM for every matrix product of a step, so the choice of library lives in
// one file (gemm.cpp). C (M,N) = alpha * op(A) op(B) + beta * C, op(X) = X or X^T (ta, tb), with
// leading dimensions in floats as BLAS takes them (row-major: the stride between rows).
// The library per case is chosen by tests/bench/bench_ops.cpp (BM_Gemm*) at the model's shapes.
#pragma once

namespace rl {

enum class GemmLib { eigen, xsmm };

// Calls made inside an OpenMP parallel region run on the calling thread only; calls outside one
// may use every thread (large products only).
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc);
// The same product through one given library (benchmarks and tests); falls back to Eigen when the
// library was not built in. gemm_available says whether it was.
void gemm_with(GemmLib lib, bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
               const float* B, int ldb, float beta, float* C, int ldc);
bool gemm_available(GemmLib lib);
const char* gemm_lib_name(GemmLib lib);
// Which library gemm() uses for this case.
GemmLib gemm_choice(bool ta, bool tb, int M, int N, int K, float alpha, float beta);

void gemm_ref(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc);

}  // namespace rl
