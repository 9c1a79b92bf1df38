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

float bf16_to_float(uint16_t h) {
    const uint32_t bits = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

float bf16_round(float x) {
    // Round to nearest even on the 16 bits dropped, as VCVTNEPS2BF16 does (NaN and denormals aside: it
    // flushes denormal inputs to zero).
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000u;
    float r;
    std::memcpy(&r, &bits, sizeof r);
    return r;
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

// The backward's product through a frozen BF16 weight: C (M,K) += A (M,N) . B, B (N,K). The blocks of B's
// rows widen into the same buffer as the forward's; each block adds its rows' share of the sum.
void gemm_widen_acc_nn(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    // Every block adds into all of C (M,K): blocks of at least 256 rows (2 MB of float32 at K = 2048),
    // or the LM head's backward (N = V = 50k) would read and write C some 1,600 times.
    const int nb = std::min(N, std::max(256, rows_per_block(N, K)));
    float* w = thread_buffer<float, 0>((size_t)nb * K);
    for (int n0 = 0; n0 < N; n0 += nb) {
        const int n = std::min(nb, N - n0);
        bf16_widen(w, B + (size_t)n0 * K, (int64_t)n * K);
        gemm(false, false, M, K, n, 1.f, A + n0, lda, w, K, 1.f, C, ldc);  // (M,K) += A[:, block] (M,n) . W_block (n,K)
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

// ---- packed (VNNI) weights, outer-product form: a weight matrix packed once at open (bf16_pack) into
// panels of 32 output columns, each pair of K values of a column adjacent, so one 512-bit load is 16
// columns x one pair and VDPBF16PS multiplies it by a broadcast pair of an activation row. A tile of
// MR rows x 32 columns lives in 2 MR accumulators over the whole of K and is stored without a reduction;
// the panel is one sequential stream, prefetched a little ahead, read from memory as it is (the dot form
// above needs its weight blocks copied first). The layout of oneDNN's and libxsmm's VNNI-2 bf16 GEMMs.
constexpr int k_panel = 32;  // columns per panel (two 16-lane vectors)
// Pairs ahead that the tiles prefetch the panel (32 pairs: 4 KB): the hardware prefetcher alone left the
// first tile over each chunk waiting on memory; 24-40 measured alike (BM_gemm_bf16/packed: 1.15-1.25x on
// OLMoE's experts, where each chunk serves only 3 tiles), 8 slower, 64 and more no better.
constexpr int k_prefetch_pairs = 32;

// A pair of BF16 activations (k even, k + 1) as one 32-bit lane value; memcpy, not a uint32_t* into the
// uint16_t buffer (aliasing), compiles to the same broadcast load.
RL_BF16_TARGET inline __m512bh broadcast_pair(const uint16_t* a) {
    int32_t v;
    std::memcpy(&v, a, sizeof v);
    return (__m512bh)_mm512_set1_epi32(v);
}

// C (MR rows, ncols <= 32 columns) = A's rows . the panel's 32 rows over P pairs of K; add: C += that
// instead (a later K chunk). A: rows of BF16 activations, lda elements apart, zero beyond K.
template <int MR>
RL_BF16_TARGET void packed_tile(const uint16_t* A, int lda, const uint16_t* Bp, int P, float* C, int ldc, int ncols,
                                bool add) {
    const __mmask16 m0 = ncols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ncols) - 1);
    const __mmask16 m1 = ncols >= 32 ? (__mmask16)0xFFFF : ncols <= 16 ? (__mmask16)0 : (__mmask16)((1u << (ncols - 16)) - 1);
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
        acc[i][0] = add ? _mm512_maskz_loadu_ps(m0, C + (size_t)i * ldc) : _mm512_setzero_ps();
        acc[i][1] = add ? _mm512_maskz_loadu_ps(m1, C + (size_t)i * ldc + 16) : _mm512_setzero_ps();
    }
    for (int p = 0; p < P; ++p) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * 2 * k_panel);
        const __m512bh b1 = (__m512bh)_mm512_loadu_si512(Bp + (size_t)p * 2 * k_panel + k_panel);
        // The address as an integer: past the last panel it lies outside the buffer (a prefetch never faults,
        // but a pointer formed there would be undefined behaviour).
        const uintptr_t ahead = reinterpret_cast<uintptr_t>(Bp) + ((size_t)(p + k_prefetch_pairs) * 2 * k_panel) * sizeof(uint16_t);
        _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + k_panel * sizeof(uint16_t)), _MM_HINT_T0);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512bh a = broadcast_pair(A + (size_t)i * lda + 2 * (size_t)p);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
        }
    }
    for (int i = 0; i < MR; ++i) {
        _mm512_mask_storeu_ps(C + (size_t)i * ldc, m0, acc[i][0]);
        _mm512_mask_storeu_ps(C + (size_t)i * ldc + 16, m1, acc[i][1]);
    }
}

constexpr int k_packed_mr = 12;  // 24 accumulators + 2 weight vectors + the broadcast: 27 of 32 registers
constexpr int k_packed_kc = 256;  // pairs of K per chunk

RL_BF16_TARGET void packed_tile_m(int mr, const uint16_t* A, int lda, const uint16_t* Bp, int P, float* C, int ldc,
                                  int ncols, bool add) {
    switch (mr) {
        case 12: return packed_tile<12>(A, lda, Bp, P, C, ldc, ncols, add);
        case 11: return packed_tile<11>(A, lda, Bp, P, C, ldc, ncols, add);
        case 10: return packed_tile<10>(A, lda, Bp, P, C, ldc, ncols, add);
        case 9: return packed_tile<9>(A, lda, Bp, P, C, ldc, ncols, add);
        case 8: return packed_tile<8>(A, lda, Bp, P, C, ldc, ncols, add);
        case 7: return packed_tile<7>(A, lda, Bp, P, C, ldc, ncols, add);
        case 6: return packed_tile<6>(A, lda, Bp, P, C, ldc, ncols, add);
        case 5: return packed_tile<5>(A, lda, Bp, P, C, ldc, ncols, add);
        case 4: return packed_tile<4>(A, lda, Bp, P, C, ldc, ncols, add);
        case 3: return packed_tile<3>(A, lda, Bp, P, C, ldc, ncols, add);
        case 2: return packed_tile<2>(A, lda, Bp, P, C, ldc, ncols, add);
        default: return packed_tile<1>(A, lda, Bp, P, C, ldc, ncols, add);
    }
}

void gemm_packed(int M, int N, int K, const float* A, int lda, const uint16_t* Bp, float* C, int ldc) {
    const int Kp = (K + 31) / 32 * 32, P = (K + 1) / 2, panels = (N + k_panel - 1) / k_panel;
    uint16_t* Ab = thread_buffer<uint16_t, 1>((size_t)M * Kp);
    activations_to_bf16(M, K, A, lda, false, Ab);
    // M rows in tiles of as even a height as k_packed_mr allows (64 rows: 11,11,11,11,10,10, not five of
    // 12 and a 4 that loads the weights once per 4 rows).
    const int tiles = (M + k_packed_mr - 1) / k_packed_mr;
    auto tile_rows = [&](int t) { return M / tiles + (t < M % tiles ? 1 : 0); };
    // K in chunks of k_packed_kc pairs: a chunk of the panel (32 KB) and a tile's activations (12 KB) are
    // what every tile of rows passes over, near L1 (48 KB on Zen 5; 32 KB elsewhere, where L2 serves the
    // rest). 256 pairs measured best on Zen 5; 64 and 128 were slower (the tiles' C loads and stores).
    auto run = [&](int j) {
        const uint16_t* Bj = Bp + (size_t)j * P * 2 * k_panel;
        const int n0 = j * k_panel, ncols = std::min(k_panel, N - n0);
        for (int p0 = 0; p0 < P; p0 += k_packed_kc)
            for (int t = 0, m = 0; t < tiles; m += tile_rows(t), t++)
                packed_tile_m(tile_rows(t), Ab + (size_t)m * Kp + 2 * (size_t)p0, Kp, Bj + (size_t)p0 * 2 * k_panel,
                              std::min(k_packed_kc, P - p0), C + (size_t)m * ldc + n0, ldc, ncols, p0 > 0);
    };
#ifdef _OPENMP
    if (!omp_in_parallel() && omp_get_max_threads() > 1 && panels > 1 && 2.0 * M * N * K > 4e6) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < panels; j++) run(j);
        return;
    }
#endif
    for (int j = 0; j < panels; j++) run(j);
}

}  // namespace

uint64_t bf16_packed_elements(int N, int K) {
    return (uint64_t)((N + k_panel - 1) / k_panel) * ((K + 1) / 2) * 2 * k_panel;
}

void bf16_pack(const uint16_t* B, int N, int K, uint16_t* out) {
    const int P = (K + 1) / 2, panels = (N + k_panel - 1) / k_panel;
    for (int j = 0; j < panels; j++) {
        uint16_t* o = out + (size_t)j * P * 2 * k_panel;
        // 16 pairs at a time: the destination block (16 x 32 pairs, 2 KB) stays in L1 while each of the
        // panel's rows is read 64 bytes at a time.
        for (int p0 = 0; p0 < P; p0 += 16) {
            const int p1 = std::min(P, p0 + 16);
            for (int c = 0; c < k_panel; c++) {
                const int n = j * k_panel + c;
                const uint16_t* row = n < N ? B + (size_t)n * K : nullptr;
                for (int p = p0; p < p1; p++) {
                    uint16_t* d = o + ((size_t)p * k_panel + c) * 2;
                    d[0] = row ? row[2 * p] : 0;
                    d[1] = row && 2 * p + 1 < K ? row[2 * p + 1] : 0;
                }
            }
        }
    }
}

void gemm_bf16w_packed(int M, int N, int K, const float* A, int lda, const uint16_t* Bp, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++) std::fill(C + (size_t)i * ldc, C + (size_t)i * ldc + N, 0.f);
        return;
    }
    if (!bf16_dot_available()) return gemm_bf16w_packed_ref(M, N, K, A, lda, Bp, C, ldc);  // only a misuse gets here
    gemm_packed(M, N, K, A, lda, Bp, C, ldc);
}

void gemm_bf16w_packed_ref(int M, int N, int K, const float* A, int lda, const uint16_t* Bp, float* C, int ldc) {
    const int P = (K + 1) / 2;
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                const uint16_t w = Bp[(((size_t)(n / k_panel) * P + k / 2) * k_panel + n % k_panel) * 2 + k % 2];
                acc += (double)bf16_round(A[(size_t)i * lda + k]) * bf16_to_float(w);
            }
            C[(size_t)i * ldc + n] = (float)acc;
        }
}

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

void gemm_bf16w_acc_nn(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    gemm_widen_acc_nn(M, N, K, A, lda, B, C, ldc);
}

void gemm_bf16w_acc_nn_ref(int M, int N, int K, const float* A, int lda, const uint16_t* B, float* C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            double acc = C[(size_t)i * ldc + k];
            for (int j = 0; j < N; j++) acc += (double)A[(size_t)i * lda + j] * bf16_to_float(B[(size_t)j * K + k]);
            C[(size_t)i * ldc + k] = (float)acc;
        }
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
