#include "tensor/gemm_bf16.h"

#include <immintrin.h>

// GCC 12 warns that the intrinsics headers read their own undefined placeholder vectors: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "tensor/arena.h"
#include "tensor/gemm.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace rl {

void bf16_widen(float* dst, const uint16_t* src, int64_t n) {
    // Widening shifts the 16 bits into the high half; a loop the compiler vectorises (vpmovzxwd + vpslld).
    uint32_t* d = reinterpret_cast<uint32_t*>(dst);
#pragma omp simd
    for (int64_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

namespace {

std::atomic<int> g_kernel{(int)Bf16Kernel::widen};

// One per (T, Tag): grows once to the largest call, then is reused (no allocation per call).
template <class T, int Tag>
T* thread_buffer(size_t n) {
    thread_local std::vector<T, AlignedAllocator<T>> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// ---- widen: blocks of weight rows widened to float32, then the float32 GEMM ----

// 256 KB of float32 stays in L2 (1-2 MB per core on the CPUs we run on) while the GEMM reads it once per
// row of A. At least 16 rows, so the GEMM's blocks stay whole vectors.
int rows_per_block(int N, int K) { return std::min(N, std::max(16, (int)(65536 / std::max(1, K)) / 16 * 16)); }

void gemm_widen(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    const int nb = rows_per_block(N, K);
    float* w = thread_buffer<float, 0>((size_t)nb * K);
    for (int n0 = 0; n0 < N; n0 += nb) {
        const int n = std::min(nb, N - n0);
        bf16_widen(w, B + (size_t)n0 * K, (int64_t)n * K);
        gemm(false, true, M, n, K, 1.f, A, lda, w, K, 0.f, C + n0, ldc);  // (M,n) = A (M,K) . W_block^T
    }
}

// ---- VDPBF16PS kernels, in dot form: vectorised along K, where B's rows already hold the pairs the
// instruction multiplies, so the mapped weights need no packing. Each 512-bit step takes 32 values of K;
// a tile keeps 4 rows of A x 4 rows of B in 16 accumulators and reduces them once at the end of K. ----
#define RL_BF16_TARGET __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

// A (M,K) into BF16 rows of Kp = K rounded up to 32 (zeros beyond K). split: per 32 values of K, the 32
// hi halves then the 32 lo halves (row stride 2 Kp); else the rounded values (row stride Kp).
RL_BF16_TARGET void activations_to_bf16(int M, int K, const float* A, int lda, bool split, uint16_t* out) {
    const int Kp = (K + 31) / 32 * 32, per = split ? 2 : 1;
    for (int m = 0; m < M; m++) {
        const float* a = A + (size_t)m * lda;
        uint16_t* o = out + (size_t)m * per * Kp;
        for (int k = 0; k < Kp; k += 16) {
            const int left = K - k;
            const __mmask16 in = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
            const __m512 v = _mm512_maskz_loadu_ps(in, a + k);
            const __m256i hi = (__m256i)_mm512_cvtneps_pbh(v);
            uint16_t* dst = o + (size_t)per * (k / 32 * 32) + k % 32;
            _mm256_storeu_si256((__m256i*)dst, hi);
            if (split) {
                const __m512 hif = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
                _mm256_storeu_si256((__m256i*)(dst + 32), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, hif)));
            }
        }
    }
}

// Sums of 4x4 accumulators into C (rows ldc apart): four shuffle levels instead of 16 reductions.
RL_BF16_TARGET __attribute__((always_inline)) inline void reduce4x4_store(const __m512 acc[4][4], float* C, int ldc) {
    __m512 R[4];
    for (int j = 0; j < 4; ++j) {
        const __m512 p = _mm512_add_ps(_mm512_shuffle_f32x4(acc[0][j], acc[1][j], 0x44),
                                       _mm512_shuffle_f32x4(acc[0][j], acc[1][j], 0xEE));
        const __m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2][j], acc[3][j], 0x44),
                                       _mm512_shuffle_f32x4(acc[2][j], acc[3][j], 0xEE));
        R[j] = _mm512_add_ps(_mm512_shuffle_f32x4(p, q, 0x88), _mm512_shuffle_f32x4(p, q, 0xDD));  // lane i: row i
    }
    const __m512 u = _mm512_add_ps(_mm512_unpacklo_ps(R[0], R[1]), _mm512_unpackhi_ps(R[0], R[1]));
    const __m512 v = _mm512_add_ps(_mm512_unpacklo_ps(R[2], R[3]), _mm512_unpackhi_ps(R[2], R[3]));
    const __m512d ud = _mm512_castps_pd(u), vd = _mm512_castps_pd(v);
    const __m512 F = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(ud, vd)), _mm512_castpd_ps(_mm512_unpackhi_pd(ud, vd)));
    // The lane index must be an immediate: spelled out, not a loop the compiler may not unroll (-O2).
    _mm_storeu_ps(C, _mm512_extractf32x4_ps(F, 0));
    _mm_storeu_ps(C + (size_t)ldc, _mm512_extractf32x4_ps(F, 1));
    _mm_storeu_ps(C + (size_t)2 * ldc, _mm512_extractf32x4_ps(F, 2));
    _mm_storeu_ps(C + (size_t)3 * ldc, _mm512_extractf32x4_ps(F, 3));
}

// acc[i][j] += A row i . B row j over the 32 values of K from k (B masked in the last, partial step; the
// converted A is zero there already).
template <int MR, int NR, bool SPLIT, bool MASKED>
RL_BF16_TARGET __attribute__((always_inline)) inline void dot_step(__m512 (&acc)[MR][NR], const uint16_t* A, int lda,
                                                                   const uint16_t* B, int K, int k, __mmask32 mask) {
    constexpr int per = SPLIT ? 2 : 1;
    __m512bh hi[MR], lo[MR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
        const uint16_t* a = A + (size_t)i * lda + per * k;
        hi[i] = (__m512bh)_mm512_loadu_si512(a);
        if (SPLIT) lo[i] = (__m512bh)_mm512_loadu_si512(a + 32);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
        const uint16_t* bp = B + (size_t)j * K + k;
        __m512i bi = MASKED ? _mm512_maskz_loadu_epi16(mask, bp) : _mm512_loadu_si512(bp);
        __asm__("" : "+v"(bi));  // keeps b in a register rather than MR memory operands
        const __m512bh b = (__m512bh)bi;
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], hi[i], b);
            if (SPLIT) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], lo[i], b);
        }
    }
}

// C[MR][NR] = rows of A (converted, stride lda) . rows of B (stride K), in steps of 32 values of K. The
// main loop has no masked load: GCC 12 takes the masked-load builtin for a read that may alias the
// accumulators and then stored all 16 to the stack every step (a third of the speed).
template <int MR, int NR, bool SPLIT>
RL_BF16_TARGET inline void dot_tile(const uint16_t* A, int lda, const uint16_t* B, int K, float* C, int ldc) {
    __m512 acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_ps();
    const int kfull = K / 32 * 32;
    for (int k = 0; k < kfull; k += 32) dot_step<MR, NR, SPLIT, false>(acc, A, lda, B, K, k, 0);
    if (kfull < K) dot_step<MR, NR, SPLIT, true>(acc, A, lda, B, K, kfull, (__mmask32)((1u << (K - kfull)) - 1));
    if constexpr (MR == 4 && NR == 4) {
        reduce4x4_store(acc, C, ldc);
    } else {
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < NR; ++j) C[(size_t)i * ldc + j] = _mm512_reduce_add_ps(acc[i][j]);
    }
}

template <int MR, bool SPLIT>
RL_BF16_TARGET void dot_tile_n(int nr, const uint16_t* A, int lda, const uint16_t* B, int K, float* C, int ldc) {
    switch (nr) {
        case 4: return dot_tile<MR, 4, SPLIT>(A, lda, B, K, C, ldc);
        case 3: return dot_tile<MR, 3, SPLIT>(A, lda, B, K, C, ldc);
        case 2: return dot_tile<MR, 2, SPLIT>(A, lda, B, K, C, ldc);
        default: return dot_tile<MR, 1, SPLIT>(A, lda, B, K, C, ldc);
    }
}

// Columns [n0, n1) of C: 4 weight rows (L1) against every 4 rows of a converted block of A (L2).
template <bool SPLIT>
RL_BF16_TARGET void dot_columns(int M, int n0, int n1, int K, const uint16_t* Ab, int lda, const uint16_t* B, float* C,
                                int ldc) {
    const int mtile = std::max(4, (int)(262144 / ((size_t)lda * sizeof(uint16_t))) / 4 * 4);
    for (int m0 = 0; m0 < M; m0 += mtile) {
        const int m1 = std::min(M, m0 + mtile);
        for (int n = n0; n < n1; n += 4) {
            const int nr = std::min(4, n1 - n);
            const uint16_t* Bn = B + (size_t)n * K;
            int m = m0;
            for (; m + 4 <= m1; m += 4) dot_tile_n<4, SPLIT>(nr, Ab + (size_t)m * lda, lda, Bn, K, C + (size_t)m * ldc + n, ldc);
            for (; m < m1; ++m) dot_tile_n<1, SPLIT>(nr, Ab + (size_t)m * lda, lda, Bn, K, C + (size_t)m * ldc + n, ldc);
        }
    }
}

void gemm_dot(bool split, int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    const int Kp = (K + 31) / 32 * 32, ab_ld = (split ? 2 : 1) * Kp;
    uint16_t* Ab = thread_buffer<uint16_t, 1>((size_t)M * ab_ld);
    activations_to_bf16(M, K, A, lda, split, Ab);
    // Weight rows in blocks of ~128 KB, each copied into a per-thread buffer first: a copy streams them
    // from memory at the prefetcher's full speed, where the tiles' four short interleaved row streams
    // reached a third of the kernel's speed on weights that were not in cache (BM_gemm_bf16). Outside a
    // parallel region a large product splits the blocks over the threads; the blocks do not depend on the
    // thread count, so neither do the results.
    const int nb = std::min(N, std::max(4, (int)(65536 / std::max(1, K)) / 4 * 4));
    const int blocks = (N + nb - 1) / nb;
    auto run = [&](int b) {
        const int n0 = b * nb, n = std::min(N, n0 + nb) - n0;
        uint16_t* w = thread_buffer<uint16_t, 2>((size_t)nb * K + 32);
        std::memcpy(w, B + (size_t)n0 * K, (size_t)n * K * sizeof(uint16_t));
        if (split) dot_columns<true>(M, 0, n, K, Ab, ab_ld, w, C + n0, ldc);
        else dot_columns<false>(M, 0, n, K, Ab, ab_ld, w, C + n0, ldc);
    };
#ifdef _OPENMP
    if (!omp_in_parallel() && omp_get_max_threads() > 1 && blocks > 1 && 2.0 * M * N * K > 4e6) {
#pragma omp parallel for schedule(static)
        for (int b = 0; b < blocks; b++) run(b);
        return;
    }
#endif
    for (int b = 0; b < blocks; b++) run(b);
}

}  // namespace

bool bf16_dot_available() {
    static const bool ok = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
    return ok;
}

void gemm_bf16_set_kernel(Bf16Kernel k) { g_kernel = (int)k; }

Bf16Kernel gemm_bf16_kernel() {
    const Bf16Kernel k = (Bf16Kernel)g_kernel.load();
    return k != Bf16Kernel::widen && !bf16_dot_available() ? Bf16Kernel::widen : k;
}

const char* bf16_kernel_name(Bf16Kernel k) {
    switch (k) {
        case Bf16Kernel::split: return "AVX512-BF16, activations split hi/lo";
        case Bf16Kernel::bf16: return "AVX512-BF16, activations rounded to BF16";
        default: return "widened to float32";
    }
}

void gemm_bf16w_with(Bf16Kernel k, int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C,
                     int ldc) {
    if (M <= 0 || N <= 0) return;
    if (k == Bf16Kernel::widen || !bf16_dot_available() || K <= 0) return gemm_widen(M, N, K, A, lda, B, C, ldc);
    gemm_dot(k == Bf16Kernel::split, M, N, K, A, lda, B, C, ldc);
}

void gemm_bf16w(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    gemm_bf16w_with(gemm_bf16_kernel(), M, N, K, A, lda, B, C, ldc);
}

void gemm_bf16w_ref(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                const uint32_t bits = (uint32_t)B[(size_t)j * K + k] << 16;
                float b;
                std::memcpy(&b, &bits, sizeof b);
                acc += (double)A[(size_t)i * lda + k] * b;
            }
            C[(size_t)i * ldc + j] = (float)acc;
        }
}

}  // namespace rl
