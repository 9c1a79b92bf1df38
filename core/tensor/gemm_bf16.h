// Products with a BF16 weight matrix as a checkpoint stores it (docs/hf-models.md, "Weights as they
// come"): a frozen model keeps its experts' BF16 matrices in the mapped file instead of widening them to
// float32 up front, which halves their memory (OLMoE-1B-7B: 13.8 GB instead of 27.6) and the bytes every
// forward reads.
//
// Three ways to compute it, measured in tests/bench/bench_ops.cpp (gemm_bf16/*) at the experts' shapes
// with the weights coming from memory, as in a forward (one thread, AMD Zen 5):
//  - widen (the default): each ~256 KB block of weight rows widened exactly (BF16 is the high half of a
//    float32) into a per-thread buffer, then the float32 GEMM (gemm.h). float32 products, so the results
//    are float32 ones; 95-130 GFLOP/s, 2-3x float32 weights (half the bytes, streamed in blocks).
//  - split (AVX512-BF16): the activations split into hi = bf16(a) and lo = bf16(a - hi), both multiplied
//    by the weights with VDPBF16PS: 16 of a float's 24 mantissa bits (~4e-6 relative on a product);
//    1.1-1.3x widen, too little for its error to be the default.
//  - bf16 (AVX512-BF16, asked for: gemm_bf16_set_kernel, the CLI's --bf16-activations): the activations
//    rounded to BF16, one VDPBF16PS per pair, as PyTorch's bfloat16 forward computes; ~2e-3 relative on
//    a product, 1.8-2.4x widen (190-230 GFLOP/s).
//  - packed (the bf16 arithmetic on weights packed at open, gemm_bf16w_packed): what a folder opened
//    with the bf16 kernel asked for uses (io/hf_model.h HfModel::packed); 280-340 GFLOP/s, 1.4-1.6x the
//    dot form of bf16 (no weight-block copy, no reductions), against a VDPBF16PS peak of ~420 GFLOP/s
//    per thread on that CPU.
#pragma once
#include <cstdint>

namespace rl {

enum class Bf16Kernel { widen, split, bf16 };

// C (M,N) = A (M,K) . B^T, B (N,K) BF16 bits row-major (a PyTorch weight (out, in)); lda, ldc in floats.
// Overwrites C. Calls inside an OpenMP parallel region run on the calling thread only.
void gemm_bf16w(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc);
// The same through one kernel (tests, benchmarks); split and bf16 fall back to widen without AVX512-BF16.
void gemm_bf16w_with(Bf16Kernel k, int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C,
                     int ldc);
void gemm_bf16w_ref(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc);

// The backward's product (router-only tuning of a frozen model: the gradient of the input only):
// C (M,K) += A (M,N) . B with B (N,K) the same BF16 bits as above (not packed), widened block by block
// (float32 products). Calls inside an OpenMP parallel region run on the calling thread only.
void gemm_bf16w_acc_nn(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc);
void gemm_bf16w_acc_nn_ref(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc);

// Whether this CPU has VDPBF16PS (AVX512-BF16).
bool bf16_dot_available();
// The kernel gemm_bf16w uses in this process (widen unless set); split and bf16 fall back to widen
// without AVX512-BF16.
void gemm_bf16_set_kernel(Bf16Kernel k);
Bf16Kernel gemm_bf16_kernel();
const char* bf16_kernel_name(Bf16Kernel k);

// Packed weights (the CLI's --bf16-activations on a folder, io/hf_model.h): B (N,K) rearranged once into
// panels of 32 rows of B, each pair of K values of a row adjacent (VNNI-2; K padded to even, N to 32
// with zeros), bf16_packed_elements(N, K) uint16 in all. gemm_bf16w_packed: C (M,N) = A . B^T from
// them with the activations rounded to BF16 (the bf16 kernel's arithmetic, in outer-product form that
// needs no weight copy), whatever gemm_bf16_set_kernel says later: the packing is chosen at open, only
// where bf16_dot_available (without it this falls back to _ref). _ref: the same sums in double.
uint64_t bf16_packed_elements(int N, int K);
void bf16_pack(const uint16_t* B, int N, int K, uint16_t* out);
void gemm_bf16w_packed(int M, int N, int K, const float* A, int lda, const uint16_t* Bp, float* C, int ldc);
void gemm_bf16w_packed_ref(int M, int N, int K, const float* A, int lda, const uint16_t* Bp, float* C, int ldc);

// A frozen model's BF16 weight matrix (N,K): the checkpoint's row-major bits, or bf16_pack'ed.
struct Bf16Weight {
    const uint16_t* bits = nullptr;
    bool packed = false;
    explicit operator bool() const { return bits != nullptr; }
};
// gemm_bf16w or gemm_bf16w_packed, as B is.
inline void gemm_bf16w(int M, int N, int K, const float* A, int lda, Bf16Weight B, float* C, int ldc) {
    if (B.packed) gemm_bf16w_packed(M, N, K, A, lda, B.bits, C, ldc);
    else gemm_bf16w(M, N, K, A, lda, B.bits, C, ldc);
}

// BF16 bits to float32 (exact); a float32 rounded to the nearest BF16 value (ties to even).
float bf16_to_float(uint16_t h);
float bf16_round(float x);

// dst[i] = the float32 whose high half is src[i] (BF16 to float32, exact).
void bf16_widen(float* dst, const uint16_t* src, int64_t n);

}  // namespace rl
